import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { formatPages, parsePageAddress } from '../../domain/index.js';
import { FreshQuery, problems, VmParams } from '../schemas/common.js';
import { FlushQueryAnswer, FlushQueryBody } from '../schemas/pin.js';
import { batchOf, domainIds, flushWire, rangeInput, vmIdOf } from '../wire.js';

export default function decisionRoutes(app: FastifyInstance): void {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/vms/:vmId/decisions/flush',
    {
      schema: {
        tags: ['decisions'],
        summary: 'Must I flush? (read-only)',
        description:
          '`map`: a range already pinned answers as a replay would (F2), one not pinned as a pin would (F1, C1, F4). `unmap`: flush iff a pinned range inside has flushOnUnpin (F3), except UC/WC mmio (F4). Nothing changes.',
        params: VmParams,
        querystring: FreshQuery,
        body: FlushQueryBody,
        response: { 200: FlushQueryAnswer, ...problems }
      }
    },
    async (request) => {
      await app.policy.catchUp(request.query.minRevision ?? 0);
      const vmId = vmIdOf(request.params);
      const { op } = request.body;
      const ranges = batchOf({ ranges: request.body.ranges }, app.limits.batchLimit).map((r) => ({
        ...rangeInput(r),
        ...(r.hpa === undefined ? {} : { hpa: parsePageAddress(r.hpa, 'hpa') }),
        ...(r.memType === undefined ? {} : { memType: r.memType }),
        ...(r.mmio === undefined ? {} : { mmio: r.mmio }),
        domains: domainIds(r.domains)
      }));
      const answer = app.policy.mustFlush(vmId, op, ranges);
      return {
        op,
        flush: flushWire(answer.decision),
        reasons: [...answer.decision.reasons],
        kvmNoncoherentDma: answer.decision.kvmNoncoherentDma,
        results: answer.results.map((x) => ({ iova: formatPages(x.iova), length: formatPages(x.pages), required: x.required, rule: x.rule })),
        ...(answer.failClosed === undefined ? {} : { failClosed: answer.failClosed })
      };
    }
  );
}
