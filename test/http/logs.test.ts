/**
 * What the default logs (info) hold: no line per request on the hot routes but one `vm activity`
 * line per active VM per period; every refusal (folded past the first few of a code to a client
 * in a period), every change by an admin token, every event-stream connect and disconnect, and
 * every store outage and recovery.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY } from '../../src/domain/index.js';
import { TokenTable } from '../../src/http/auth.js';
import { REFUSALS_LOGGED_PER_PERIOD } from '../../src/http/log-summary.js';
import { createRuntime } from '../../src/service/runtime.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { StateStore } from '../../src/store/state-store.js';
import { build, gpuVm, json, LogSink } from '../helpers/app.js';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function logged(options: Parameters<typeof build>[0] = {}): Promise<{ a: FastifyInstance; sink: LogSink }> {
  const sink = new LogSink();
  // No timer: the test ends each period itself (app.activity.write()).
  const a = await build({ logSummaryIntervalMs: 0, ...options, logger: { level: 'info', stream: sink } });
  app = a;
  return { a, sink };
}

async function send(a: FastifyInstance, method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: object, headers: Record<string, string> = {}) {
  const res = await a.inject({ method, url, headers: { ...(payload === undefined ? {} : json), ...headers }, ...(payload === undefined ? {} : { payload }) });
  return { status: res.statusCode, body: res.json<Record<string, unknown> & { flush?: { jobId?: string } }>() };
}

const pinOf = (i: number) => ({ iova: `0x${(i * 0x1000).toString(16)}`, hpa: `0x${(0x100000 + i * 0x1000).toString(16)}`, length: '0x1000' });

describe('the per-VM activity summary', () => {
  it('one info line per active VM per period, with its counts, flushes and refusals; none per hot request; idle and deleted VMs dropped', async () => {
    const { a, sink } = await logged();
    await gpuVm(a);
    await send(a, 'PUT', '/v1/vms/idle', { arch: 'x86_64' });
    const before = sink.lines.length;
    const jobs = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const pin = await send(a, 'POST', '/v1/vms/vm1/pins', pinOf(i));
      expect(pin.status).toBe(200);
      jobs.add(pin.body.flush?.jobId as string);
    }
    for (let i = 0; i < 2; i++) expect((await send(a, 'POST', '/v1/vms/vm1/decisions/flush', { op: 'unmap', ranges: [{ iova: '0x0', length: '0x1000' }] })).status).toBe(200);
    expect((await send(a, 'POST', '/v1/vms/vm1/unpins', { iova: '0x2000', length: '0x1000' })).status).toBe(200);
    for (const j of jobs) {
      await send(a, 'GET', `/v1/flush-jobs/${j}/ranges`); // planned
      expect((await send(a, 'POST', `/v1/flush-jobs/${j}/ack`)).status).toBe(200);
    }
    // Hot requests that succeed write nothing at info; the reads above (not hot) write their access line.
    expect(sink.lines.slice(before).filter((l) => l['msg'] !== 'request completed')).toEqual([]);
    expect((await send(a, 'POST', '/v1/vms/vm1/pins', pinOf(0))).status).toBe(409);

    a.activity.write();
    const summaries = sink.lines.filter((l) => l['msg'] === 'vm activity');
    expect(summaries).toHaveLength(1);
    const unpinJob = 1; // the unpin's flush (F3) joins a job of its own
    expect(summaries[0]).toMatchObject({
      level: 30,
      vmId: 'vm1',
      decisions: 2,
      pins: 3,
      unpins: 1,
      acks: jobs.size,
      flushes: 4,
      flushBytes: '0x4000',
      flushRanges: 4,
      refusals: { PIN_OVERLAP: 1 }
    });
    expect(summaries[0]?.['flushJobs']).toBeGreaterThanOrEqual(1);
    expect(summaries[0]?.['flushJobs']).toBeLessThanOrEqual(jobs.size + unpinJob);
    expect(typeof summaries[0]?.['periodS']).toBe('number');

    // A period without activity: no line, and the VM is forgotten.
    a.activity.write();
    expect(sink.lines.filter((l) => l['msg'] === 'vm activity')).toHaveLength(1);

    // A deleted VM's last activity is written at once; nothing of it afterwards.
    await send(a, 'POST', '/v1/vms/vm1/decisions/flush', { op: 'unmap', ranges: [{ iova: '0x0', length: '0x1000' }] });
    expect((await send(a, 'DELETE', '/v1/vms/vm1')).status).toBe(200);
    expect(sink.lines.filter((l) => l['msg'] === 'vm activity').at(-1)).toMatchObject({ vmId: 'vm1', decisions: 1, pins: 0 });
    a.activity.write();
    expect(sink.lines.filter((l) => l['msg'] === 'vm activity')).toHaveLength(2);
  });

  it('is written by itself every period', async () => {
    const { a, sink } = await logged({ logSummaryIntervalMs: 100 });
    await gpuVm(a);
    expect((await send(a, 'POST', '/v1/vms/vm1/decisions/flush', { op: 'map', ranges: [{ iova: '0x0', length: '0x1000' }] })).status).toBe(200);
    const counted = () => sink.lines.find((l) => l['msg'] === 'vm activity' && l['decisions'] === 1);
    for (let i = 0; i < 50 && counted() === undefined; i++) await new Promise((r) => setTimeout(r, 20));
    expect(counted()).toMatchObject({ level: 30, vmId: 'vm1', decisions: 1 });
  });
});

describe('probes and scrapes', () => {
  it('/healthz, /readyz and /metrics write no line at info', async () => {
    const { a, sink } = await logged();
    for (const url of ['/healthz', '/readyz', '/metrics']) expect((await a.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    expect(sink.lines).toEqual([]);
  });
});

describe('refusals', () => {
  it('every refusal has its line with its code (not a 404 on a read); past the first few of a code to a client, they are folded into one line a period', async () => {
    const { a, sink } = await logged();
    await gpuVm(a);
    expect((await send(a, 'GET', '/v1/vms/nope', undefined, { 'x-request-id': 'read-miss' })).status).toBe(404);
    expect(sink.lines.find((l) => l['reqId'] === 'read-miss')).toMatchObject({ level: 30, msg: 'request completed', statusCode: 404 });
    expect((await send(a, 'POST', '/v1/vms/nope/pins', pinOf(0), { 'x-request-id': 'change-miss' })).status).toBe(404);
    expect(sink.lines.find((l) => l['reqId'] === 'change-miss')).toMatchObject({ level: 30, msg: 'refused', statusCode: 404, code: 'UNKNOWN_VM', vmId: 'nope', client: '127.0.0.1' });
    expect((await send(a, 'POST', '/v1/vms/vm1/pins', { iova: 'zz', hpa: '0x0', length: '0x1000' }, { 'x-request-id': 'bad' })).status).toBe(400);
    expect(sink.lines.find((l) => l['reqId'] === 'bad')).toMatchObject({ level: 30, msg: 'refused', statusCode: 400, code: 'INVALID_HEX', vmId: 'vm1' });

    await send(a, 'POST', '/v1/vms/vm1/pins', pinOf(0));
    const floods = 20;
    for (let i = 0; i < floods; i++) expect((await send(a, 'POST', '/v1/vms/vm1/pins', pinOf(0))).status).toBe(409);
    expect(sink.lines.filter((l) => l['msg'] === 'refused' && l['code'] === 'PIN_OVERLAP')).toHaveLength(REFUSALS_LOGGED_PER_PERIOD);
    a.activity.write();
    expect(sink.lines.find((l) => l['msg'] === 'refusals folded')).toMatchObject({ level: 30, client: '127.0.0.1', code: 'PIN_OVERLAP', statusCode: 409, refused: floods, logged: REFUSALS_LOGGED_PER_PERIOD, folded: floods - REFUSALS_LOGGED_PER_PERIOD });
    expect(sink.lines.find((l) => l['msg'] === 'vm activity' && l['vmId'] === 'vm1')).toMatchObject({ refusals: { PIN_OVERLAP: floods, INVALID_HEX: 1 } });
    expect(sink.lines.find((l) => l['msg'] === 'vm activity' && l['vmId'] === 'nope')).toMatchObject({ refusals: { UNKNOWN_VM: 1 } });
    // A new period logs the first few again.
    await send(a, 'POST', '/v1/vms/vm1/pins', pinOf(0));
    expect(sink.lines.filter((l) => l['msg'] === 'refused' && l['code'] === 'PIN_OVERLAP')).toHaveLength(REFUSALS_LOGGED_PER_PERIOD + 1);
  });

  it('a 429 flood writes a few lines, then one folded line', async () => {
    const { a, sink } = await logged({ rateLimit: 2 });
    for (let i = 0; i < 30; i++) await send(a, 'GET', '/v1/policy');
    expect(sink.lines.filter((l) => l['msg'] === 'refused')).toHaveLength(REFUSALS_LOGGED_PER_PERIOD);
    expect(sink.lines.find((l) => l['msg'] === 'refused')).toMatchObject({ level: 30, code: 'RATE_LIMITED', statusCode: 429 });
    a.activity.write();
    expect(sink.lines.find((l) => l['msg'] === 'refusals folded')).toMatchObject({ code: 'RATE_LIMITED', refused: 28, folded: 28 - REFUSALS_LOGGED_PER_PERIOD });
  });
});

describe('changes by an admin token', () => {
  it('are logged at info, hot route or not; the same change by a vmm token on a hot route is not', async () => {
    const tokens = new TokenTable([
      { id: 'ops', token: 'admin-token-0123456789', scopes: ['admin'] },
      { id: 'vmm-1', token: 'vmm-token-01234567890', scopes: ['vmm'], vms: ['vm1'] }
    ]);
    const { a, sink } = await logged({ tokens });
    const admin = { authorization: 'Bearer admin-token-0123456789' };
    const vmm = { authorization: 'Bearer vmm-token-01234567890' };
    expect((await send(a, 'PUT', '/v1/vms/vm1', { arch: 'x86_64' }, { ...vmm, 'x-request-id': 'vmm-vm' })).status).toBe(201);
    expect(sink.lines.find((l) => l['reqId'] === 'vmm-vm')).toMatchObject({ level: 30, msg: 'decision', actor: 'vmm-1' });
    await send(a, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false }, vmm);
    expect((await send(a, 'POST', '/v1/vms/vm1/pins', pinOf(0), { ...vmm, 'x-request-id': 'vmm-pin' })).status).toBe(200);
    expect(sink.lines.filter((l) => l['reqId'] === 'vmm-pin')).toEqual([]);
    expect((await send(a, 'POST', '/v1/vms/vm1/pins', pinOf(1), { ...admin, 'x-request-id': 'admin-pin' })).status).toBe(200);
    expect(sink.lines.find((l) => l['reqId'] === 'admin-pin')).toMatchObject({ level: 30, msg: 'admin change', actor: 'ops', method: 'POST', url: '/v1/vms/vm1/pins', statusCode: 200, decision: 'pin', vmId: 'vm1' });
    expect((await send(a, 'PUT', '/v1/quirks', { quirks: [] }, { ...admin, 'x-request-id': 'admin-quirks' })).status).toBe(200);
    expect(sink.lines.find((l) => l['reqId'] === 'admin-quirks' && l['msg'] === 'admin change')).toMatchObject({ level: 30, actor: 'ops', method: 'PUT', url: '/v1/quirks' });
    // An admin's read-only question is not a change.
    expect((await send(a, 'POST', '/v1/vms/vm1/decisions/flush', { op: 'unmap', ranges: [{ iova: '0x0', length: '0x1000' }] }, { ...admin, 'x-request-id': 'admin-query' })).status).toBe(200);
    expect(sink.lines.filter((l) => l['reqId'] === 'admin-query')).toEqual([]);
    // A refusal to a token names it.
    expect((await send(a, 'PUT', '/v1/quirks', { quirks: [] }, { ...vmm, 'x-request-id': 'vmm-quirks' })).status).toBe(403);
    expect(sink.lines.find((l) => l['reqId'] === 'vmm-quirks')).toMatchObject({ level: 30, msg: 'refused', code: 'FORBIDDEN', client: 'vmm-1' });
  });
});

describe('event streams', () => {
  it('connect and disconnect are logged, with the VM, the client, the duration and the events sent', async () => {
    const { a, sink } = await logged();
    const base = await a.listen({ host: '127.0.0.1', port: 0 });
    await gpuVm(a);
    const controller = new AbortController();
    const res = await fetch(`${base}/v1/vms/vm1/events`, { signal: controller.signal });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    const readUntil = async (needle: string): Promise<void> => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${needle}`);
        text += new TextDecoder().decode(value);
      }
    };
    await readUntil(': events of VM vm1');
    expect(sink.lines.find((l) => l['msg'] === 'event stream opened')).toMatchObject({ level: 30, vmId: 'vm1', client: 'address 127.0.0.1', lastEventId: null });
    await send(a, 'POST', '/v1/vms/vm1/pins', pinOf(0));
    await readUntil('event: decision');
    controller.abort();
    for (let i = 0; i < 100 && !sink.lines.some((l) => l['msg'] === 'event stream closed'); i++) await new Promise((r) => setTimeout(r, 20));
    const closed = sink.lines.find((l) => l['msg'] === 'event stream closed');
    expect(closed).toMatchObject({ level: 30, vmId: 'vm1', client: 'address 127.0.0.1', reason: 'client closed' });
    expect(closed?.['events']).toBeGreaterThanOrEqual(1);
    expect(typeof closed?.['durationMs']).toBe('number');
  });
});

/** A memory store that can be taken down, like a database that stops answering. */
function flakyStore(): { store: StateStore; setDown: (down: boolean) => void } {
  const inner = new MemoryStore();
  let down = false;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || prop === 'close') return value;
      return (...args: unknown[]) => (down ? Promise.reject(new Error('connection refused')) : (value as (...a: unknown[]) => unknown).apply(target, args));
    }
  });
  return { store, setDown: (d) => (down = d) };
}

describe('store outages', () => {
  it('the outage is logged once at warn when it starts, the recovery at info with how long it lasted', async () => {
    const { store, setDown } = flakyStore();
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: [], store, threads: 1 });
    await runtime.service.restore();
    const { a, sink } = await logged({ runtime });
    await send(a, 'PUT', '/v1/vms/vm1', { arch: 'x86_64' });
    setDown(true);
    for (let i = 0; i < 3; i++) expect((await send(a, 'PUT', `/v1/vms/vm${i + 2}`, { arch: 'x86_64' })).status).toBe(503);
    const down = sink.lines.filter((l) => typeof l['msg'] === 'string' && l['msg'].startsWith('store unavailable'));
    expect(down).toHaveLength(1);
    expect(down[0]).toMatchObject({ level: 40, err: { message: 'connection refused' } });
    // Each 503 is a refusal at warn.
    expect(sink.lines.find((l) => l['msg'] === 'refused')).toMatchObject({ level: 40, statusCode: 503, code: 'STORE_UNAVAILABLE' });
    await new Promise((r) => setTimeout(r, 300));
    setDown(false);
    for (let i = 0; i < 100 && !sink.lines.some((l) => typeof l['msg'] === 'string' && l['msg'].startsWith('store recovered')); i++) await new Promise((r) => setTimeout(r, 50));
    const up = sink.lines.find((l) => typeof l['msg'] === 'string' && l['msg'].startsWith('store recovered'));
    expect(up).toMatchObject({ level: 30, cause: 'connection refused' });
    expect(up?.['outageMs']).toBeGreaterThanOrEqual(300);
    expect((await send(a, 'PUT', '/v1/vms/vm9', { arch: 'x86_64' })).status).toBe(201);
  });
});
