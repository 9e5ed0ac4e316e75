/**
 * Flush jobs and their receipts.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { formatPages, parsePageAddress } from '../../domain/index.js';
import type { FlushJob as Job } from '../../service/policy-service.js';
import { HttpError } from '../errors.js';
import { HexAddress, HostRange, page, PageQuery, problems, VmParams } from '../../contract/common.js';
import { FlushJob } from '../../contract/flush-job.js';
import { decodeCursor, encodeCursor, vmIdOf } from '../wire.js';
import { compileSerializer, decisionSerializerCompiler } from '../compiled-wire.js';
import { plainValidatorCompiler } from '../plain-check.js';
import { receiptWire } from './decided.js';

const AckBody = z
  .object({
    flushedBytes: HexAddress.optional().describe('Bytes the VMM flushed'),
    durationNs: z.number().int().min(0).optional().describe('How long the flush took, in nanoseconds')
  })
  .strict()
  .nullish()
  .meta({ id: 'FlushAck', description: "The VMM's report of the flush it performed (every field optional)" });

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export function jobWire(job: Job) {
  return {
    id: job.id,
    vmId: job.vmId,
    arch: job.arch,
    cause: job.cause,
    state: job.state,
    decisions: job.decisions,
    requestedBytes: formatPages(job.requestedPages),
    createdAt: new Date(job.createdAt).toISOString(),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    receipt: job.receipt === null ? null : receiptWire(job),
    error: job.error,
    acknowledgedAt: iso(job.acknowledgedAt ?? null),
    batch: job.batch === undefined || job.batch === null ? null : { id: job.batch.id, decisions: job.batch.decisions, bytes: formatPages(job.batch.pages) },
    report:
      job.report === undefined || job.report === null
        ? null
        : {
            ...(job.report.flushedPages === undefined ? {} : { flushedBytes: formatPages(job.report.flushedPages) }),
            ...(job.report.durationNs === undefined ? {} : { durationNs: job.report.durationNs })
          }
  };
}

/**
 * The acknowledgement route is on every flush's path (a VMM acknowledges each answer's job): its
 * plain path parameters and body (none, or the report's fields as the schema takes them) skip
 * the zod walk (plain-check.ts), and its answer is written by the serializer compiled from the
 * FlushJob schema (compiled-wire.ts), problems as on every route.
 */
const ACK_VALIDATOR = plainValidatorCompiler(() => false);
const writeFlushJob = compileSerializer(FlushJob);
const ACK_SERIALIZER: typeof decisionSerializerCompiler = (route) => (route.httpStatus === '200' ? writeFlushJob : decisionSerializerCompiler(route));

export default function flushJobRoutes(app: FastifyInstance): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/v1/flush-jobs/:jobId',
    { schema: { tags: ['flush-jobs'], summary: 'A flush job and its receipt',
        description: 'The job\'s state (queued, running, pending, acknowledged, done, failed), the decisions it carries, and its receipt: bytes, ranges and modelled cost.', params: z.object({ jobId: z.string().max(100) }), response: { 200: FlushJob, 404: problems[404] } } },
    async (request) => {
      await app.policy.learnFlushJob(request.params.jobId);
      const job = app.policy.flushJob(request.params.jobId);
      if (job === undefined) throw new HttpError('UNKNOWN_FLUSH_JOB', `flush job ${request.params.jobId} does not exist`);
      return jobWire(job);
    }
  );

  r.post(
    '/v1/flush-jobs/:jobId/ack',
    {
      schema: {
        tags: ['flush-jobs'],
        summary: 'Acknowledge a flush: the VMM performed it',
        description:
          "The VMM of the job's VM (`vmm` scope) reports the job's flush done: exactly the ranges of the answer that named it, nothing else of the batch it was planned in. Until then the job is `pending` and answers that are safe only once it is done list it in `flush.after`. Acknowledging again (even a job that has left the history) answers 200 and changes nothing. Through any replica: one that does not know the job yet catches up on its VM first. The body is optional.",
        params: z.object({ jobId: z.string().max(100) }),
        body: AckBody,
        response: { 200: FlushJob, ...problems }
      },
      validatorCompiler: ACK_VALIDATOR,
      serializerCompiler: ACK_SERIALIZER
    },
    async (request) => {
      const body = request.body ?? {};
      const acked = await app.policy.acknowledgeFlushJob(request.params.jobId, {
        ...(body.flushedBytes === undefined ? {} : { flushedPages: parsePageAddress(body.flushedBytes, 'flushedBytes') }),
        ...(body.durationNs === undefined ? {} : { durationNs: body.durationNs })
      });
      if (acked === undefined) throw new HttpError('UNKNOWN_FLUSH_JOB', `flush job ${request.params.jobId} does not exist`);
      app.activity.acked(acked.vmId);
      return jobWire(acked);
    }
  );

  r.get(
    '/v1/flush-jobs/:jobId/ranges',
    {
      schema: {
        tags: ['flush-jobs'],
        summary: "A flush job's coalesced host ranges (paged)",
        description: 'Waits for the job to be planned. Lists every range, including those an answer left out (rangesTruncated).',
        params: z.object({ jobId: z.string().max(100) }),
        querystring: z.object({ limit: z.coerce.number().int().min(1).max(10_000).default(1000), cursor: z.string().max(200).optional() }),
        response: { 200: page(HostRange, 'HostRangePage'), 400: problems[400], 404: problems[404] }
      }
    },
    async (request) => {
      const job = await app.policy.settledFlushJob(request.params.jobId);
      if (job === undefined) throw new HttpError('UNKNOWN_FLUSH_JOB', `flush job ${request.params.jobId} does not exist`);
      const pairs = job.ranges ?? new Float64Array(0);
      const from = request.query.cursor === undefined ? 0 : Number(decodeCursor(request.query.cursor));
      if (!Number.isSafeInteger(from) || from < 0) throw new HttpError('INVALID_CURSOR', 'cursor is not one this service issued');
      const to = Math.min(pairs.length >> 1, from + request.query.limit);
      const items = [];
      for (let i = from; i < to; i++) items.push({ hpa: formatPages(pairs[2 * i] as number), length: formatPages(pairs[2 * i + 1] as number) });
      return { items, ...(to < pairs.length >> 1 ? { nextCursor: encodeCursor(String(to)) } : {}) };
    }
  );

  r.get(
    '/v1/vms/:vmId/flush-jobs',
    { schema: { tags: ['flush-jobs'], summary: 'Flush jobs of a VM, oldest first (paged)',
        description: 'The flush jobs kept for the VM, oldest first: `limit` per page, `nextCursor` to continue.', params: VmParams, querystring: PageQuery, response: { 200: page(FlushJob, 'FlushJobPage'), 400: problems[400], 404: problems[404] } } },
    async (request) => {
      const vmId = vmIdOf(request.params);
      await app.policy.catchUp(request.query.minRevision ?? 0, vmId);
      app.policy.vm(vmId); // 404 for an unknown VM
      const after = decodeCursor(request.query.cursor);
      const jobs = app.policy.flushJobs(vmId, after, request.query.limit + 1);
      const shown = jobs.slice(0, request.query.limit);
      const last = shown[shown.length - 1];
      return { items: shown.map(jobWire), ...(jobs.length > request.query.limit && last !== undefined ? { nextCursor: encodeCursor(last.id) } : {}) };
    }
  );
}
