/**
 * Flush jobs. Decisions carry their flush inline today; until flushes are planned as jobs there
 * is never an open job, so these routes answer an empty list and 404.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { page, PageQuery, problems, VmParams } from '../schemas/common.js';
import { HttpError } from '../errors.js';
import { vmIdOf } from '../wire.js';

const FlushJob = z
  .object({ id: z.string(), vmId: z.string(), cause: z.enum(['pin', 'unpin', 'replay', 'teardown']), state: z.enum(['queued', 'running', 'done', 'failed']) })
  .meta({ id: 'FlushJob' });

export default function flushJobRoutes(app: FastifyInstance): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/v1/flush-jobs/:jobId',
    { schema: { tags: ['flush-jobs'], summary: 'A flush job and its receipt', params: z.object({ jobId: z.string().max(100) }), response: { 200: FlushJob, 404: problems[404] } } },
    (request) => {
      throw new HttpError('UNKNOWN_FLUSH_JOB', `flush job ${request.params.jobId} does not exist`);
    }
  );

  r.get(
    '/v1/vms/:vmId/flush-jobs',
    { schema: { tags: ['flush-jobs'], summary: 'Flush jobs of a VM (paged)', params: VmParams, querystring: PageQuery, response: { 200: page(FlushJob, 'FlushJobPage'), 400: problems[400], 404: problems[404] } } },
    (request) => {
      app.policy.vm(vmIdOf(request.params)); // 404 for an unknown VM
      return { items: [] };
    }
  );
}
