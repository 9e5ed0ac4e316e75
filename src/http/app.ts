/**
 * The HTTP application. It never listens: `server.ts` does that, and tests build it and call
 * `inject()`.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import swagger from './plugins/swagger.js';
import healthRoutes from './routes/health.js';

export interface AppOptions {
  readonly logger?: FastifyServerOptions['logger'];
}

export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // Swagger first: it collects the routes registered after it.
  await app.register(swagger);
  await app.register(healthRoutes);
  await app.ready();
  return app;
}
