/**
 * Commit fences on a real full disk (a 16 MiB tmpfs mounted for the test; the test needs the right
 * to mount one and says so when it does not have it): no answered change rests on a refused one.
 *
 * - The embedded store: after a write fails, every later write is refused, even one that would
 *   fit, until the service lifts the fence (just before it reloads its state); nothing written
 *   meanwhile is kept.
 * - The service: X's enable (a large replay) is refused because the disk is full; Y's enable,
 *   decided in memory after X's, is refused too (503, nothing changed), reads answer 503 until
 *   the state is reloaded, and afterwards neither counts as enabled and no pin lost its flag.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, parseQuirkFile } from '../../src/domain/index.js';
import { createRuntime } from '../../src/service/runtime.js';
import type { StoredChange } from '../../src/store/state-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { build, json } from '../helpers/app.js';
import { fillDisk, mountTmpfs } from '../helpers/tmpfs.js';

const disk = mountTmpfs('coherency-fence-', '16m');
const { path: mountPoint, mounted, why } = disk;

const closing: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const close of closing) await close().catch(() => undefined);
  disk.remove();
});

/** A change that stores a flush job part of `numbers` numbers (its ranges) with a VM's deletion. */
function change(seq: number, numbers: number): StoredChange {
  const pairs = new Float64Array(numbers);
  for (let i = 0; i < numbers; i++) pairs[i] = Math.random();
  return {
    seq,
    at: Date.now(),
    command: { type: 'delete-vm', vmId: `vm${seq}` },
    effects: [{ vmId: `vm${seq}`, record: null, ops: null }],
    jobs: [{ id: `fj-${seq}`, vmId: `vm${seq}`, header: '{}', pairs }],
    actor: 'test',
    rules: []
  } as unknown as StoredChange;
}

describe('commit fences', () => {
  it(mounted ? 'the embedded store refuses every write after a failed one until the fence is lifted' : `needs a tmpfs mount (${why})`, async () => {
    expect(mounted, `mounting a tmpfs failed: ${why}`).toBe(true);
    const dir = join(mountPoint, 'store');
    mkdirSync(dir);
    const store = new SqliteStore(dir);
    closing.push(() => store.close());
    await store.load();
    await store.append([change(1, 16)]);
    const filler = fillDisk(mountPoint, 256 * 1024);
    // Far more than is left: refused.
    await expect(store.append([change(2, 1_000_000)])).rejects.toThrow();
    // A small write would fit, but it may rest on the refused one: refused too.
    await expect(store.append([change(3, 16)])).rejects.toThrow(/earlier write failed/);
    rmSync(filler);
    await expect(store.append([change(4, 16)])).rejects.toThrow(/earlier write failed/);
    await store.unfence();
    await store.append([change(5, 16)]);
    expect((await store.loadJobs()).map((j) => j.id)).toEqual(['fj-1', 'fj-5']);
  });

  it(mounted ? 'an enable decided on top of a refused one is refused too; reads answer 503 until the state is reloaded; nothing refused is kept' : `needs a tmpfs mount (${why})`, async () => {
    expect(mounted, `mounting a tmpfs failed: ${why}`).toBe(true);
    const dir = join(mountPoint, 'service');
    mkdirSync(dir);
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile({ quirks: [] }), store: new SqliteStore(dir), threads: 1 });
    const app: FastifyInstance = await build({ runtime });
    closing.push(() => app.close());
    await app.policy.restore();
    const ok = async (method: 'PUT' | 'POST', url: string, payload: object): Promise<void> => {
      const res = await app.inject({ method, url, headers: json, payload });
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
    };
    await ok('PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    for (const d of ['d0', 'd1']) await ok('PUT', `/v1/vms/vm1/domains/${d}`, { enforceCacheCoherency: false });
    await ok('PUT', '/v1/vms/vm1/devices/0000:01:00.0', { domainId: 'd0', vendorId: '0x10ee', deviceId: '0x903f', function: 'pf', nosnoop: 'disabled' });
    await ok('PUT', '/v1/vms/vm1/devices/0000:02:00.0', { domainId: 'd1', vendorId: '0x10ee', deviceId: '0x903f', function: 'pf', nosnoop: 'disabled' });
    // X's domain holds many ranges (its replay is large); Y's one.
    for (let b = 0; b < 2; b++) {
      const ranges = Array.from({ length: 5000 }, (_, k) => ({ iova: (b * 5000 + k) * 0x1000, hpa: (b * 5000 + k) * 0x2000, length: 0x1000, domains: ['d0'] }));
      await ok('POST', '/v1/vms/vm1/pins', { ranges });
    }
    await ok('POST', '/v1/vms/vm1/pins', { iova: '0x10000000', hpa: '0x40000000', length: '0x1000', domains: ['d1'] });
    const before = (await app.inject({ method: 'GET', url: '/v1/vms/vm1' })).json<{ revision: number; pinned: unknown }>();

    const filler = fillDisk(mountPoint, 64 * 1024);
    const [x, y, read] = await Promise.all([
      app.inject({ method: 'POST', url: '/v1/vms/vm1/devices/0000:01:00.0/devctl', headers: json, payload: { nosnoopEnable: true } }),
      app.inject({ method: 'POST', url: '/v1/vms/vm1/devices/0000:02:00.0/devctl', headers: json, payload: { nosnoopEnable: true } }),
      // A read while they are being committed never shows them.
      app.inject({ method: 'GET', url: '/v1/vms/vm1' })
    ]);
    expect(read.statusCode === 503 || read.json<{ devices: { nosnoop: string }[] }>().devices.every((d) => d.nosnoop === 'disabled'), read.body).toBe(true);
    expect(x.statusCode, x.body).toBe(503);
    expect(y.statusCode, y.body).toBe(503);
    expect(y.json()).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    // Memory may hold what was refused: reads say so instead of showing it.
    expect((await app.inject({ method: 'GET', url: '/v1/vms/vm1' })).statusCode).toBe(503);

    rmSync(filler);
    for (let i = 0; i < 100 && !app.policy.healthy; i++) await new Promise((r) => setTimeout(r, 100));
    expect(app.policy.healthy).toBe(true);
    const vm = (await app.inject({ method: 'GET', url: '/v1/vms/vm1' })).json<{ revision: number; pinned: unknown; devices: { bdf: string; nosnoop: string }[]; openFlushJobs: string[] }>();
    expect(vm.revision).toBe(before.revision);
    expect(vm.pinned).toEqual(before.pinned);
    expect(vm.devices.map((d) => d.nosnoop)).toEqual(['disabled', 'disabled']);
    expect(vm.openFlushJobs).toEqual([]);
    // And the enable, tried again, replays what it must.
    const again = await app.inject({ method: 'POST', url: '/v1/vms/vm1/devices/0000:02:00.0/devctl', headers: json, payload: { nosnoopEnable: true } });
    expect(again.json()).toMatchObject({ decision: 'allow', flush: { required: true, cause: 'replay' } });
  });
});
