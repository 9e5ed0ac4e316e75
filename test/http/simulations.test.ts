/**
 * POST /v1/simulations replays a reference trace or an uploaded one under every mode; the result
 * is kept for GET and drawn by chart.svg. Bad traces are 400 INVALID_TRACE naming the line.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY } from '../../src/domain/index.js';
import { createRuntime } from '../../src/service/runtime.js';
import { build, json } from '../helpers/app.js';

const TRACE = [
  '{"t":"vm","vm":"vm1","arch":"x86_64"}',
  '{"t":"domain","vm":"vm1","domain":"d0","coherent":false}',
  '{"t":"device","vm":"vm1","bdf":"0000:00:05.0","domain":"d0","vendorId":"0x10ee","deviceId":"0x903f","nosnoop":"enabled"}',
  '{"t":"pin","vm":"vm1","iova":"0x0","hpa":"0x100000000","length":"0x200000"}',
  '{"t":"unpin","vm":"vm1","iova":"0x0","length":"0x200000"}'
].join('\n');

describe('simulations', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await build();
  });
  afterAll(async () => {
    await app.close();
  });

  it("replays under the server's own defaults and quirk list, and says which", async () => {
    const allowing = await build({ runtime: createRuntime({ defaults: { ...DEFAULT_POLICY, onEnable: 'allow' }, quirks: [], threads: 1, simThreads: 0 }) });
    try {
      const res = await allowing.inject({ method: 'POST', url: '/v1/simulations', headers: json, payload: { trace: TRACE, modes: ['trap'] } });
      expect(res.statusCode).toBe(201);
      const body = res.json<{ config: unknown; modes: { flush: { bytes: number } }[] }>();
      expect(body.config).toEqual({ onEnable: 'allow', exemptNeedsNoSnoop: true, quirks: 0 });
      // The server allows the FPGA's bit: its pin and unpin are flushed, as this server would.
      expect(body.modes[0]?.flush.bytes).toBe(4 * 2 ** 20);
    } finally {
      await allowing.close();
    }
  });

  it('replays an uploaded trace under every mode and keeps the result', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/simulations', headers: json, payload: { trace: TRACE } });
    expect(res.statusCode).toBe(201);
    const body = res.json<{ id: string; modes: { mode: string; flush: { bytes: number; jobs: number }; violations: { total: number } }[]; trace: { name: string; events: number }; links: { self: string; chart: string } }>();
    expect(res.headers.location).toBe(`/v1/simulations/${body.id}`);
    expect(body.trace).toMatchObject({ name: 'uploaded', events: 5 });
    // Under the built-in defaults trap denies the FPGA's bit, so its attach clears it: no flush.
    expect(body.modes.map((m) => [m.mode, m.flush.bytes, m.flush.jobs, m.violations.total])).toEqual([
      ['pessimistic', 4 * 2 ** 20, 2, 0],
      ['trap', 0, 0, 0],
      ['virtualize-zero', 0, 0, 0]
    ]);
    const again = await app.inject({ method: 'GET', url: body.links.self });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(body);
    const chart = await app.inject({ method: 'GET', url: body.links.chart });
    expect(chart.statusCode).toBe(200);
    expect(chart.headers['content-type']).toBe('image/svg+xml; charset=utf-8');
    expect(chart.body.match(/<rect class="bar" data-mode="([a-z-]+)"/g)).toHaveLength(3);
    // The service's own state is untouched.
    expect((await app.inject({ method: 'GET', url: '/v1/vms' })).json()).toEqual({ items: [] });
  });

  it('replays a reference trace by name, only the modes asked', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/simulations', headers: json, payload: { reference: 'server-1tib', modes: ['trap', 'pessimistic'] } });
    expect(res.statusCode).toBe(201);
    const body = res.json<{ modes: { mode: string; flush: { bytes: number; byCause: Record<string, number> } }[]; summary: { safe: boolean; bytesSavedVsPessimistic: Record<string, number> } }>();
    expect(body.modes.map((m) => m.mode)).toEqual(['trap', 'pessimistic']);
    expect(body.modes[0]?.flush.byCause).toEqual({ pin: 0, unpin: 0, replay: 2 ** 40, teardown: 2 ** 40 });
    expect(body.summary).toEqual({ safe: true, bytesSavedVsPessimistic: { trap: 0, pessimistic: 0 } });
  });

  it.each([
    [{ trace: `${TRACE}\n{"t":"pin","vm":"vm1","iova":"0x0"}` }, 'INVALID_TRACE', 'trace line 6'],
    [{ trace: '' }, 'INVALID_TRACE', 'no events'],
    [{ reference: 'desktop-gpu', trace: TRACE }, 'VALIDATION_FAILED', 'does not match'],
    [{}, 'VALIDATION_FAILED', 'does not match'],
    [{ reference: 'nope' }, 'VALIDATION_FAILED', 'does not match'],
    [{ reference: 'desktop-gpu', modes: ['fast'] }, 'VALIDATION_FAILED', 'does not match']
  ])('rejects %j as %s', async (payload, code, detail) => {
    const res = await app.inject({ method: 'POST', url: '/v1/simulations', headers: json, payload });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ code });
    expect(res.json<{ detail: string }>().detail).toContain(detail);
  });

  it('answers 404 for a simulation it does not hold', async () => {
    for (const url of ['/v1/simulations/0f0f', '/v1/simulations/0f0f/chart.svg']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ code: 'UNKNOWN_SIMULATION' });
    }
  });
});
