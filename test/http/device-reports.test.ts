/**
 * Device reports over HTTP: a report that contradicts itself about bit 11 is a 400
 * INVALID_DEVICE problem, a reported set bit the policy denies is cleared in that report's own
 * answer, an unknown bit is told to be cleared at attach under virtualize-zero, and a DEVCTL dry
 * run on a device attached quiet answers what the write then answers.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { build, json } from '../helpers/app.js';

let app: FastifyInstance;
afterEach(async () => {
  await app.close();
});

async function call(method: 'GET' | 'PUT' | 'POST', url: string, payload?: unknown): Promise<{ status: number; type: string; body: Record<string, unknown> }> {
  const res = await app.inject({ method, url, ...(payload === undefined ? {} : { headers: json, payload: payload as object }) });
  return { status: res.statusCode, type: String(res.headers['content-type']), body: res.json<Record<string, unknown>>() };
}

async function vm(policy: Record<string, unknown>): Promise<void> {
  expect((await call('PUT', '/v1/vms/vm1', { arch: 'x86_64', policy })).status).toBe(201);
  expect((await call('PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false })).status).toBe(201);
  expect((await call('POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x100000000', length: '0x200000' })).status).toBe(200);
}

const NIC = { vendorId: '0x15b3', deviceId: '0x1017', function: 'pf' };
const DEVICE = '/v1/vms/vm1/devices/0000:01:00.0';

describe('device reports over HTTP', () => {
  it('{"nosnoop":"disabled","devctl":"0x2810"} is refused: 400 INVALID_DEVICE naming both fields, nothing assigned', async () => {
    app = await build();
    await vm({ mode: 'trap', onEnable: 'allow' });
    const res = await call('PUT', DEVICE, { domainId: 'd0', ...NIC, nosnoop: 'disabled', devctl: '0x2810' });
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ code: 'INVALID_DEVICE', detail: 'devctl 0x2810 has Enable No Snoop (bit 11) set but nosnoop says "disabled"' });
    const view = (await call('GET', '/v1/vms/vm1')).body;
    expect(view['devices']).toEqual([]);
    expect(view['domains']).toMatchObject([{ id: 'd0', exposed: false }]);
    expect((await call('PUT', DEVICE, { domainId: 'd0', ...NIC, nosnoop: 'hardwired-zero', devctl: '0x0810' })).body).toMatchObject({ code: 'INVALID_DEVICE' });
  });

  it('virtualize-zero: a report saying the bit reads 1 is answered with its clear and the replay it needs', async () => {
    app = await build();
    await vm({ mode: 'virtualize-zero' });
    expect((await call('PUT', DEVICE, { domainId: 'd0', ...NIC, nosnoop: 'disabled' })).status).toBe(201);
    const report = await call('PUT', DEVICE, { domainId: 'd0', ...NIC, nosnoop: 'enabled', devctl: '0x2810' });
    expect(report.status).toBe(200);
    expect(report.body).toMatchObject({ decision: 'deny', hardwareValue: '0x2010', guestValue: '0x2010', flush: { required: true, cause: 'replay' } });
    expect((report.body['reasons'] as { rule: string; message: string }[]).find((r) => r.rule === 'W3')?.message).toMatch(/^report: /);
    expect((await call('GET', '/v1/vms/vm1')).body['devices']).toMatchObject([{ nosnoop: 'enabled', pendingNosnoop: 'disabled' }]);
  });

  it('virtualize-zero: a device attached with its bit unknown is told to write 0 before the guest gets it', async () => {
    app = await build();
    await vm({ mode: 'virtualize-zero' });
    const attach = await call('PUT', DEVICE, { domainId: 'd0', ...NIC, nosnoop: 'unknown' });
    expect(attach.status).toBe(201);
    // Not readable back, so not known clear once written: the domain is exposed and replayed meanwhile.
    expect(attach.body).toMatchObject({ decision: 'deny', hardwareValue: '0x2010', guestValue: '0x2010', flush: { required: true, cause: 'replay' } });
  });

  it('a DEVCTL dry run on a device attached quiet answers exactly what the write answers', async () => {
    app = await build();
    await vm({ mode: 'virtualize-zero' });
    expect((await call('PUT', DEVICE, { domainId: 'd0', ...NIC, nosnoop: 'enabled' })).body).toMatchObject({ decision: 'deny' });
    for (const write of [{ nosnoopEnable: false }, { nosnoopEnable: true }, { value: '0x2010' }]) {
      const dry = await call('POST', `${DEVICE}/devctl`, { ...write, dryRun: true });
      const real = await call('POST', `${DEVICE}/devctl`, write);
      expect(dry.status).toBe(200);
      const pick = (b: Record<string, unknown>): unknown => {
        const flush = b['flush'] as Record<string, unknown>;
        return { decision: b['decision'], hardwareValue: b['hardwareValue'], guestValue: b['guestValue'], reasons: b['reasons'], flush: { required: flush['required'], ranges: flush['ranges'], cause: flush['cause'] } };
      };
      expect(pick(dry.body), JSON.stringify(write)).toEqual(pick(real.body));
      expect(real.body).toMatchObject({ flush: { required: false } });
    }
  });
});
