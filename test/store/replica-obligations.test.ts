/**
 * Obligations per answer across replicas (real PostgreSQL, two replicas following each other
 * only by notification: their safety poll is a minute): an ack through the other replica right
 * after the answer works at once; a job shown on one replica never grows afterwards, whatever
 * the other replica's window does; two replicas started in the same millisecond never share an
 * event-id epoch; a replica that missed an acknowledgement learns it from the job's record.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, parseDomainId, parsePciAddress, parseQuirkFile, parseVmId, type PciAddress } from '../../src/domain/index.js';
import { createRuntime, type Runtime } from '../../src/service/runtime.js';
import { VmEvents } from '../../src/service/vm-events.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { dropSchemas, freshSchema, PG_URL } from '../helpers/postgres.js';

const schemas: string[] = [];
const runtimes: Runtime[] = [];
afterAll(async () => {
  for (const r of runtimes) await r.close();
  await dropSchemas(schemas);
});

async function replica(schema: string, windowMs = 2): Promise<Runtime> {
  const store = new PostgresStore({ connectionString: PG_URL, schema });
  const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile({ quirks: [] }), store, threads: 1, windowMs });
  runtimes.push(runtime);
  await runtime.start();
  runtime.service.follow(60_000);
  return runtime;
}

async function twoReplicas(label: string, windowMs = 2): Promise<[Runtime, Runtime]> {
  const schema = freshSchema(label);
  schemas.push(schema);
  const a = await replica(schema, windowMs);
  const b = await replica(schema, windowMs);
  await new Promise((r) => setTimeout(r, 300));
  return [a, b];
}

const vmId = parseVmId('vmr');
const d0 = parseDomainId('d0');
const d1 = parseDomainId('d1');
const X = parsePciAddress('0000:01:00.0');
const Y = parsePciAddress('0000:02:00.0');
const nic = (bdf: PciAddress, domainId: typeof d0) => ({ bdf, domainId, vendorId: 0x10ee, deviceId: 0x903f, function: 'pf' as const, physfn: null, nosnoop: 'disabled' as const });

/** vmr through `a`: trap, onEnable allow; X in d0, Y in d1 (both non-coherent); one page pinned into both domains, one into d1. */
async function vmr(a: Runtime): Promise<void> {
  await a.service.apply({ type: 'put-vm', vmId, arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
  for (const d of [d0, d1]) await a.service.apply({ type: 'put-domain', vmId, domainId: d, enforceCacheCoherency: false });
  await a.service.apply({ type: 'put-device', vmId, device: nic(X, d0) });
  await a.service.apply({ type: 'put-device', vmId, device: nic(Y, d1) });
  await a.service.apply({ type: 'pin', vmId, ranges: [{ iova: 0, pages: 1, hpa: 0x100 }] });
  await a.service.apply({ type: 'pin', vmId, ranges: [{ iova: 1, pages: 1, hpa: 0x200, domains: [d1] }] });
}

describe('obligations per answer across replicas (real PostgreSQL)', () => {
  it('an ack through the other replica right after the answer is taken at once (it catches up on the VM first)', async () => {
    const [a, b] = await twoReplicas('ackb');
    await vmr(a);
    for (let i = 0; i < 10; i++) {
      const enable = await a.service.apply({ type: 'devctl', vmId, bdf: X, write: { nosnoopEnable: i % 2 === 0 } });
      if (enable.jobId === undefined) continue;
      const acked = await b.service.acknowledgeFlushJob(enable.jobId, {});
      expect(acked?.id).toBe(enable.jobId);
      expect(['acknowledged', 'done']).toContain(acked?.state);
    }
  });

  it('a job shown on one replica never grows: an answer on the other replica in the same window gets a job of its own', async () => {
    const [a, b] = await twoReplicas('nogrow', 300);
    await vmr(a);
    const ex = await a.service.apply({ type: 'devctl', vmId, bdf: X, write: { nosnoopEnable: true } });
    const jx = ex.jobId as string;
    // B adopts X's replay as it catches up for its own change, inside A's window.
    const ey = await b.service.apply({ type: 'devctl', vmId, bdf: Y, write: { nosnoopEnable: true } });
    expect(ey.jobId).not.toBe(jx);
    expect(ey.after).toEqual([jx]);
    const shown = await b.service.settledFlushJob(jx);
    expect(Array.from(shown?.ranges ?? [])).toEqual([0x100, 1]);
    // A later replay on A, in the same window: a job of its own, not X's grown.
    const d2 = parseDomainId('d2');
    await a.service.apply({ type: 'put-domain', vmId, domainId: d2, enforceCacheCoherency: false });
    await a.service.apply({ type: 'pin', vmId, ranges: [{ iova: 2, pages: 1, hpa: 0x300, domains: [d2] }] });
    const ez = await a.service.apply({ type: 'put-device', vmId, device: { ...nic(parsePciAddress('0000:03:00.0'), d2), nosnoop: 'enabled' } });
    expect(ez.decision.flush.cause).toBe('replay');
    expect(ez.jobId).not.toBe(jx);
    await b.service.catchUp(Number.MAX_SAFE_INTEGER, vmId);
    await new Promise((r) => setTimeout(r, 400));
    expect(Array.from(b.service.flushJob(jx)?.ranges ?? [])).toEqual([0x100, 1]);
    expect(Array.from((await a.service.settledFlushJob(jx))?.ranges ?? [])).toEqual([0x100, 1]);
    // B acknowledges X's job: Y's and Z's own jobs are still outstanding there.
    await b.service.acknowledgeFlushJob(jx, {});
    expect(b.jobs.outstanding(vmId).map((j) => j.id).sort()).toEqual([ey.jobId, ez.jobId].sort());
  });

  it('a replica that missed an acknowledgement learns it from the job\'s record', async () => {
    const [a, b] = await twoReplicas('missed');
    await vmr(a);
    const ex = await a.service.apply({ type: 'devctl', vmId, bdf: X, write: { nosnoopEnable: true } });
    const jx = ex.jobId as string;
    await b.service.catchUp(Number.MAX_SAFE_INTEGER, vmId);
    await b.service.settledFlushJob(jx);
    expect(b.jobs.outstanding(vmId).map((j) => j.id)).toEqual([jx]);
    // A keeps the acknowledgement but B is not told (as if it were cut off when it was published).
    const acked = a.jobs.acknowledge(jx, {});
    await acked?.saved;
    expect(b.jobs.outstanding(vmId).map((j) => j.id)).toEqual([jx]);
    // B's periodic round reads the records of the jobs it still waits for.
    b.service.stop();
    b.service.follow(50);
    for (let i = 0; i < 100 && b.jobs.outstanding(vmId).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(b.jobs.outstanding(vmId)).toEqual([]);
  });

  it('two event logs made in the same millisecond have different epochs', () => {
    const now = Date.now;
    Date.now = () => 1_800_000_000_000;
    try {
      const ids = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const events = new VmEvents();
        let id = '';
        const stop = events.subscribe(vmId, undefined, (e) => {
          id = e.id;
        });
        events.emit({ type: 'reset', vmId, reason: 'test' });
        stop();
        ids.add(id);
      }
      expect(ids.size).toBe(20);
    } finally {
      Date.now = now;
    }
  });
});
