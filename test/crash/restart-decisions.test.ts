/**
 * A restart re-decides nothing. Real server processes on one data directory, started again with
 * other server defaults and another quirk file: every VM keeps the policy it was created with,
 * every device its bit and every range its sticky flag, and the stored quirk list stays in force
 * (the log and GET /v1/quirks say the configured one differs) until an operator applies it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { callServer, startServer, type ServerProcess } from '../helpers/server-process.js';

const dir = mkdtempSync(join(tmpdir(), 'coherency-restart-'));
const running: ServerProcess[] = [];
afterAll(async () => {
  for (const s of running) await s.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function start(env: Record<string, string>): Promise<ServerProcess> {
  const server = await startServer({ STORE: 'sqlite', ...env });
  running.push(server);
  return server;
}

const call = callServer;

describe('restarts re-decide nothing', () => {
  it('a trap VM created under DEFAULT_ON_ENABLE=allow keeps its allowed bit after a restart with deny', async () => {
    const dataDir = join(dir, 'defaults');
    const first = await start({ DATA_DIR: dataDir, DEFAULT_ON_ENABLE: 'allow' });
    expect((await call(first, 'PUT', '/v1/vms/trapvm', { arch: 'x86_64', policy: { mode: 'trap' } })).status).toBe(201);
    await call(first, 'PUT', '/v1/vms/trapvm/domains/d0', { enforceCacheCoherency: false });
    await call(first, 'PUT', '/v1/vms/trapvm/devices/0000:01:00.0', { domainId: 'd0', vendorId: '0x10ee', deviceId: '0x903f', function: 'pf', nosnoop: 'disabled' });
    const enable = await call(first, 'POST', '/v1/vms/trapvm/devices/0000:01:00.0/devctl', { nosnoopEnable: true });
    expect(enable.body).toMatchObject({ decision: 'allow', hardwareValue: '0x2810' });
    const before = (await call(first, 'GET', '/v1/vms/trapvm')).body;
    await first.kill('SIGTERM');

    const second = await start({ DATA_DIR: dataDir, DEFAULT_ON_ENABLE: 'deny' });
    const after = (await call(second, 'GET', '/v1/vms/trapvm')).body;
    expect(after['policy']).toEqual(before['policy']);
    expect(after['policy']).toMatchObject({ onEnable: 'allow' });
    expect(after['domains']).toEqual(before['domains']);
    expect(after['devices']).toEqual(before['devices']);
    expect(after['domains']).toMatchObject([{ id: 'd0', exposed: true }]);
    const pin = await call(second, 'POST', '/v1/vms/trapvm/pins', { iova: '0x0', hpa: '0x100000000', length: '0x200000' });
    expect(pin.body).toMatchObject({ flush: { required: true, bytes: '0x200000' }, reasons: [{ rule: 'F1' }] });
    // A VM created now gets the new default.
    await call(second, 'PUT', '/v1/vms/newvm', { arch: 'x86_64' });
    expect((await call(second, 'GET', '/v1/vms/newvm')).body['policy']).toMatchObject({ onEnable: 'deny' });
    await second.kill('SIGTERM');
  });

  it('an iGPU allowed through the shipped needs-nosnoop quirk keeps flushOnUnpin after a restart with an empty quirk file', async () => {
    const dataDir = join(dir, 'quirks');
    const first = await start({ DATA_DIR: dataDir });
    await call(first, 'PUT', '/v1/vms/gpu', { arch: 'x86_64', policy: { mode: 'virtualize-zero' } });
    await call(first, 'PUT', '/v1/vms/gpu/domains/igpu', { enforceCacheCoherency: false });
    await call(first, 'PUT', '/v1/vms/gpu/devices/0000:00:02.0', { domainId: 'igpu', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'disabled' });
    expect((await call(first, 'POST', '/v1/vms/gpu/devices/0000:00:02.0/devctl', { nosnoopEnable: true })).body).toMatchObject({ decision: 'allow' });
    const pin = await call(first, 'POST', '/v1/vms/gpu/pins', { iova: '0x0', hpa: '0x200000000', length: '0x200000' });
    expect(pin.body).toMatchObject({ flush: { required: true } });
    const shipped = (await call(first, 'GET', '/v1/quirks')).body;
    expect(shipped['configured']).toMatchObject({ inForce: true });
    await first.kill('SIGTERM');

    const empty = join(dir, 'no-quirks.json');
    writeFileSync(empty, JSON.stringify({ quirks: [] }));
    const second = await start({ DATA_DIR: dataDir, QUIRKS_FILE: empty });
    for (let i = 0; i < 50 && !second.log.some((line) => line.includes('configured quirk list differs')); i++) await new Promise((r) => setTimeout(r, 100));
    expect(second.log.some((line) => line.includes('configured quirk list differs'))).toBe(true);
    const quirks = (await call(second, 'GET', '/v1/quirks')).body;
    expect(quirks['quirks']).toEqual(shipped['quirks']);
    expect(quirks['configured']).toEqual({ inForce: false, quirks: [] });
    const pins = (await call(second, 'GET', '/v1/vms/gpu/pins')).body;
    expect(pins['items']).toMatchObject([{ iova: '0x0', flushOnUnpin: true }]);
    const gpu = (await call(second, 'GET', '/v1/vms/gpu')).body;
    expect(gpu['devices']).toMatchObject([{ nosnoop: 'enabled', quirks: ['needs-nosnoop'] }]);

    // The operator applies the file: the answer says what the change means (the bit is now
    // denied: clear it), and the sticky flag still holds at unpin.
    const applied = await call(second, 'PUT', '/v1/quirks', { quirks: [] });
    expect(applied.status).toBe(200);
    expect(applied.body['vms']).toMatchObject([{ vmId: 'gpu', devices: [{ bdf: '0000:00:02.0', decision: 'deny', hardwareValue: '0x2010' }] }]);
    expect((await call(second, 'GET', '/v1/quirks')).body['configured']).toEqual({ inForce: true, quirks: [] });
    const unpin = await call(second, 'POST', '/v1/vms/gpu/unpins', { iova: '0x0', length: '0x200000' });
    expect(unpin.body).toMatchObject({ flush: { required: true, bytes: '0x200000', when: 'after-unmap' }, reasons: [{ rule: 'F3' }] });
    await second.kill('SIGTERM');

    // The list applied is the one a third start keeps, whatever file it is given.
    const third = await start({ DATA_DIR: dataDir });
    const kept = (await call(third, 'GET', '/v1/quirks')).body;
    expect(kept['quirks']).toEqual([]);
    expect(kept['configured']).toMatchObject({ inForce: false });
  });
});
