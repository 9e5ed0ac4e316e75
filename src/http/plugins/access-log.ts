/**
 * How each request is logged, so that the default logs (LOG_LEVEL=info) grow with what an
 * operator needs to see, not with traffic:
 * - the hot routes (read-only decisions, pins, unpins, flush-job acks) write their access line
 *   at `debug` only; what they did is counted per VM and written every LOG_SUMMARY_INTERVAL as
 *   one `vm activity` line per active VM (log-summary.ts); so do /healthz, /readyz and /metrics
 *   (probes and scrapes);
 * - every other route (rare) keeps its access line at `info` (`decision` where it decided);
 * - every refusal (4xx other than 404 on a read, every 5xx) is a `refused` line with its code at
 *   `info` (4xx), `warn` (503 and other 5xx) or `error` (500), the first few of a code to one
 *   client a period; the rest are folded into a `refusals folded` line at the period's end;
 * - every change made with an `admin` token is an `admin change` line at `info`, hot route or not;
 * - every store outage is a `warn` line when it starts and an `info` line when it ends, with how
 *   long it lasted.
 * One line per request at most. The level check comes before any object is built: at `info` a
 * hot request that succeeds writes nothing and allocates nothing here.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, onResponseHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import type { Logger } from 'pino';
import { redactQuery } from '../error-handler.js';
import { LogSummary } from '../log-summary.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Per-VM counts of what the hot routes did, written as the periodic summary. */
    activity: LogSummary;
  }
}

export interface AccessLogOptions {
  /** How often the per-VM summary is written (ms); 0: only on close. */
  readonly summaryIntervalMs: number;
}

/**
 * Routes whose access line is written at debug only: the hot routes, and the probes and scrapes
 * that machines send every few seconds (a line each would be noise, not an event).
 */
const HOT = new Set(['/v1/vms/:vmId/decisions/flush', '/v1/vms/:vmId/pins', '/v1/vms/:vmId/unpins', '/v1/flush-jobs/:jobId/ack', '/healthz', '/readyz', '/metrics']);
/** POST routes that change nothing: not an admin change. */
const READ_ONLY = new Set(['/v1/vms/:vmId/decisions/flush']);

interface RouteLog {
  /** A hot route: its access line at debug. */
  readonly hot: boolean;
  /** A POST that changes nothing. */
  readonly readOnly: boolean;
}

const UNROUTED: RouteLog = { hot: false, readOnly: false };

/** Whether `log` writes lines of `level`; the silent logger of an app built without one has no levels and writes nothing. */
function writes(log: FastifyBaseLogger, level: 'info' | 'debug'): boolean {
  return (log as Partial<Pick<Logger, 'isLevelEnabled'>>).isLevelEnabled?.(level) ?? false;
}

function isRead(method: string): boolean {
  return method === 'GET' || method === 'HEAD';
}

/** Who was refused: the token's id, or the client address without tokens. */
function clientOf(request: FastifyRequest): string {
  return request.principal?.id ?? request.ip ?? 'unix socket';
}

/** The VM a request named in its path, when it looks like an id (a refused request's may not). */
function vmOf(request: FastifyRequest): string | undefined {
  const vmId = (request.params as { vmId?: unknown } | undefined)?.vmId;
  return typeof vmId === 'string' && vmId.length > 0 && vmId.length <= 64 ? vmId : undefined;
}

function refused(summary: LogSummary, request: FastifyRequest, reply: FastifyReply, status: number): void {
  const code = request.problemCode ?? `HTTP_${String(status)}`;
  const client = clientOf(request);
  const vmId = vmOf(request);
  // A 500 is a fault of ours: never folded.
  if (!summary.refused(vmId, client, code, status) && status !== 500) return;
  const fields = { method: request.method, url: redactQuery(request.url), statusCode: status, code, client, ...(vmId === undefined ? {} : { vmId }), responseTime: reply.elapsedTime };
  if (status === 500) request.log.error(fields, 'refused');
  else if (status >= 500) request.log.warn(fields, 'refused');
  else request.log.info(fields, 'refused');
}

function responded(summary: LogSummary, request: FastifyRequest, reply: FastifyReply, route: RouteLog): void {
  const status = reply.statusCode;
  const method = request.method;
  if (status >= 400 && !(status === 404 && isRead(method))) {
    refused(summary, request, reply, status);
    return;
  }
  const admin = !isRead(method) && !route.readOnly && request.principal?.scopes.has('admin') === true;
  if (route.hot && !admin && !writes(request.log, 'debug')) return;
  if (!route.hot && !admin && !writes(request.log, 'info')) return;
  const decision = request.decisionLog;
  const fields = {
    method,
    url: redactQuery(request.url),
    statusCode: status,
    responseTime: reply.elapsedTime,
    ...(request.principal === null ? {} : { actor: request.principal.id }),
    ...decision
  };
  const msg = admin ? 'admin change' : decision === null ? 'request completed' : 'decision';
  if (route.hot && !admin) request.log.debug(fields, msg);
  else request.log.info(fields, msg);
}

function accessLog(app: FastifyInstance, opts: AccessLogOptions): void {
  const summary = new LogSummary(app.log, opts.summaryIntervalMs);
  app.decorate('activity', summary);
  app.decorateRequest('problemCode', null);
  app.addHook('onClose', (_app, done) => {
    summary.close();
    done();
  });

  app.policy.observeHealth({
    down: (err) => app.log.warn({ err }, 'store unavailable: changes are refused and decisions fail closed until it recovers'),
    up: (outageMs, err) => app.log.info({ outageMs, cause: err.message }, 'store recovered: the state is reloaded and changes are taken again')
  });

  // Each route gets its own hook, which knows the route without looking it up per request.
  app.addHook('onRoute', (route) => {
    const log: RouteLog = { hot: HOT.has(route.url), readOnly: READ_ONLY.has(route.url) };
    const hook: onResponseHookHandler = (request, reply, done) => {
      responded(summary, request, reply, log);
      done();
    };
    const given = route.onResponse;
    route.onResponse = given === undefined ? [hook] : Array.isArray(given) ? [...(given as onResponseHookHandler[]), hook] : [given, hook];
  });
  // Requests no route took (404s, URLs that do not decode) are logged here.
  app.addHook('onResponse', (request, reply, done) => {
    if (request.is404) responded(summary, request, reply, UNROUTED);
    done();
  });
}

export default fp(accessLog, { name: 'access-log', fastify: '5.x', dependencies: ['services', 'auth'] });
