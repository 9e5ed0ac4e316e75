/**
 * Every coded error is answered by one lookup of its code (src/http/errors.ts): its status, its
 * Retry-After, its details when it has any. Whatever layer raised it, only the code counts; an
 * error without a code the table knows is INTERNAL, logged and never shown.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CodedError, DomainError } from '../../src/domain/index.js';
import { registerErrorHandler } from '../../src/http/error-handler.js';
import { HttpError, STATUS } from '../../src/http/errors.js';
import { LogSink } from '../helpers/app.js';

/** What each route throws: as the layers behind the service raise them. */
const THROWN: Record<string, () => unknown> = {
  domain: () => new DomainError('UNKNOWN_VM', 'VM x does not exist', { vmId: 'x' }),
  overloaded: () => new CodedError('OVERLOADED', 'the flush queue is full; retry shortly', { retryAfterSeconds: 3 }),
  'ack-timeout': () => new CodedError('FLUSH_ACK_TIMEOUT', 'flush job(s) fj-1 were not acknowledged within 10 ms; nothing was changed', { details: { after: ['fj-1'], timeoutMs: 10 }, retryAfterSeconds: 1 }),
  trace: () => new CodedError('INVALID_TRACE', 'trace line 3: not JSON', { details: { line: 3 } }),
  'not-ready': () => new CodedError('NOT_READY', 'the state is being restored', { retryAfterSeconds: 1 }),
  store: () => new CodedError('STORE_UNAVAILABLE', 'connection refused to 10.0.0.7:5432', { retryAfterSeconds: 5 }),
  'http-details': () => new HttpError('BATCH_TOO_LARGE', 'a batch holds at most 1 ranges; this one has 2', { limit: 1, count: 2 }),
  http: () => new HttpError('UNKNOWN_FLUSH_JOB', 'flush job fj-9 does not exist'),
  plain: () => new Error('secret internals'),
  'unknown-code': () => new CodedError('NO_SUCH_CODE', 'secret internals', { retryAfterSeconds: 9 }),
  'code-without-class': () => Object.assign(new Error('secret internals'), { code: 'OVERLOADED', retryAfterSeconds: 9 })
};

const sink = new LogSink();
let app: FastifyInstance;

beforeAll(async () => {
  app = Fastify({ logger: { level: 'info', stream: sink } });
  registerErrorHandler(app);
  for (const [name, thrown] of Object.entries(THROWN)) {
    app.get(`/${name}`, () => {
      throw thrown();
    });
  }
  await app.ready();
});

afterAll(async () => {
  await app.close();
});

async function answer(name: string): Promise<{ status: number; retryAfter: unknown; body: Record<string, unknown>; logged: unknown[] }> {
  sink.lines.length = 0;
  const res = await app.inject({ method: 'GET', url: `/${name}` });
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.headers['x-request-id']).toBe(res.json<{ requestId: string }>().requestId);
  return { status: res.statusCode, retryAfter: res.headers['retry-after'], body: res.json(), logged: sink.lines.filter((l) => l['level'] === 50).map((l) => l['msg']) };
}

describe('coded errors', () => {
  it('answer the status of their code, their message and their details', async () => {
    expect(await answer('domain')).toEqual({
      status: 404,
      retryAfter: undefined,
      body: { type: 'urn:problem:coherency:unknown-vm', title: 'Not Found', status: 404, detail: 'VM x does not exist', instance: '/domain', code: 'UNKNOWN_VM', requestId: expect.any(String) as unknown, details: { vmId: 'x' } },
      logged: []
    });
    expect(await answer('trace')).toMatchObject({ status: 400, retryAfter: undefined, body: { code: 'INVALID_TRACE', detail: 'trace line 3: not JSON', details: { line: 3 } } });
    expect(await answer('http-details')).toMatchObject({ status: 413, body: { code: 'BATCH_TOO_LARGE', title: 'Content Too Large', details: { limit: 1, count: 2 } } });
  });

  it('leave details out when they have none', async () => {
    const { status, body } = await answer('http');
    expect(status).toBe(404);
    expect(body).toMatchObject({ code: 'UNKNOWN_FLUSH_JOB', detail: 'flush job fj-9 does not exist' });
    expect(body).not.toHaveProperty('details');
  });

  it('say when to retry (Retry-After) when retrying later helps', async () => {
    expect(await answer('overloaded')).toMatchObject({ status: 503, retryAfter: '3', body: { code: 'OVERLOADED', title: 'Service Unavailable', detail: 'the flush queue is full; retry shortly' }, logged: [] });
    expect(await answer('not-ready')).toMatchObject({ status: 503, retryAfter: '1', body: { code: 'NOT_READY', detail: 'the state is being restored' } });
    expect(await answer('ack-timeout')).toMatchObject({ status: 503, retryAfter: '1', body: { code: 'FLUSH_ACK_TIMEOUT', details: { after: ['fj-1'], timeoutMs: 10 } } });
  });

  it('STORE_UNAVAILABLE is answered without what the store said, and not logged per request (the outage is, once)', async () => {
    const { status, retryAfter, body, logged } = await answer('store');
    expect({ status, retryAfter, logged }).toEqual({ status: 503, retryAfter: '5', logged: [] });
    expect(body).toMatchObject({ code: 'STORE_UNAVAILABLE', detail: 'the state store is unavailable; nothing was changed' });
    expect(JSON.stringify(body)).not.toContain('10.0.0.7');
  });
});

describe('errors without a code the table knows', () => {
  for (const name of ['plain', 'unknown-code', 'code-without-class']) {
    it(`${name}: INTERNAL, logged, nothing of the error shown`, async () => {
      const { status, retryAfter, body, logged } = await answer(name);
      expect({ status, retryAfter, logged }).toEqual({ status: 500, retryAfter: undefined, logged: ['unhandled error'] });
      expect(body).toMatchObject({ code: 'INTERNAL', detail: STATUS.INTERNAL.detail });
      expect(body).not.toHaveProperty('details');
      expect(JSON.stringify(body)).not.toContain('secret');
    });
  }
});
