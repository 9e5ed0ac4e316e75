/**
 * The acknowledgement route's shortcuts must be invisible: its answer, written by the serializer
 * compiled from the FlushJob schema, is exactly what the zod serializer writes for any job the
 * schema admits; bodies it takes without zod are the ones zod takes unchanged, and any other body
 * is still refused as before.
 */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { serializerCompiler } from 'fastify-type-provider-zod';
import { afterEach, describe, expect, it } from 'vitest';
import { compileSerializer } from '../../src/http/compiled-wire.js';
import { FlushJob } from '../../src/contract/flush-job.js';
import { build, json } from '../helpers/app.js';
import { hex, int, jobState as state, receipt, text } from '../helpers/wire-arbitraries.js';

const job = fc.record({
  id: text,
  vmId: text,
  arch: fc.constantFrom('x86_64', 'aarch64'),
  cause: fc.constantFrom('pin', 'unpin', 'replay', 'teardown'),
  state,
  decisions: int,
  requestedBytes: hex,
  createdAt: text,
  startedAt: fc.option(text, { nil: null }),
  finishedAt: fc.option(text, { nil: null }),
  receipt: fc.option(receipt, { nil: null }),
  error: fc.option(text, { nil: null }),
  acknowledgedAt: fc.option(text, { nil: null }),
  batch: fc.option(fc.record({ id: text, decisions: int, bytes: hex }), { nil: null }),
  report: fc.option(fc.record({ flushedBytes: hex, durationNs: int }, { requiredKeys: [] }), { nil: null })
});

describe('the compiled FlushJob serializer', () => {
  it('writes exactly what the zod serializer writes, for any job the schema admits', () => {
    const zod = serializerCompiler({ schema: FlushJob, method: 'POST', url: '/v1/flush-jobs/:jobId/ack' });
    const fast = compileSerializer(FlushJob);
    fc.assert(
      fc.property(job, (j) => {
        expect(fast(j)).toBe(zod(j));
      }),
      { numRuns: 1000 }
    );
  });
});

describe('POST /v1/flush-jobs/{jobId}/ack', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  /** A VM whose every pin is flushed, and the job of one pin's answer. */
  async function pinnedJob(a: FastifyInstance): Promise<string> {
    const put = async (url: string, payload: object): Promise<void> => {
      const res = await a.inject({ method: 'PUT', url, headers: json, payload });
      expect(res.statusCode).toBeLessThan(300);
    };
    await put('/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await put('/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
    const pin = await a.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: json, payload: { iova: '0x1000', hpa: '0x2000', length: '0x1000' } });
    expect(pin.statusCode).toBe(200);
    const jobId = (JSON.parse(pin.body) as { flush: { jobId?: string } }).flush.jobId;
    expect(jobId).toMatch(/^fj-/);
    return jobId as string;
  }

  it('answers the job as GET /v1/flush-jobs/{jobId} does, with or without a body', async () => {
    app = await build();
    const a = app;
    const first = await pinnedJob(a);
    const acked = await a.inject({ method: 'POST', url: `/v1/flush-jobs/${first}/ack` });
    expect(acked.statusCode).toBe(200);
    const got = await a.inject({ method: 'GET', url: `/v1/flush-jobs/${first}` });
    expect(acked.body).toBe(got.body);
    expect(JSON.parse(acked.body)).toMatchObject({ id: first, state: 'acknowledged', report: {} });
    const again = await a.inject({ method: 'POST', url: `/v1/flush-jobs/${first}/ack`, headers: json, payload: { flushedBytes: '0x1000', durationNs: 12 } });
    expect(again.statusCode).toBe(200);
    expect(again.body).toBe(acked.body);
  });

  it('keeps the report of a body zod accepts, and refuses what zod refuses', async () => {
    app = await build();
    const a = app;
    const id = await pinnedJob(a);
    for (const payload of [{ flushedBytes: 'lots' }, { durationNs: -1 }, { durationNs: 1.5 }, { other: 1 }, [1]]) {
      const res = await a.inject({ method: 'POST', url: `/v1/flush-jobs/${id}/ack`, headers: json, payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
    }
    const long = await a.inject({ method: 'POST', url: `/v1/flush-jobs/${'x'.repeat(101)}/ack` });
    expect(long.statusCode).toBe(400);
    const res = await a.inject({ method: 'POST', url: `/v1/flush-jobs/${id}/ack`, headers: json, payload: { flushedBytes: '0x1000', durationNs: 12 } });
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ id, state: 'acknowledged', report: { flushedBytes: '0x1000', durationNs: 12 } });
  });

  it('answers an unknown job 404 as a problem', async () => {
    app = await build();
    const res = await app.inject({ method: 'POST', url: '/v1/flush-jobs/fj-none/ack' });
    expect(res.statusCode).toBe(404);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'UNKNOWN_FLUSH_JOB' });
  });
});
