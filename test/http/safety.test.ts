/**
 * The unsafe or inconsistent decisions of the adversarial review, over HTTP: what a VMM sees on
 * the wire for VFs whose PF is elsewhere, unconfirmed clears, hardwired bits, resets, attach-time
 * clears, live policy changes, DEVCTL pass-through bits, non-PCI devices and the query as a dry
 * run of its change.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { build, json } from '../helpers/app.js';

let app: FastifyInstance;
afterEach(async () => {
  await app.close();
});

async function call(method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await app.inject({ method, url, ...(payload === undefined ? {} : { headers: json, payload: payload as object }) });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
}

async function vm(id: string, policy: Record<string, unknown>, domains: Record<string, boolean> = { d0: false }): Promise<void> {
  expect((await call('PUT', `/v1/vms/${id}`, { arch: 'x86_64', policy })).status).toBe(201);
  for (const [d, coherent] of Object.entries(domains)) await call('PUT', `/v1/vms/${id}/domains/${d}`, { enforceCacheCoherency: coherent });
}

const NIC = { vendorId: '0x15b3', deviceId: '0x1017' };

describe('over HTTP', () => {
  it('a VF whose PF sits in another VM may no-snoop: its VM flushes, whatever the other VM does', async () => {
    app = await build();
    await vm('a', { mode: 'trap', onEnable: 'allow' });
    await vm('b', { mode: 'trap', onEnable: 'allow' });
    await call('PUT', '/v1/vms/b/devices/0000:3b:00.0', { domainId: 'd0', ...NIC, function: 'pf', nosnoop: 'disabled' });
    await call('PUT', '/v1/vms/a/devices/0000:3b:00.2', { domainId: 'd0', ...NIC, function: 'vf', physfn: '0000:3b:00.0', nosnoop: 'disabled' });
    const view = (await call('GET', '/v1/vms/a')).body;
    expect(view['domains']).toMatchObject([{ id: 'd0', exposed: true }]);
    expect(view['devices']).toMatchObject([{ bdf: '0000:3b:00.2', effectiveNosnoop: 'unknown', mayNoSnoop: true }]);
    const pin = await call('POST', '/v1/vms/a/pins', { iova: '0x0', hpa: '0x100000000', length: '0x200000' });
    expect(pin.body).toMatchObject({ flush: { required: true, when: 'before-map' }, reasons: [{ rule: 'F1' }] });
  });

  it('removing a PF answers with the replay its VF now needs', async () => {
    app = await build();
    await vm('a', { mode: 'trap', onEnable: 'allow' }, { d0: false, d1: false });
    await call('PUT', '/v1/vms/a/devices/0000:3b:00.0', { domainId: 'd0', ...NIC, function: 'pf', nosnoop: 'disabled' });
    await call('PUT', '/v1/vms/a/devices/0000:3b:00.2', { domainId: 'd1', ...NIC, function: 'vf', physfn: '0000:3b:00.0', nosnoop: 'disabled' });
    await call('POST', '/v1/vms/a/pins', { iova: '0x0', hpa: '0x100000000', length: '0x200000', domains: ['d1'] });
    const removed = await call('DELETE', '/v1/vms/a/devices/0000:3b:00.0');
    expect(removed.body).toMatchObject({ flush: { required: true, bytes: '0x200000', cause: 'replay', when: 'before-map' } });
  });

  it('a denied enable counts once the VMM reports the bit clear (pendingNosnoop meanwhile)', async () => {
    app = await build();
    await vm('a', { mode: 'trap', onEnable: 'deny' });
    await call('PUT', '/v1/vms/a/devices/0000:01:00.0', { domainId: 'd0', ...NIC, function: 'pf', nosnoop: 'disabled' });
    const reset = await call('POST', '/v1/vms/a/devices/0000:01:00.0/reset', { restoresConfig: false });
    expect(reset.body).toMatchObject({ decision: 'deny', hardwareValue: '0x2010' });
    expect((await call('GET', '/v1/vms/a')).body['devices']).toMatchObject([{ nosnoop: 'enabled', pendingNosnoop: 'disabled' }]);
    expect((await call('POST', '/v1/vms/a/pins', { iova: '0x0', hpa: '0x0', length: '0x1000' })).body).toMatchObject({ flush: { required: true } });
    await call('PUT', '/v1/vms/a/devices/0000:01:00.0', { domainId: 'd0', ...NIC, function: 'pf', nosnoop: 'disabled' });
    expect((await call('GET', '/v1/vms/a')).body['devices']).toMatchObject([{ nosnoop: 'disabled', pendingNosnoop: null }]);
    expect((await call('POST', '/v1/vms/a/pins', { iova: '0x1000', hpa: '0x1000', length: '0x1000' })).body).toMatchObject({ flush: { required: false } });
  });

  it('attach under trap/deny answers the clearing value and replays nothing; a hardwired device never gets bit 11', async () => {
    app = await build();
    await vm('a', { mode: 'trap', onEnable: 'deny' });
    await call('POST', '/v1/vms/a/pins', { iova: '0x0', hpa: '0x0', length: '0x1000' });
    const attach = await call('PUT', '/v1/vms/a/devices/0000:01:00.0', { domainId: 'd0', ...NIC, function: 'pf', nosnoop: 'enabled' });
    expect(attach.status).toBe(201);
    expect(attach.body).toMatchObject({ decision: 'deny', hardwareValue: '0x2010', flush: { required: false } });
    await vm('b', { mode: 'trap', onEnable: 'allow' });
    await call('PUT', '/v1/vms/b/devices/0000:02:00.0', { domainId: 'd0', ...NIC, function: 'pf', nosnoop: 'hardwired-zero' });
    expect((await call('POST', '/v1/vms/b/devices/0000:02:00.0/devctl', { value: '0x2810' })).body).toMatchObject({ hardwareValue: '0x2010', guestValue: '0x2010' });
  });

  it('a live policy change lists the devices whose set bit it now denies', async () => {
    app = await build();
    await vm('a', { mode: 'trap', onEnable: 'allow' });
    await call('PUT', '/v1/vms/a/devices/0000:01:00.0', { domainId: 'd0', ...NIC, function: 'pf', nosnoop: 'enabled' });
    const change = await call('PUT', '/v1/vms/a', { arch: 'x86_64', policy: { mode: 'virtualize-zero' } });
    expect(change.status).toBe(200);
    expect(change.body['devices']).toEqual([{ bdf: '0000:01:00.0', decision: 'deny', hardwareValue: '0x2010', guestValue: '0x2010' }]);
  });

  it('Initiate FLR is never echoed or stored; a DEVCTL write to a non-PCI device is 409 NOT_PCI', async () => {
    app = await build();
    await vm('a', { mode: 'trap', onEnable: 'allow' });
    await call('PUT', '/v1/vms/a/devices/0000:01:00.0', { domainId: 'd0', ...NIC, function: 'pf', nosnoop: 'disabled' });
    const flr = await call('POST', '/v1/vms/a/devices/0000:01:00.0/devctl', { value: '0xa010' });
    expect(flr.body).toMatchObject({ hardwareValue: '0x2010', guestValue: '0x2010', reasons: [{ rule: 'R1' }, { rule: 'W6' }] });
    expect((await call('GET', '/v1/vms/a')).body['devices']).toMatchObject([{ devctl: '0x2010' }]);
    await call('PUT', '/v1/vms/a/devices/0000:09:00.0', { domainId: 'd0', ...NIC, function: 'pf', pci: false, nosnoop: 'unknown' });
    const notPci = await call('POST', '/v1/vms/a/devices/0000:09:00.0/devctl', { nosnoopEnable: true });
    expect(notPci.status).toBe(409);
    expect(notPci.body).toMatchObject({ code: 'NOT_PCI' });
  });

  it('the query answers what the pin would: no hpa in a pessimistic VM still requires the flush; no domain is 409', async () => {
    app = await build();
    await vm('a', { mode: 'pessimistic' });
    const q = await call('POST', '/v1/vms/a/decisions/flush', { op: 'map', ranges: [{ iova: '0x0', length: '0x1000' }] });
    expect(q.body).toMatchObject({ flush: { required: true, cause: 'pin', when: 'before-map' }, results: [{ required: true, rule: 'F1' }] });
    const all = await call('POST', '/v1/vms/a/decisions/flush', { op: 'map', ranges: [{ iova: '0x0', length: '0x1000', hpa: '0x5000', domains: [] }] });
    const pin = await call('POST', '/v1/vms/a/pins', { iova: '0x0', length: '0x1000', hpa: '0x5000', domains: [] });
    expect((all.body['flush'] as Record<string, unknown>)['ranges']).toEqual((pin.body['flush'] as Record<string, unknown>)['ranges']);
    expect((await call('PUT', '/v1/vms/bare', { arch: 'x86_64' })).status).toBe(201);
    const bare = await call('POST', '/v1/vms/bare/decisions/flush', { op: 'map', ranges: [{ iova: '0x0', length: '0x1000' }] });
    expect(bare.status).toBe(409);
    expect(bare.body).toMatchObject({ code: 'VM_HAS_NO_DOMAINS' });
  });
});
