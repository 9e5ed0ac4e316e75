/**
 * The VMM protocol (FLUSH_ACKS=required, the default): a flush job is pending until the VMM of
 * its VM acknowledges it; answers that are safe only once an outstanding replay is done say so
 * in `flush.after`; `?wait=true` waits for those acknowledgements before deciding (503 and
 * nothing changed when they do not come); flushes caused by someone else (an operator's quirk
 * change) are pending jobs of the affected VM.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { TokenTable } from '../../src/http/auth.js';
import { DEFAULT_POLICY, parseQuirkFile } from '../../src/domain/index.js';
import { createRuntime } from '../../src/service/runtime.js';
import { build, json } from '../helpers/app.js';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

type Body = Record<string, unknown> & { flush?: { jobId?: string; after?: string[]; required?: boolean; cause?: string; receipt?: { state: string } } };

async function call(a: FastifyInstance, method: 'GET' | 'PUT' | 'POST', url: string, payload?: object, token?: string): Promise<{ status: number; body: Body }> {
  const res = await a.inject({ method, url, headers: { ...(payload === undefined ? {} : json), ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) }, ...(payload === undefined ? {} : { payload }) });
  return { status: res.statusCode, body: JSON.parse(res.body) as Body };
}

async function ok(a: FastifyInstance, method: 'GET' | 'PUT' | 'POST', url: string, payload?: object, token?: string): Promise<Body> {
  const res = await call(a, method, url, payload, token);
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

const X = '0000:01:00.0';
const Y = '0000:02:00.0';
const Z = '0000:03:00.0';

/** vm1: trap, onEnable allow; three devices with the bit clear in non-coherent d0; three pinned pages. */
async function twoDevices(a: FastifyInstance): Promise<void> {
  await ok(a, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
  await ok(a, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
  for (const bdf of [X, Y, Z]) await ok(a, 'PUT', `/v1/vms/vm1/devices/${bdf}`, { domainId: 'd0', vendorId: '0x10ee', deviceId: '0x903f', function: 'pf', nosnoop: 'disabled' });
  const pin = await ok(a, 'POST', '/v1/vms/vm1/pins', { ranges: [0, 1, 2].map((i) => ({ iova: `0x${(i * 0x2000).toString(16)}`, hpa: `0x${(0x100000 + i * 0x4000).toString(16)}`, length: '0x1000' })) });
  expect(pin.flush?.required).toBe(false);
}

/** Enables X: allowed, with the replay of the three pages (job J), which stays pending. */
async function enableX(a: FastifyInstance): Promise<string> {
  const x = await ok(a, 'POST', `/v1/vms/vm1/devices/${X}/devctl`, { nosnoopEnable: true });
  expect(x).toMatchObject({ decision: 'allow', flush: { required: true, cause: 'replay', rangeCount: 3 } });
  expect(x.flush?.after).toBeUndefined();
  const j = x.flush?.jobId as string;
  await ok(a, 'GET', `/v1/flush-jobs/${j}/ranges`); // planned
  expect(await ok(a, 'GET', `/v1/flush-jobs/${j}`)).toMatchObject({ state: 'pending', acknowledgedAt: null });
  return j;
}

describe('flush jobs the VMM acknowledges', () => {
  it('two devices in one domain: enabling Y while X\'s replay is outstanding names it in flush.after; the ack ends it', async () => {
    const a = await build();
    app = a;
    await twoDevices(a);
    const j = await enableX(a);
    expect((await ok(a, 'GET', '/v1/vms/vm1'))['openFlushJobs']).toEqual([j]);
    const y = await ok(a, 'POST', `/v1/vms/vm1/devices/${Y}/devctl`, { nosnoopEnable: true });
    expect(y).toMatchObject({ decision: 'allow', hardwareValue: '0x2810', flush: { required: false, after: [j] } });
    // A dry run says the same; so does the map question for a page already pinned.
    expect((await ok(a, 'POST', `/v1/vms/vm1/devices/${Z}/devctl`, { nosnoopEnable: true, dryRun: true })).flush?.after).toEqual([j]);
    expect((await ok(a, 'POST', '/v1/vms/vm1/decisions/flush', { op: 'map', ranges: [{ iova: '0x0', length: '0x1000' }] })).flush?.after).toEqual([j]);
    const acked = await ok(a, 'POST', `/v1/flush-jobs/${j}/ack`);
    expect(acked).toMatchObject({ id: j, state: 'acknowledged', report: {} });
    expect(typeof acked['acknowledgedAt']).toBe('string');
    // Acknowledging again changes nothing.
    expect(await ok(a, 'POST', `/v1/flush-jobs/${j}/ack`, {})).toMatchObject({ state: 'acknowledged', acknowledgedAt: acked['acknowledgedAt'] });
    expect((await ok(a, 'GET', '/v1/vms/vm1'))['openFlushJobs']).toEqual([]);
    const z = await ok(a, 'POST', `/v1/vms/vm1/devices/${Z}/devctl`, { nosnoopEnable: true });
    expect(z).toMatchObject({ decision: 'allow', flush: { required: false } });
    expect(z.flush?.after).toBeUndefined();
    expect((await call(a, 'POST', '/v1/flush-jobs/fj-unknown/ack')).status).toBe(404);
  });

  it('?wait=true on Y answers only after J is acknowledged, and then depends on nothing', async () => {
    const a = await build();
    app = a;
    await twoDevices(a);
    const j = await enableX(a);
    let settled = false;
    const waiting = call(a, 'POST', `/v1/vms/vm1/devices/${Y}/devctl?wait=true`, { nosnoopEnable: true }).then((r) => {
      settled = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 150));
    expect(settled).toBe(false);
    // Nothing was decided for Y meanwhile.
    expect(((await ok(a, 'GET', '/v1/vms/vm1'))['devices'] as { bdf: string; nosnoop: string }[]).find((d) => d.bdf === Y)?.nosnoop).toBe('disabled');
    await ok(a, 'POST', `/v1/flush-jobs/${j}/ack`, { flushedBytes: '0x3000' });
    const y = await waiting;
    expect(y.status).toBe(200);
    expect(y.body).toMatchObject({ decision: 'allow', hardwareValue: '0x2810', flush: { required: false } });
    expect(y.body.flush?.after).toBeUndefined();
  });

  it('?wait=true on a DEVCTL write that leaves the bit clear depends on nothing and answers at once', async () => {
    const a = await build({ flushAckTimeoutMs: 5_000 });
    app = a;
    await twoDevices(a);
    await enableX(a);
    const started = performance.now();
    const x = await ok(a, 'POST', `/v1/vms/vm1/devices/${X}/devctl?wait=true`, { nosnoopEnable: false });
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(x).toMatchObject({ hardwareValue: '0x2010' });
    expect(x.flush?.after).toBeUndefined();
  });

  it('?wait=true gives up after FLUSH_ACK_TIMEOUT: 503 FLUSH_ACK_TIMEOUT, nothing changed', async () => {
    const a = await build({ flushAckTimeoutMs: 100 });
    app = a;
    await twoDevices(a);
    const j = await enableX(a);
    const revision = (await ok(a, 'GET', '/v1/vms/vm1'))['revision'];
    const y = await call(a, 'POST', `/v1/vms/vm1/devices/${Y}/devctl?wait=true`, { nosnoopEnable: true });
    expect(y.status).toBe(503);
    expect(y.body).toMatchObject({ code: 'FLUSH_ACK_TIMEOUT', details: { after: [j], timeoutMs: 100 } });
    const vm = await ok(a, 'GET', '/v1/vms/vm1');
    expect(vm['revision']).toBe(revision);
    expect((vm['devices'] as { bdf: string; nosnoop: string }[]).find((d) => d.bdf === Y)?.nosnoop).toBe('disabled');
  });

  it("an operator's quirk change: the replay is a pending job of the VM, its own query names it, its ack ends it", async () => {
    const a = await build();
    app = a;
    await ok(a, 'PUT', '/v1/vms/vmq', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'deny' } });
    await ok(a, 'PUT', '/v1/vms/vmq/domains/d0', { enforceCacheCoherency: false });
    await ok(a, 'PUT', `/v1/vms/vmq/devices/${X}`, { domainId: 'd0', vendorId: '0x1d0f', deviceId: '0x1234', function: 'pf', nosnoop: 'disabled' });
    const pin = await ok(a, 'POST', '/v1/vms/vmq/pins', { iova: '0x0', hpa: '0x40000000', length: '0x200000' });
    expect(pin.flush?.required).toBe(false);
    const quirks = await ok(a, 'PUT', '/v1/quirks', { quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'] }] });
    const vmq = (quirks['vms'] as Body[]).find((v) => v['vmId'] === 'vmq') as Body;
    expect(vmq.flush).toMatchObject({ required: true, cause: 'replay', bytes: '0x200000' });
    const j = vmq.flush?.jobId as string;
    await ok(a, 'GET', `/v1/flush-jobs/${j}/ranges`);
    expect(await ok(a, 'GET', `/v1/flush-jobs/${j}`)).toMatchObject({ vmId: 'vmq', state: 'pending' });
    expect((await ok(a, 'GET', '/v1/vms/vmq'))['openFlushJobs']).toEqual([j]);
    const asked = await ok(a, 'POST', '/v1/vms/vmq/decisions/flush', { op: 'map', ranges: [{ iova: '0x0', length: '0x200000' }] });
    expect(asked.flush?.after).toEqual([j]);
    await ok(a, 'POST', `/v1/flush-jobs/${j}/ack`);
    expect((await ok(a, 'GET', '/v1/vms/vmq'))['openFlushJobs']).toEqual([]);
    expect((await ok(a, 'POST', '/v1/vms/vmq/decisions/flush', { op: 'map', ranges: [{ iova: '0x0', length: '0x200000' }] })).flush?.after).toBeUndefined();
  });

  it('only the VMM of the job\'s VM (or an admin) may acknowledge it', async () => {
    const VMM_A = 'vmm-a-token-0123456789';
    const VMM_B = 'vmm-b-token-0123456789';
    const a = await build({
      tokens: new TokenTable([
        { id: 'a', token: VMM_A, scopes: ['vmm'], vms: ['vm-a*'] },
        { id: 'b', token: VMM_B, scopes: ['vmm'], vms: ['vm-b*'] }
      ])
    });
    app = a;
    await ok(a, 'PUT', '/v1/vms/vm-b1', { arch: 'x86_64', policy: { mode: 'pessimistic' } }, VMM_B);
    await ok(a, 'PUT', '/v1/vms/vm-b1/domains/d0', { enforceCacheCoherency: false }, VMM_B);
    const pin = await ok(a, 'POST', '/v1/vms/vm-b1/pins?wait=true', { iova: '0x0', hpa: '0x100000', length: '0x1000' }, VMM_B);
    const j = pin.flush?.jobId as string;
    expect(pin.flush?.receipt?.state).toBe('pending');
    expect((await call(a, 'POST', `/v1/flush-jobs/${j}/ack`, undefined, VMM_A)).status).toBe(403);
    expect((await ok(a, 'GET', `/v1/flush-jobs/${j}`, undefined, VMM_B))['state']).toBe('pending');
    expect((await ok(a, 'POST', `/v1/flush-jobs/${j}/ack`, undefined, VMM_B))['state']).toBe('acknowledged');
  });

  it('FLUSH_ACKS=answered (the weaker guarantee): planned jobs are done and nothing waits for them', async () => {
    const a = await build({ runtime: createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile({ quirks: [] }), flushAcks: 'answered' }) });
    app = a;
    await twoDevices(a);
    const x = await ok(a, 'POST', `/v1/vms/vm1/devices/${X}/devctl?wait=true`, { nosnoopEnable: true });
    expect(x.flush?.receipt?.state).toBe('done');
    const y = await ok(a, 'POST', `/v1/vms/vm1/devices/${Y}/devctl`, { nosnoopEnable: true });
    expect(y.flush?.after).toBeUndefined();
    expect((await ok(a, 'GET', '/v1/vms/vm1'))['openFlushJobs']).toEqual([]);
  });

  it('a VM whose VMM leaves MAX_UNACKED_JOBS jobs unacknowledged has its changes refused (503) until it catches up; other VMs go on', async () => {
    const a = await build({ runtime: createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile({ quirks: [] }), maxUnackedJobs: 2, windowMs: 0 }) });
    app = a;
    const jobs: string[] = [];
    for (const vm of ['vm1', 'vm2']) {
      await ok(a, 'PUT', `/v1/vms/${vm}`, { arch: 'x86_64', policy: { mode: 'pessimistic' } });
      await ok(a, 'PUT', `/v1/vms/${vm}/domains/d0`, { enforceCacheCoherency: false });
    }
    for (let i = 0; i < 2; i++) {
      const pin = await ok(a, 'POST', '/v1/vms/vm1/pins?wait=true', { iova: `0x${(i * 0x2000).toString(16)}`, hpa: `0x${(0x100000 + i * 0x2000).toString(16)}`, length: '0x1000' });
      jobs.push(pin.flush?.jobId as string);
    }
    const refused = await call(a, 'POST', '/v1/vms/vm1/pins', { iova: '0x10000', hpa: '0x900000', length: '0x1000' });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ code: 'OVERLOADED' });
    expect(String(refused.body['detail'])).toMatch(/not acknowledged/);
    expect((await ok(a, 'GET', '/v1/vms/vm1'))['pinned']).toMatchObject({ ranges: 2 });
    expect((await call(a, 'POST', '/v1/vms/vm2/pins', { iova: '0x0', hpa: '0x100000', length: '0x1000' })).status).toBe(200);
    await ok(a, 'POST', `/v1/flush-jobs/${jobs[0] as string}/ack`);
    expect((await call(a, 'POST', '/v1/vms/vm1/pins', { iova: '0x10000', hpa: '0x900000', length: '0x1000' })).status).toBe(200);
  });
});
