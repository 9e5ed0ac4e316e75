/**
 * Real server processes, killed without warning. After a restart every acknowledged pin is
 * there (at most the one in flight more) with its sticky flag; and two replicas on one
 * PostgreSQL hammering one VM (and several, with a quirk change in the middle) end with exactly
 * the acknowledged set; a replica killed mid-write loses nothing acknowledged through either.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CoherencyApiError, CoherencyClient, type PinnedRangeState } from '../../src/client/index.js';
import { dropSchemas, freshSchema, PG_URL } from '../helpers/postgres.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const dir = mkdtempSync(join(tmpdir(), 'coherency-crash-'));
const schemas: string[] = [];
const running: ServerProcess[] = [];
afterAll(async () => {
  for (const s of running) await s.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  await dropSchemas(schemas);
});

async function start(env: Record<string, string>): Promise<ServerProcess> {
  const server = await startServer(env);
  running.push(server);
  return server;
}

async function allPins(client: CoherencyClient, vmId: string, minRevision?: number): Promise<PinnedRangeState[]> {
  const out: PinnedRangeState[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listPins(vmId, { limit: 1000, ...(cursor === undefined ? {} : { cursor }), ...(minRevision === undefined ? {} : { minRevision }) });
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return out;
}

const pgSchema = freshSchema('crash');
schemas.push(pgSchema);
const stores: [string, Record<string, string>][] = [
  ['SQLite', { STORE: 'sqlite', DATA_DIR: dir }],
  ['PostgreSQL', { STORE: 'postgres', STORE_URL: PG_URL, STORE_SCHEMA: pgSchema }]
];

describe.each(stores)('crash safety (%s)', (_name, env) => {
  it('every acknowledged pin survives kill -9, with its sticky flag', async () => {
    const first = await start(env);
    const client = new CoherencyClient(first.url, { connections: 2 });
    await client.putVm('vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    await client.putDomain('vm1', 'd0', { enforceCacheCoherency: false });
    await client.putDevice('vm1', '0000:01:00.0', { domainId: 'd0', vendorId: '0x15b3', deviceId: '0x1017', nosnoop: 'disabled' });
    const acknowledged: string[] = [];
    // The first half is pinned while no device may no-snoop (no flag); an enable then flags them
    // (F2); the second half is pinned flagged.
    for (let i = 0; i < 150; i++) {
      if (i === 75) await client.devctl('vm1', '0000:01:00.0', { nosnoopEnable: true });
      const iova = `0x${(i * 0x10000).toString(16)}`;
      await client.pin('vm1', { iova, hpa: `0x${(i * 0x2000).toString(16)}`, length: '0x1000' });
      acknowledged.push(iova);
    }
    // One more in flight, then the process dies without warning.
    const inflight = client.pin('vm1', { iova: '0x7000000', hpa: '0x7000000', length: '0x1000' }).catch(() => undefined);
    await first.kill('SIGKILL');
    await inflight;
    await client.close().catch(() => undefined);

    const second = await start(env);
    const again = new CoherencyClient(second.url);
    expect(await again.ready()).toMatchObject({ status: 'ready' });
    const pins = await allPins(again, 'vm1');
    const iovas = new Set(pins.map((p) => p.iova));
    for (const iova of acknowledged) expect(iovas.has(iova), iova).toBe(true);
    expect(pins.length - acknowledged.length).toBeLessThanOrEqual(1);
    for (const p of pins) expect(p.flushOnUnpin, p.iova).toBe(true);
    const vm = await again.getVm('vm1');
    expect(vm.devices[0]?.nosnoop).toBe('enabled');
    expect(vm.domains[0]?.exposed).toBe(true);
    // The sticky flags still drive the unpin flush after the restart.
    const unpin = await again.unpin('vm1', { iova: '0x0', length: '0x1000' });
    expect(unpin.flush.bytes).toBe('0x1000');
    await again.close();
    await second.kill('SIGTERM');
  });
});

describe.each(stores)('flush jobs across a restart (%s)', (_name, env) => {
  it('a job accepted before a graceful shutdown is finished and still listed after the restart', async () => {
    const first = await start({ ...env, FLUSH_WINDOW_MS: '60000' });
    const client = new CoherencyClient(first.url);
    await client.putVm('jobs', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await client.putDomain('jobs', 'd0', { enforceCacheCoherency: false });
    const pin = await client.pin('jobs', { iova: '0x0', hpa: '0x40000000', length: '0x200000' });
    const jobId = pin.flush.jobId ?? '';
    expect(((await client.getFlushJob(jobId)) as { state: string }).state).toBe('queued');
    await client.close();
    await first.kill('SIGTERM');

    const second = await start(env);
    const again = new CoherencyClient(second.url);
    const job = (await again.getFlushJob(jobId)) as { state: string; receipt: { method: string; bytes: string } };
    expect(job).toMatchObject({ state: 'pending', receipt: { method: 'clflushopt', bytes: '0x200000' } });
    const listed = await again.listFlushJobs('jobs');
    expect(listed.items.map((j) => (j as { id: string }).id)).toContain(jobId);
    await again.close();
    await second.kill('SIGTERM');
    // The first process shut down gracefully: drained, then exited 0.
    expect(first.child.exitCode).toBe(0);
    expect(first.log.some((l) => l.includes('shutting down: draining flush jobs'))).toBe(true);
    expect(first.log.some((l) => l.includes('"shut down"'))).toBe(true);
  });
});

describe('two replicas on one PostgreSQL', () => {
  it('interleaved pins and unpins of one VM from both end with exactly the acknowledged set', async () => {
    const schema = freshSchema('replicas');
    schemas.push(schema);
    const env = { STORE: 'postgres', STORE_URL: PG_URL, STORE_SCHEMA: schema };
    const [a, b] = await Promise.all([start(env), start(env)]);
    const ca = new CoherencyClient(a.url, { connections: 4 });
    const cb = new CoherencyClient(b.url, { connections: 4 });
    await ca.putVm('vm1', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await cb.putDomain('vm1', 'd0', { enforceCacheCoherency: false });

    // What was acknowledged, per IOVA: the answer with the highest revision (the global commit
    // order) wins, whatever order the answers arrive in.
    const acknowledged = new Map<string, { revision: number; pinned: boolean }>();
    const record = (iova: string, revision: number, pinned: boolean): void => {
      const last = acknowledged.get(iova);
      if (last === undefined || revision > last.revision) acknowledged.set(iova, { revision, pinned });
    };
    let revision = 0;
    let refused = 0;
    const served = { a: 0, b: 0 };
    const worker = async (client: CoherencyClient, w: number): Promise<void> => {
      for (let i = 0; i < 60; i++) {
        // Slots overlap between workers on purpose: pins race for the same IOVA.
        const slot = (i * 7 + w * 3) % 90;
        const iova = `0x${(slot * 0x1000).toString(16)}`;
        try {
          const unpin = i % 3 === 2 && acknowledged.get(iova)?.pinned === true;
          const answer = unpin ? await client.unpin('vm1', { iova, length: '0x1000' }) : await client.pin('vm1', { iova, hpa: iova, length: '0x1000' });
          record(iova, answer.revision, !unpin);
          revision = Math.max(revision, answer.revision);
          served[client === ca ? 'a' : 'b']++;
        } catch (err) {
          // Losing a race is a clean refusal, never a silent overwrite.
          if (!(err instanceof CoherencyApiError) || !['PIN_OVERLAP', 'UNKNOWN_RANGE'].includes(err.code)) throw err;
          refused++;
        }
      }
    };
    await Promise.all([worker(ca, 0), worker(cb, 1), worker(ca, 2), worker(cb, 3)]);
    expect(refused).toBeGreaterThan(0);
    expect(served.a).toBeGreaterThan(0);
    expect(served.b).toBeGreaterThan(0);

    const expected = [...acknowledged].filter(([, v]) => v.pinned).map(([iova]) => iova).sort();
    const fromA = (await allPins(ca, 'vm1', revision)).map((p) => p.iova).sort();
    const fromB = (await allPins(cb, 'vm1', revision)).map((p) => p.iova).sort();
    expect(fromA).toEqual(expected);
    expect(fromB).toEqual(expected);
    // Every pin was flushed at map time in pessimistic mode and carries its flag on both.
    expect((await ca.getVm('vm1')).pinned.ranges).toBe(expected.length);

    // A third replica started from the store alone agrees.
    const c = await start(env);
    const cc = new CoherencyClient(c.url);
    expect((await allPins(cc, 'vm1')).map((p) => p.iova).sort()).toEqual(expected);
    for (const client of [ca, cb, cc]) await client.close();
  });
});

describe('two replicas on one PostgreSQL, several VMs', () => {
  it('hammering the same VM and different VMs from both, with a quirk change in the middle, ends with exactly the acknowledged set', async () => {
    const schema = freshSchema('replicas_vms');
    schemas.push(schema);
    const env = { STORE: 'postgres', STORE_URL: PG_URL, STORE_SCHEMA: schema, FLUSH_ACKS: 'answered' };
    const [a, b] = await Promise.all([start(env), start(env)]);
    const ca = new CoherencyClient(a.url, { connections: 8 });
    const cb = new CoherencyClient(b.url, { connections: 8 });
    const vms = ['vm0', 'vm1', 'vm2', 'vm3'];
    for (const vm of vms) {
      await ca.putVm(vm, { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
      await cb.putDomain(vm, 'd0', { enforceCacheCoherency: false });
      await ca.putDevice(vm, '0000:01:00.0', { domainId: 'd0', vendorId: '0x1d0f', deviceId: '0x1234', function: 'pf', nosnoop: 'disabled' });
    }
    // Per VM and IOVA, the answer with the highest revision (the global commit order) wins.
    const acknowledged = new Map<string, { revision: number; pinned: boolean }>();
    let revision = 0;
    let refused = 0;
    const worker = async (client: CoherencyClient, w: number): Promise<void> => {
      for (let i = 0; i < 48; i++) {
        // Workers share VMs and slots: the same VM from both replicas, and different VMs at once.
        const vm = vms[(i + w) % vms.length] as string;
        const iova = `0x${(((i * 5 + w) % 24) * 0x1000).toString(16)}`;
        const key = `${vm}/${iova}`;
        try {
          const unpin = i % 3 === 2 && acknowledged.get(key)?.pinned === true;
          const answer = unpin ? await client.unpin(vm, { iova, length: '0x1000' }) : await client.pin(vm, { iova, hpa: iova, length: '0x1000' });
          const last = acknowledged.get(key);
          if (last === undefined || answer.revision > last.revision) acknowledged.set(key, { revision: answer.revision, pinned: !unpin });
          revision = Math.max(revision, answer.revision);
        } catch (err) {
          if (!(err instanceof CoherencyApiError) || !['PIN_OVERLAP', 'UNKNOWN_RANGE'].includes(err.code)) throw err;
          refused++;
        }
      }
    };
    const operator = (async () => {
      await new Promise((r) => setTimeout(r, 50));
      // The device ignores its bit after all: every VM's domain is exposed from this change on.
      const quirked = await cb.putQuirks({ quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'] }] });
      const at = Math.max(...quirked.vms.map((v) => v.revision));
      revision = Math.max(revision, at);
      return { at, vms: quirked.vms.length };
    })();
    await Promise.all([worker(ca, 0), worker(cb, 1), worker(ca, 2), worker(cb, 3), worker(ca, 4), worker(cb, 5)]);
    const quirkedAt = await operator;
    expect(refused).toBeGreaterThan(0);

    const c = await start(env);
    const cc = new CoherencyClient(c.url);
    for (const vm of vms) {
      const expected = [...acknowledged].filter(([k, v]) => k.startsWith(`${vm}/`) && v.pinned).map(([k]) => k.slice(vm.length + 1)).sort();
      for (const client of [ca, cb]) expect((await allPins(client, vm, revision)).map((p) => p.iova).sort(), vm).toEqual(expected);
      // A third replica started from the store alone agrees, flags included: a pin acknowledged
      // after the quirk change was flushed and flagged, and so were those before it (replayed).
      const fromC = await allPins(cc, vm);
      expect(fromC.map((p) => p.iova).sort(), vm).toEqual(expected);
      for (const p of fromC) expect(p.flushOnUnpin, `${vm} ${p.iova}`).toBe(true);
      expect((await cc.getVm(vm)).domains[0]?.exposed, vm).toBe(true);
    }
    // Every VM had a device whose bit was clear: each one's domain became exposed with the change.
    expect(quirkedAt.vms).toBe(vms.length);
    for (const client of [ca, cb, cc]) await client.close();
  });

  it('a replica killed with kill -9 mid-write and restarted: nothing acknowledged through either is lost', async () => {
    const schema = freshSchema('replicas_kill');
    schemas.push(schema);
    const env = { STORE: 'postgres', STORE_URL: PG_URL, STORE_SCHEMA: schema, FLUSH_ACKS: 'answered' };
    const [a, b] = await Promise.all([start(env), start(env)]);
    const ca = new CoherencyClient(a.url, { connections: 4 });
    const cb = new CoherencyClient(b.url, { connections: 4 });
    for (const vm of ['ka', 'kb']) {
      await ca.putVm(vm, { arch: 'x86_64', policy: { mode: 'pessimistic' } });
      await ca.putDomain(vm, 'd0', { enforceCacheCoherency: false });
    }
    const acknowledged: string[] = [];
    let latest = 0;
    let stop = false;
    const writer = async (client: CoherencyClient, vm: string, from: number): Promise<void> => {
      for (let i = from; !stop; i += 4) {
        const iova = `0x${(i * 0x1000).toString(16)}`;
        try {
          const answer = await client.pin(vm, { iova, hpa: iova, length: '0x1000' });
          acknowledged.push(`${vm}/${iova}`);
          latest = Math.max(latest, answer.revision);
        } catch {
          // Through the killed replica: not acknowledged, so it may or may not be kept.
          if (client === ca) return;
          throw new Error(`replica B refused a pin of ${vm} ${iova}`);
        }
      }
    };
    const writers = [0, 1, 2, 3].map((w) => writer(w % 2 === 0 ? ca : cb, w < 2 ? 'ka' : 'kb', w));
    await new Promise((r) => setTimeout(r, 700));
    await a.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(writers);
    await ca.close().catch(() => undefined);
    expect(acknowledged.length).toBeGreaterThan(20);

    const again = await start(env);
    const cr = new CoherencyClient(again.url);
    for (const client of [cr, cb]) {
      const held = new Set<string>();
      for (const vm of ['ka', 'kb']) for (const p of await allPins(client, vm, latest)) held.add(`${vm}/${p.iova}`);
      for (const key of acknowledged) expect(held.has(key), key).toBe(true);
    }
    for (const client of [cr, cb]) await client.close();
  });
});
