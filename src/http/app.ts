/**
 * The HTTP application as a fastify plugin factory. It never listens: `server.ts` does that, and
 * tests build it and call `inject()`.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';

export interface AppOptions {
  readonly logger?: FastifyServerOptions['logger'];
}

export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false });
  app.get('/healthz', () => ({ status: 'ok' }));
  await app.ready();
  return app;
}
