/**
 * What every request passes once before its route: its `x-request-id` header and, on /v1,
 * overload protection (503 OVERLOADED with Retry-After while the event loop runs more than
 * `maxEventLoopDelayMs` late) and the rate limit (at most `perMinute` requests a minute
 * per token, or per client address without tokens; over it, 429 RATE_LIMITED with Retry-After).
 * Every /v1 answer within the limit carries x-ratelimit-limit, x-ratelimit-remaining and
 * x-ratelimit-reset (seconds until the window ends).
 *
 * One synchronous hook (no promise, no object per request), registered after auth so that the
 * limit is kept per token; a request auth refuses is not counted (its problem carries the
 * request id itself).
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { CodedError } from '../../domain/index.js';
import { sendError } from '../error-handler.js';
import { EventLoopWatch } from '../event-loop-watch.js';
import { inWords, RateLimiter } from '../rate-limit.js';

export interface AdmissionOptions {
  /** Requests per minute to /v1 per token (or per client address without tokens); 0: no limit. */
  readonly perMinute: number;
  /** Event-loop delay (ms) above which requests answer 503; 0: never. */
  readonly maxEventLoopDelayMs: number;
}

/** Seconds an overloaded service asks callers to wait. */
const OVERLOADED_RETRY_AFTER = 5;

function admission(app: FastifyInstance, opts: AdmissionOptions): void {
  const limiter = opts.perMinute > 0 ? new RateLimiter(opts.perMinute, 60_000) : null;
  const watch = opts.maxEventLoopDelayMs > 0 ? new EventLoopWatch() : null;
  const maxDelay = opts.maxEventLoopDelayMs;
  // Windows of callers that went quiet are forgotten once a window has passed.
  const sweeper = limiter === null ? null : setInterval(() => limiter.sweep(Date.now()), limiter.windowMs).unref();
  app.addHook('onClose', (_app, done) => {
    if (sweeper !== null) clearInterval(sweeper);
    watch?.close();
    done();
  });
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    // Only API work is shed: the probes and /metrics keep answering with their own schemas
    // (a problem body cannot be serialised as a readiness answer), so that an operator sees the
    // overload and a liveness probe does not restart a busy process.
    if (watch !== null && watch.delayMs > maxDelay && request.url.startsWith('/v1')) {
      const delay = watch.delayMs;
      sendError(request, reply, new CodedError('OVERLOADED', `the service is overloaded (eventLoopDelay: ${String(delay)}); retry shortly`, { retryAfterSeconds: OVERLOADED_RETRY_AFTER }));
      return;
    }
    if (limiter !== null && request.url.startsWith('/v1')) {
      const now = Date.now();
      const key = request.principal === null ? `ip:${request.ip ?? 'unix socket'}` : `token:${request.principal.id}`;
      const w = limiter.take(key, now);
      const reset = limiter.resetSeconds(w, now);
      reply.header('x-ratelimit-limit', limiter.max);
      reply.header('x-ratelimit-remaining', limiter.remaining(w));
      reply.header('x-ratelimit-reset', reset);
      if (limiter.exceeded(w)) {
        sendError(request, reply, new CodedError('RATE_LIMITED', `at most ${limiter.max} requests a minute; retry in ${inWords(reset)}`, { retryAfterSeconds: reset }));
        return;
      }
    }
    done();
  });
}

export default fp(admission, { name: 'admission', fastify: '5.x', dependencies: ['auth'] });
