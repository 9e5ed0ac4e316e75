/**
 * The HTTP application. It never listens: `server.ts` does that, and tests build it and call
 * `inject()`.
 */
// The OpenAPI document lists component schemas in the order the contract registers them (zod's
// global registry): the VM schemas first, then the audit entry, then the rest as the routes
// import them. Importing these first keeps openapi.json the same whichever module below happens
// to reach the contract first.
import '../contract/vm.js';
import '../contract/audit.js';
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { validatorCompiler } from 'fastify-type-provider-zod';
import { decisionSerializerCompiler } from './compiled-wire.js';
import { DEFAULT_POLICY, defaultQuirksFile, parseQuirkFile } from '../domain/index.js';
import { createRuntime, type Runtime } from '../service/runtime.js';
import { registerErrorHandler, sendProblem } from './error-handler.js';
import type { TokenTable } from './auth.js';
import accessLog from './plugins/access-log.js';
import admission from './plugins/admission.js';
import auth from './plugins/auth.js';
import services, { type Limits } from './plugins/services.js';
import swagger from './plugins/swagger.js';
import auditRoutes from './routes/audit.js';
import decisionRoutes from './routes/decisions.js';
import deviceRoutes from './routes/devices.js';
import domainRoutes from './routes/domains.js';
import eventRoutes from './routes/events.js';
import flushJobRoutes from './routes/flush-jobs.js';
import healthRoutes from './routes/health.js';
import pinRoutes from './routes/pins.js';
import quirkRoutes from './routes/quirks.js';
import simulationRoutes from './routes/simulations.js';
import vmRoutes from './routes/vms.js';

export interface AppOptions {
  /** Service, jobs and metrics; by default a fresh in-memory one with the shipped quirks. The app closes it. */
  readonly runtime?: Runtime;
  readonly logger?: FastifyServerOptions['logger'];
  readonly batchLimit?: number;
  /** Bytes an event subscriber may fall behind by before it is dropped (default 4 MiB). */
  readonly eventMaxBehindBytes?: number;
  /** Event streams a token (or an address without tokens) may hold open at once (default 16). */
  readonly eventStreamsPerClient?: number;
  /** How often an idle event stream gets a comment line (ms; default 15 s). */
  readonly eventHeartbeatMs?: number;
  /** How long ?wait=true waits for earlier flushes to be acknowledged (ms; default 10 s). */
  readonly flushAckTimeoutMs?: number;
  /** Largest accepted request body in bytes; a 10,000-range batch is about 1 MiB. */
  readonly bodyLimit?: number;
  /** Bearer tokens; without them /v1 is open (the server then listens on loopback only). */
  readonly tokens?: TokenTable;
  /** Requests per minute to /v1 per token (or per client address without tokens); 0: no limit. */
  readonly rateLimit?: number;
  /** Event-loop delay (ms) above which requests answer 503 until it recovers; 0 (the default here; the server sets 1000): never. */
  readonly maxEventLoopDelayMs?: number;
  /** How often the per-VM activity summary is logged (ms; default 60 s); 0: only on close. */
  readonly logSummaryIntervalMs?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** What a route decided, for the request's log line; null: nothing (or nothing that will be written). */
    decisionLog: Record<string, unknown> | null;
  }
}

/** A caller's x-request-id is kept when it is a sane token; otherwise we make one. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Request ids in UUID form: a random prefix per app and a counter in the last 12 hex digits,
 * unique like a random UUID without drawing random bytes per request.
 */
function requestIds(): () => string {
  const prefix = randomUUID().slice(0, 24);
  let next = 0;
  return () => prefix + (next++ % 0x1000000000000).toString(16).padStart(12, '0');
}

export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const nextRequestId = requestIds();
  const app = Fastify({
    // One line per request at most instead of Fastify's two (plugins/access-log.ts).
    logController: new LogController({ disableRequestLogging: true }),
    // Tokens never reach the logs.
    logger: options.logger === undefined || options.logger === false ? false : { ...(options.logger === true ? {} : options.logger), redact: ['req.headers.authorization', 'headers.authorization'] },
    bodyLimit: options.bodyLimit ?? 8 * 1024 * 1024,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : nextRequestId();
    },
    ajv: { customOptions: { coerceTypes: false } },
    // A request that takes longer than this is cut off rather than holding a connection forever.
    requestTimeout: 30_000,
    // Errors raised before routing (a URL that does not decode) get problem+json too.
    frameworkErrors: (error, request, reply) => {
      void sendProblem(request, reply, 'MALFORMED_URL', error.message);
    }
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(decisionSerializerCompiler);
  registerErrorHandler(app);
  // JSON only: anything else is 415 rather than a string that fails validation.
  app.removeContentTypeParser(['text/plain']);
  // Every hook is callback style: no promise per request. The x-request-id header is set in the
  // admission hook (plugins/admission.ts); problems set it themselves, since errors raised before
  // routing skip onRequest and auth may refuse a request before admission.

  const limits: Limits = { batchLimit: options.batchLimit ?? 10_000, flushAckTimeoutMs: options.flushAckTimeoutMs ?? 10_000 };
  const runtime = options.runtime ?? createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile) });
  // Accepted flush jobs finish before the app is closed.
  app.addHook('onClose', () => runtime.close());
  // What a route decided, for the request's log line (plugins/access-log.ts).
  app.decorateRequest('decisionLog', null);
  app.addHook('onResponse', (request, reply, done) => {
    runtime.metrics.observeHttp(request.method, request.routeOptions.url ?? 'unknown', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
  await app.register(services, { service: runtime.service, limits });
  await app.register(auth, { tokens: options.tokens });
  // Registered after auth, so the rate limit is kept per token.
  await app.register(admission, { perMinute: options.rateLimit ?? 600_000, maxEventLoopDelayMs: options.maxEventLoopDelayMs ?? 0 });
  // Before the routes: it gives each its log line.
  await app.register(accessLog, { summaryIntervalMs: options.logSummaryIntervalMs ?? 60_000 });
  // Swagger first: it collects the routes registered after it.
  await app.register(swagger);
  await app.register(healthRoutes);
  await app.register(vmRoutes);
  await app.register(domainRoutes);
  await app.register(deviceRoutes);
  await app.register(pinRoutes);
  await app.register(decisionRoutes);
  await app.register(flushJobRoutes);
  await app.register(eventRoutes, {
    heartbeatMs: options.eventHeartbeatMs ?? 15_000,
    streamsPerClient: options.eventStreamsPerClient ?? 16,
    subscribers: runtime.metrics.eventSubscribers,
    ...(options.eventMaxBehindBytes === undefined ? {} : { maxBehindBytes: options.eventMaxBehindBytes })
  });
  await app.register(quirkRoutes);
  await app.register(auditRoutes);
  await app.register(simulationRoutes, { simulator: runtime.simulator });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.type(runtime.metrics.registry.contentType);
    return runtime.metrics.registry.metrics();
  });
  await app.ready();
  return app;
}
