import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

const HealthSchema = z.object({ status: z.literal('ok') }).meta({ id: 'Health' });
const ReadySchema = z.object({ status: z.enum(['ready', 'not-ready']), checks: z.record(z.string(), z.boolean()) }).meta({ id: 'Readiness' });

export default function healthRoutes(app: FastifyInstance): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get('/healthz', { schema: { tags: ['health'], summary: 'Liveness: the process is up and answering',
      description: 'Answers 200 while the process runs and its event loop turns; it does not look at the store. For liveness probes and the image HEALTHCHECK.', security: [], response: { 200: HealthSchema } } }, () => ({
    status: 'ok' as const
  }));
  r.get(
    '/readyz',
    { schema: { tags: ['health'], summary: 'Readiness: state loaded, ready for decisions',
        description: '200 once the decided state and the stored flush jobs are loaded and the store answers; 503, with the check that fails, while not, so that a load balancer sends decisions elsewhere.', security: [], response: { 200: ReadySchema, 503: ReadySchema } } },
    (_request, reply) => {
      const checks = app.policy.ready;
      const ready = checks.state && checks.store;
      reply.code(ready ? 200 : 503);
      return { status: ready ? ('ready' as const) : ('not-ready' as const), checks };
    }
  );
}
