/**
 * Turns a command's result into the answer, and writes the one structured log line per decision
 * that an operator greps for: VM, command, rules, flush bytes, job.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { formatPages, planFlush, type Decision, type FlushReceipt, type VmId } from '../../domain/index.js';
import { CHUNK_PAGES, type FlushJob } from '../../jobs/flush-jobs.js';
import type { Applied } from '../../service/policy-service.js';
import { decisionWire } from '../wire.js';

export function receiptWire(job: FlushJob, own?: FlushReceipt) {
  const r = own ?? job.receipt;
  return {
    jobId: job.id,
    state: job.state,
    method: r?.method ?? job.method,
    bytes: formatPages(r?.pages ?? 0),
    ranges: r?.ranges ?? 0,
    lines: r?.lines ?? 0,
    fences: r?.fences ?? 0,
    chunks: r?.chunks ?? 0,
    modeledCycles: r?.modeledCycles ?? 0,
    modeledNs: r?.modeledNs ?? 0,
    ...(own === undefined ? {} : { jobBytes: formatPages(job.receipt?.pages ?? 0), jobDecisions: job.decisions })
  };
}

/**
 * The receipt of one answer's own flush: its ranges priced with the method chosen for it (the
 * job's: a job holds flushes of one method), whatever else shares the job.
 */
function ownReceipt(job: FlushJob, decision: Decision): FlushReceipt {
  const ranges = decision.flush.ranges;
  const pairs = new Float64Array(2 * ranges.length);
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i] as (typeof ranges)[number];
    pairs[2 * i] = r.hpa;
    pairs[2 * i + 1] = r.pages;
  }
  return planFlush(pairs, job.arch, { flushMethod: job.method, wbinvdAbovePages: job.receipt?.method === 'wbinvd' ? 0 : null }, CHUNK_PAGES);
}

export async function decided(app: FastifyInstance, request: FastifyRequest, vmId: VmId, command: string, applied: Applied | Promise<Applied>, wait = false) {
  const result = await applied;
  const vm = result.state.vms.get(vmId);
  const revision = result.revision ?? vm?.revision ?? 0;
  const d = result.decision;
  request.log.info(
    {
      decision: command,
      vmId,
      rules: [...new Set(d.reasons.map((r) => r.rule))],
      flushRequired: d.flush.required,
      flushBytes: formatPages(d.flush.pages),
      flushRanges: d.flush.ranges.length,
      kvmNoncoherentDma: d.kvmNoncoherentDma,
      ...(d.devctl === undefined ? {} : { devctl: d.devctl.decision }),
      ...(result.jobId === undefined ? {} : { jobId: result.jobId }),
      revision
    },
    'decision'
  );
  const answer = decisionWire(d, revision);
  if (result.jobId === undefined) return answer;
  const flush = { ...answer.flush, jobId: result.jobId };
  if (wait && app.policy.jobs !== undefined) {
    const job = await app.policy.jobs.wait(result.jobId);
    return { ...answer, flush: { ...flush, receipt: receiptWire(job, ownReceipt(job, d)) } };
  }
  return { ...answer, flush };
}

/** `?wait=true` */
export function wants(query: { wait?: 'true' | 'false' | undefined }): boolean {
  return query.wait === 'true';
}
