/**
 * Obligations per answer (SPEC section 3): the flush an answer demands is that answer's own job,
 * exactly its ranges, never shared or grown; an acknowledgement covers exactly that job;
 * `flush.after` names every outstanding flush the answer's safety relies on, from the exposure
 * the change leaves; a teardown settles the VM's outstanding flushes; backpressure never refuses
 * a release; reads while restoring answer 503, never a false 404; acks are kept exactly once; a
 * restart under FLUSH_ACKS=answered keeps waiting for what was promised under `required`.
 * Each test replays one finding of the protocol review, with the default acknowledgement mode.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, parseQuirkFile } from '../../src/domain/index.js';
import { createRuntime, type RuntimeOptions } from '../../src/service/runtime.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { build, json } from '../helpers/app.js';

const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
});
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Flush {
  required: boolean;
  ranges: { hpa: string; length: string }[];
  jobId?: string;
  after?: string[];
}
type Body = Record<string, unknown> & { flush?: Flush };

async function start(options: Partial<RuntimeOptions> = {}): Promise<FastifyInstance> {
  const a = await build({ runtime: createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile({ quirks: [] }), threads: 1, ...options }) });
  apps.push(a);
  return a;
}

async function call(a: FastifyInstance, method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: object): Promise<{ status: number; body: Body }> {
  const res = await a.inject({ method, url, headers: payload === undefined ? {} : json, ...(payload === undefined ? {} : { payload }) });
  return { status: res.statusCode, body: JSON.parse(res.body) as Body };
}

async function ok(a: FastifyInstance, method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: object): Promise<Body> {
  const res = await call(a, method, url, payload);
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

const X = '0000:01:00.0';
const Y = '0000:02:00.0';
const Z = '0000:03:00.0';
const NIC = { vendorId: '0x10ee', deviceId: '0x903f', function: 'pf' };

/**
 * vm1 (trap, onEnable allow): non-coherent d0 and d1; X in d0, Y and Z in d1, bits clear. R0 is
 * pinned into both domains, R1 into d1 only: nothing flushed yet (no domain exposed).
 */
async function twoDomains(a: FastifyInstance): Promise<void> {
  await ok(a, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
  for (const d of ['d0', 'd1']) await ok(a, 'PUT', `/v1/vms/vm1/domains/${d}`, { enforceCacheCoherency: false });
  await ok(a, 'PUT', `/v1/vms/vm1/devices/${X}`, { domainId: 'd0', ...NIC, nosnoop: 'disabled' });
  for (const bdf of [Y, Z]) await ok(a, 'PUT', `/v1/vms/vm1/devices/${bdf}`, { domainId: 'd1', ...NIC, nosnoop: 'disabled' });
  expect((await ok(a, 'POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x100000', length: '0x1000' })).flush?.required).toBe(false);
  expect((await ok(a, 'POST', '/v1/vms/vm1/pins', { iova: '0x1000', hpa: '0x200000', length: '0x1000', domains: ['d1'] })).flush?.required).toBe(false);
}

/** X and Y enabled at once (one batching window): their answers and their jobs. */
async function enableXY(a: FastifyInstance): Promise<{ enableX: Body; enableY: Body; jx: string; jy: string }> {
  const [enableX, enableY] = await Promise.all([ok(a, 'POST', `/v1/vms/vm1/devices/${X}/devctl`, { nosnoopEnable: true }), ok(a, 'POST', `/v1/vms/vm1/devices/${Y}/devctl`, { nosnoopEnable: true })]);
  return { enableX, enableY, jx: enableX.flush?.jobId as string, jy: enableY.flush?.jobId as string };
}

const R0 = { hpa: '0x100000', length: '0x1000' };
const R1 = { hpa: '0x200000', length: '0x1000' };

describe('the obligation is the answer\'s', () => {
  it('two enables in one batching window: each answer has a job of its own, and B\'s after names A\'s replay of R0', async () => {
    const a = await start({ windowMs: 500 });
    await twoDomains(a);
    const { enableX, enableY, jx, jy } = await enableXY(a);
    expect(enableX.flush?.ranges).toEqual([R0]);
    // Y's replay into d1 skips R0 (X's replay set its flag) and lists R1 only ...
    expect(enableY.flush?.ranges).toEqual([R1]);
    expect(jy).not.toBe(jx);
    // ... so Y's VMM must wait for X's replay before it writes Y's bit.
    expect(enableY.flush?.after).toEqual([jx]);
    // Each job lists exactly its own answer's ranges, though they were planned in one batch.
    const rx = await ok(a, 'GET', `/v1/flush-jobs/${jx}/ranges`);
    const ry = await ok(a, 'GET', `/v1/flush-jobs/${jy}/ranges`);
    expect(rx['items']).toEqual([R0]);
    expect(ry['items']).toEqual([R1]);
    const job = await ok(a, 'GET', `/v1/flush-jobs/${jy}`);
    expect(job).toMatchObject({ decisions: 1, batch: { decisions: 2, bytes: '0x2000' } });
    expect((job['batch'] as { id: string }).id).toBe(((await ok(a, 'GET', `/v1/flush-jobs/${jx}`))['batch'] as { id: string }).id);
  });

  it('an ack covers only its own answer\'s ranges: a later enable into Y\'s domain still names Y\'s unacknowledged replay', async () => {
    const a = await start({ windowMs: 500 });
    await twoDomains(a);
    const { jx, jy } = await enableXY(a);
    // X's caller flushes what its answer listed and acknowledges its job (the README's pattern).
    expect(await ok(a, 'POST', `/v1/flush-jobs/${jx}/ack`)).toMatchObject({ id: jx, state: 'acknowledged' });
    expect((await ok(a, 'GET', `/v1/flush-jobs/${jy}`))['state']).toBe('pending');
    const enableZ = await ok(a, 'POST', `/v1/vms/vm1/devices/${Z}/devctl`, { nosnoopEnable: true });
    expect(enableZ.flush?.required).toBe(false);
    expect(enableZ.flush?.after).toEqual([jy]);
    expect((await ok(a, 'GET', '/v1/vms/vm1'))['openFlushJobs']).toEqual([jy]);
  });

  it('a live device moved into a non-coherent domain under a denying policy names the outstanding replay it can reach at once', async () => {
    const a = await start();
    await twoDomains(a);
    const enableY = await ok(a, 'POST', `/v1/vms/vm1/devices/${Y}/devctl`, { nosnoopEnable: true });
    const jy = enableY.flush?.jobId as string;
    await ok(a, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'deny' } });
    // W a live device whose bit reads 1, attached to a coherent domain, then moved into d1.
    await ok(a, 'PUT', '/v1/vms/vm1/domains/dc', { enforceCacheCoherency: true });
    await ok(a, 'PUT', '/v1/vms/vm1/devices/0000:04:00.0', { domainId: 'dc', ...NIC, nosnoop: 'enabled' });
    const moved = await ok(a, 'PUT', '/v1/vms/vm1/devices/0000:04:00.0', { domainId: 'd1', ...NIC, nosnoop: 'enabled' });
    expect(moved['hardwareValue']).toBe('0x2010'); // told to clear the bit, but it is live meanwhile
    expect(moved.flush?.after).toContain(jy);
  });
});

describe('teardown settles', () => {
  it('DELETE /v1/vms/{id} covers the VM\'s outstanding flushes with its own; a VM made again under the id starts with none', async () => {
    const a = await start();
    await twoDomains(a);
    const enableY = await ok(a, 'POST', `/v1/vms/vm1/devices/${Y}/devctl`, { nosnoopEnable: true });
    const jy = enableY.flush?.jobId as string;
    await ok(a, 'GET', `/v1/flush-jobs/${jy}/ranges`);
    const deleted = await call(a, 'DELETE', '/v1/vms/vm1');
    expect(deleted.status).toBe(200);
    // Its own teardown flush lists the outstanding replay's ranges (R1), after the unmap.
    expect(deleted.body.flush?.ranges).toEqual(expect.arrayContaining([R1]));
    expect((deleted.body['reasons'] as { rule: string; message: string }[]).some((r) => r.rule === 'F5' && /outstanding flush job/.test(r.message))).toBe(true);
    expect((await ok(a, 'GET', `/v1/flush-jobs/${jy}`))['state']).toBe('done');
    await ok(a, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    expect((await ok(a, 'GET', '/v1/vms/vm1'))['openFlushJobs']).toEqual([]);
    await ok(a, 'PUT', '/v1/vms/vm1/domains/d1', { enforceCacheCoherency: false });
    await ok(a, 'PUT', `/v1/vms/vm1/devices/${Y}`, { domainId: 'd1', ...NIC, nosnoop: 'disabled' });
    // ?wait=true has nothing of the old VM's to wait for.
    const again = await call(a, 'POST', `/v1/vms/vm1/devices/${Y}/devctl?wait=true`, { nosnoopEnable: true });
    expect(again.status).toBe(200);
    expect(again.body.flush?.after).toBeUndefined();
    // Acknowledging the settled job still answers.
    expect((await call(a, 'POST', `/v1/flush-jobs/${jy}/ack`)).status).toBe(200);
  });
});

describe('backpressure refuses only what adds obligations', () => {
  it('with MAX_UNACKED_JOBS reached, pins are refused but unpins, bit clears, removals and teardown go through', async () => {
    const a = await start({ maxUnackedJobs: 1, windowMs: 0 });
    await ok(a, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await ok(a, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
    await ok(a, 'PUT', `/v1/vms/vm1/devices/${X}`, { domainId: 'd0', ...NIC, nosnoop: 'disabled' });
    await ok(a, 'POST', '/v1/vms/vm1/pins?wait=true', { iova: '0x0', hpa: '0x100000', length: '0x1000' });
    expect((await call(a, 'POST', '/v1/vms/vm1/pins', { iova: '0x1000', hpa: '0x200000', length: '0x1000' })).body).toMatchObject({ code: 'OVERLOADED' });
    expect((await call(a, 'POST', `/v1/vms/vm1/devices/${X}/devctl`, { nosnoopEnable: false })).status).toBe(200);
    // The VMM reports the bit clear, and resets the device restoring its config.
    expect((await call(a, 'PUT', `/v1/vms/vm1/devices/${X}`, { domainId: 'd0', ...NIC, nosnoop: 'disabled' })).status).toBe(200);
    expect((await call(a, 'POST', `/v1/vms/vm1/devices/${X}/reset`, { restoresConfig: true })).status).toBe(200);
    expect((await call(a, 'POST', '/v1/vms/vm1/unpins', { iova: '0x0', length: '0x1000' })).status).toBe(200);
    expect((await call(a, 'DELETE', `/v1/vms/vm1/devices/${X}`)).status).toBe(200);
    expect((await call(a, 'DELETE', '/v1/vms/vm1')).status).toBe(200);
  });
});

describe('acknowledgements are kept exactly once', () => {
  it('acking again a job acknowledged and dropped from the history answers 200', async () => {
    const a = await start({ windowMs: 0, jobHistory: 2 });
    await ok(a, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await ok(a, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const pin = await ok(a, 'POST', '/v1/vms/vm1/pins?wait=true', { iova: `0x${(i * 0x1000).toString(16)}`, hpa: `0x${(0x100000 + i * 0x2000).toString(16)}`, length: '0x1000' });
      ids.push(pin.flush?.jobId as string);
      await ok(a, 'POST', `/v1/flush-jobs/${pin.flush?.jobId as string}/ack`);
    }
    const listed = ((await ok(a, 'GET', '/v1/vms/vm1/flush-jobs'))['items'] as { id: string }[]).map((j) => j.id);
    expect(listed).not.toContain(ids[0]);
    expect(await ok(a, 'POST', `/v1/flush-jobs/${ids[0] as string}/ack`)).toMatchObject({ id: ids[0], state: 'acknowledged' });
    expect((await call(a, 'POST', '/v1/flush-jobs/fj-never-issued/ack')).status).toBe(404);
  });

  it('many acks at once while other answers join the same batches: every ack answered 200 leaves its job acknowledged', async () => {
    // On the durable store: an answer's change is being committed while others are acknowledged.
    const dir = mkdtempSync(join(tmpdir(), 'coherency-acks-at-once-'));
    dirs.push(dir);
    const a = await start({ windowMs: 20, store: new SqliteStore(dir) });
    await a.policy.restore();
    await ok(a, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await ok(a, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
    const pins = Array.from({ length: 200 }, (_, i) =>
      ok(a, 'POST', '/v1/vms/vm1/pins', { iova: `0x${(i * 0x1000).toString(16)}`, hpa: `0x${(0x1000000 + i * 0x2000).toString(16)}`, length: '0x1000' }).then(async (pin) => {
        // Acknowledged at once, while later pins still join the open batch.
        const ack = await call(a, 'POST', `/v1/flush-jobs/${pin.flush?.jobId as string}/ack`);
        expect(ack.status).toBe(200);
        expect(ack.body['state']).toBe('acknowledged');
        return pin.flush?.jobId as string;
      })
    );
    const ids = await Promise.all(pins);
    for (const id of ids) expect((await ok(a, 'GET', `/v1/flush-jobs/${id}`))['state']).toBe('acknowledged');
    expect((await ok(a, 'GET', '/v1/vms/vm1'))['openFlushJobs']).toEqual([]);
  });
});

describe('restarts re-decide nothing, acknowledgements included', () => {
  it('a replay promised under FLUSH_ACKS=required stays outstanding after a restart under answered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coherency-acks-'));
    dirs.push(dir);
    const first = await start({ store: new SqliteStore(dir) });
    await first.policy.restore();
    await twoDomains(first);
    const enableY = await ok(first, 'POST', `/v1/vms/vm1/devices/${Y}/devctl`, { nosnoopEnable: true });
    const jy = enableY.flush?.jobId as string;
    await ok(first, 'GET', `/v1/flush-jobs/${jy}/ranges`);
    await first.close();
    apps.splice(apps.indexOf(first), 1);

    const second = await start({ store: new SqliteStore(dir), flushAcks: 'answered' });
    await second.policy.restore();
    expect(await ok(second, 'GET', `/v1/flush-jobs/${jy}`)).toMatchObject({ state: 'pending', acknowledgedAt: null });
    expect((await ok(second, 'GET', '/v1/vms/vm1'))['openFlushJobs']).toEqual([jy]);
    const enableZ = await ok(second, 'POST', `/v1/vms/vm1/devices/${Z}/devctl`, { nosnoopEnable: true });
    expect(enableZ.flush?.after).toEqual([jy]);
    expect((await ok(second, 'POST', `/v1/flush-jobs/${jy}/ack`))['state']).toBe('acknowledged');
  });
});

describe('honest while restoring', () => {
  it('before the state is loaded, reads answer 503 NOT_READY with Retry-After, never 404', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coherency-notready-'));
    dirs.push(dir);
    const a = await start({ store: new SqliteStore(dir) });
    for (const url of ['/v1/vms/vm1', '/v1/vms', '/v1/vms/vm1/pins', '/v1/quirks', '/v1/vms/vm1/flush-jobs', '/v1/flush-jobs/fj-0', '/v1/flush-jobs/fj-0/ranges']) {
      const res = await a.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(503);
      expect(res.headers['retry-after'], url).toBeDefined();
      expect(res.json(), url).toMatchObject({ code: 'NOT_READY' });
    }
    await a.policy.restore();
    expect((await a.inject({ method: 'GET', url: '/v1/vms/vm1' })).statusCode).toBe(404);
  });
});
