/**
 * What every request passes before its route (src/http/plugins/admission.ts): the rate limit per
 * token or client address on /v1 (fixed windows of a minute, x-ratelimit-* headers, 429
 * RATE_LIMITED with Retry-After), the request id header, overload protection's event-loop
 * measure, and the access line and latency metrics after the answer.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { TokenTable } from '../../src/http/auth.js';
import { EventLoopWatch } from '../../src/http/event-loop-watch.js';
import { inWords, RateLimiter } from '../../src/http/rate-limit.js';
import { build, LogSink } from '../helpers/app.js';

const ADMIN = 'admin-token-0123456789';
const READER = 'reader-token-0123456789';

describe('RateLimiter', () => {
  it('counts per key in fixed windows: max requests, then over until the window ends', () => {
    const limit = new RateLimiter(3, 60_000);
    const t0 = 1_000_000;
    const seen = [0, 10, 20, 30].map((dt) => {
      const w = limit.take('a', t0 + dt);
      return { exceeded: limit.exceeded(w), remaining: limit.remaining(w), reset: limit.resetSeconds(w, t0 + dt) };
    });
    expect(seen).toEqual([
      { exceeded: false, remaining: 2, reset: 60 },
      { exceeded: false, remaining: 1, reset: 60 },
      { exceeded: false, remaining: 0, reset: 60 },
      { exceeded: true, remaining: 0, reset: 60 }
    ]);
    // Another key has a window of its own.
    expect(limit.exceeded(limit.take('b', t0 + 40))).toBe(false);
    // Late in the window: seconds left, rounded up.
    const late = limit.take('a', t0 + 59_500);
    expect(limit.exceeded(late)).toBe(true);
    expect(limit.resetSeconds(late, t0 + 59_500)).toBe(1);
    // Once the window has ended, a new one opens with this request.
    const next = limit.take('a', t0 + 60_000);
    expect({ exceeded: limit.exceeded(next), remaining: limit.remaining(next), reset: limit.resetSeconds(next, t0 + 60_000) }).toEqual({ exceeded: false, remaining: 2, reset: 60 });
  });

  it('forgets the windows that ended', () => {
    const limit = new RateLimiter(3, 1000);
    limit.take('a', 0);
    limit.take('b', 500);
    limit.sweep(1000);
    expect(limit.size).toBe(1);
    limit.sweep(1500);
    expect(limit.size).toBe(0);
  });

  it('says waits in words', () => {
    expect([1, 2, 59, 60, 90].map(inWords)).toEqual(['1 second', '2 seconds', '59 seconds', '1 minute', '2 minutes']);
  });
});

describe('EventLoopWatch', () => {
  it('measures how late the event loop ran in the last interval', async () => {
    // Sampled by hand only: its own timer (a minute) never resets the histogram between the
    // stall and the sample that must see it.
    const watch = new EventLoopWatch(60_000);
    try {
      await new Promise((r) => setTimeout(r, 120));
      watch.sample();
      // An overloaded loop: turns of 50 ms, one after the other, for 300 ms.
      for (let turn = 0; turn < 6; turn++) {
        const end = Date.now() + 50;
        while (Date.now() < end) {
          // Stall the event loop.
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      watch.sample();
      const stalled = watch.delayMs;
      expect(stalled).toBeGreaterThan(20);
      // An interval without a stall reads less (on a busy machine, not necessarily near 0).
      await new Promise((r) => setTimeout(r, 120));
      watch.sample();
      expect(watch.delayMs).toBeLessThan(stalled);
    } finally {
      watch.close();
    }
  });
});

describe('admission over HTTP', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('every /v1 answer within the limit says the limit, what is left and when the window ends; other paths carry no rate headers', async () => {
    app = await build({ rateLimit: 5 });
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await app.inject({ method: 'GET', url: '/v1/policy' }));
    expect(answers.map((a) => a.statusCode)).toEqual([200, 200, 200]);
    expect(answers.map((a) => a.headers['x-ratelimit-limit'])).toEqual(['5', '5', '5']);
    expect(answers.map((a) => a.headers['x-ratelimit-remaining'])).toEqual(['4', '3', '2']);
    for (const a of answers) {
      expect(Number(a.headers['x-ratelimit-reset'])).toBeGreaterThanOrEqual(59);
      expect(Number(a.headers['x-ratelimit-reset'])).toBeLessThanOrEqual(60);
      expect(a.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    }
    const health = await app.inject({ method: 'GET', url: '/healthz' });
    expect(health.statusCode).toBe(200);
    expect(health.headers['x-ratelimit-limit']).toBeUndefined();
    expect(health.headers['x-request-id']).toBeDefined();
  });

  it('over the limit: 429 RATE_LIMITED problem with Retry-After equal to the window left, the request id', async () => {
    app = await build({ rateLimit: 2 });
    const put = () => app!.inject({ method: 'PUT', url: '/v1/vms/vm1', headers: { 'content-type': 'application/json', 'x-request-id': 'caller-7' }, payload: { arch: 'x86_64' } });
    expect((await put()).statusCode).toBe(201);
    expect((await put()).statusCode).toBe(200);
    const over = await put();
    expect(over.statusCode).toBe(429);
    expect(over.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(over.headers['x-request-id']).toBe('caller-7');
    expect(over.headers['x-ratelimit-limit']).toBe('2');
    expect(over.headers['x-ratelimit-remaining']).toBe('0');
    expect(over.headers['retry-after']).toBe(over.headers['x-ratelimit-reset']);
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
    expect(over.json()).toMatchObject({ status: 429, code: 'RATE_LIMITED', requestId: 'caller-7', instance: '/v1/vms/vm1' });
    expect(over.json<{ detail: string }>().detail).toMatch(/^at most 2 requests a minute; retry in (1 minute|\d+ seconds?)$/);
  });

  it('without tokens the limit is per client address; with tokens per token, and a request auth refuses is not counted', async () => {
    app = await build({
      tokens: new TokenTable([
        { id: 'a', token: ADMIN, scopes: ['admin'] },
        { id: 'r', token: READER, scopes: ['read'] }
      ]),
      rateLimit: 2
    });
    const get = (token?: string) => app!.inject({ method: 'GET', url: '/v1/policy', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
    for (let i = 0; i < 3; i++) {
      const refused = await get();
      expect(refused.statusCode).toBe(401);
      expect(refused.headers['x-request-id']).toBeDefined();
      expect(refused.headers['x-ratelimit-limit']).toBeUndefined();
    }
    expect((await get(ADMIN)).headers['x-ratelimit-remaining']).toBe('1');
    expect((await get(ADMIN)).statusCode).toBe(200);
    expect((await get(ADMIN)).statusCode).toBe(429);
    expect((await get(READER)).headers['x-ratelimit-remaining']).toBe('1');
  });

  it('rate limit 0: no limit and no rate headers', async () => {
    app = await build({ rateLimit: 0 });
    for (let i = 0; i < 3; i++) {
      const res = await app.inject({ method: 'GET', url: '/v1/policy' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-ratelimit-limit']).toBeUndefined();
    }
  });

  it('counts every answer in the latency histogram by route and status, 429s included', async () => {
    app = await build({ rateLimit: 2 });
    for (let i = 0; i < 3; i++) await app.inject({ method: 'GET', url: '/v1/policy' });
    await app.inject({ method: 'GET', url: '/v1/nothing-here' });
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const count = (route: string, status: number): number => Number(new RegExp(`coherency_http_request_duration_seconds_count\\{method="GET",route="${route.replaceAll('/', '\\/')}",status="${status}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    expect(count('/v1/policy', 200)).toBe(2);
    expect(count('/v1/policy', 429)).toBe(1);
    expect(count('unknown', 429) + count('unknown', 404)).toBe(1);
  });

  it('writes the access line only when info lines are written', async () => {
    const sink = new LogSink();
    app = await build({ logger: { level: 'info', stream: sink } });
    await app.inject({ method: 'GET', url: '/v1/policy', headers: { 'x-request-id': 'seen-1' } });
    expect(sink.lines.find((l) => l['reqId'] === 'seen-1' && l['msg'] === 'request completed')).toMatchObject({ method: 'GET', url: '/v1/policy', statusCode: 200 });
    await app.close();
    const quiet = new LogSink();
    app = await build({ logger: { level: 'warn', stream: quiet } });
    await app.inject({ method: 'GET', url: '/v1/policy' });
    expect(quiet.lines).toEqual([]);
  });
});
