/**
 * W8 over HTTP: a VM's policy carries per-device overrides, GET /v1/vms/{id} shows them as
 * resolved, and a trapped enable of the overridden device is answered by W8.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { build, json } from '../helpers/app.js';

let app: FastifyInstance;
afterEach(async () => {
  await app.close();
});

async function call(method: 'GET' | 'PUT' | 'POST', url: string, payload?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await app.inject({ method, url, ...(payload === undefined ? {} : { headers: json, payload: payload as object }) });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
}

const NIC = { domainId: 'd0', vendorId: '0x15b3', deviceId: '0x1017', function: 'pf', nosnoop: 'disabled' };
const rules = (body: Record<string, unknown>): string[] => (body['reasons'] as { rule: string }[]).map((r) => r.rule);

describe('W8 over HTTP', () => {
  it('allow: an overridden device may set the bit under trap deny, after the replay; the VM shows the override', async () => {
    app = await build();
    const put = await call('PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'deny', devices: { '0000:01:00.0': { onEnable: 'allow' } } } });
    expect(put.status).toBe(201);
    expect((await call('PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false })).status).toBe(201);
    expect((await call('PUT', '/v1/vms/vm1/devices/0000:01:00.0', NIC)).status).toBe(201);
    expect((await call('PUT', '/v1/vms/vm1/devices/0000:02:00.0', NIC)).status).toBe(201);
    expect((await call('POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x100000000', length: '0x200000' })).status).toBe(200);
    const view = (await call('GET', '/v1/vms/vm1')).body;
    expect(view['policy']).toMatchObject({ mode: 'trap', onEnable: 'deny', devices: { '0000:01:00.0': { onEnable: 'allow' } } });
    const allowed = await call('POST', '/v1/vms/vm1/devices/0000:01:00.0/devctl', { nosnoopEnable: true });
    expect(allowed.status).toBe(200);
    expect(allowed.body).toMatchObject({ decision: 'allow', flush: { required: true, cause: 'replay' } });
    expect(rules(allowed.body)).toContain('W8');
    const other = await call('POST', '/v1/vms/vm1/devices/0000:02:00.0/devctl', { nosnoopEnable: true });
    expect(other.body).toMatchObject({ decision: 'deny' });
    expect(rules(other.body)).toContain('W4');
  });

  it('a VM without overrides shows none; a bad address or verdict is refused with nothing created', async () => {
    app = await build();
    expect((await call('PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap' } })).status).toBe(201);
    expect('devices' in ((await call('GET', '/v1/vms/vm1')).body['policy'] as object)).toBe(false);
    const badAddress = await call('PUT', '/v1/vms/vm2', { arch: 'x86_64', policy: { devices: { 'gpu-0': { onEnable: 'allow' } } } });
    expect(badAddress.status).toBe(400);
    expect(badAddress.body).toMatchObject({ code: 'INVALID_PCI_ADDRESS', details: { field: 'policy.devices' } });
    const badVerdict = await call('PUT', '/v1/vms/vm2', { arch: 'x86_64', policy: { devices: { '0000:01:00.0': { onEnable: 'allow-needs-nosnoop' } } } });
    expect(badVerdict.status).toBe(400);
    expect(badVerdict.body).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect((await call('GET', '/v1/vms/vm2')).status).toBe(404);
  });
});
