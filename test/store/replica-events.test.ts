/**
 * Two replicas on one PostgreSQL (real), following each other through the store's notifications
 * (LISTEN/NOTIFY; the fallback poll is set to a minute, so only a notification can deliver in
 * time): a VMM following its VM's events on replica B hears of changes made through replica A
 * with their full decisions and flush jobs, acknowledges them on B, and A counts them done.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, parseDomainId, parsePciAddress, parseQuirkFile, parseVmId, type PciAddress, type Quirk } from '../../src/domain/index.js';
import { createRuntime, type Runtime } from '../../src/service/runtime.js';
import type { VmEvent } from '../../src/service/vm-events.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { dropSchemas, freshSchema, PG_URL, twoReplicas, until } from '../helpers/postgres.js';

const schemas: string[] = [];
const runtimes: Runtime[] = [];
afterAll(async () => {
  for (const r of runtimes) await r.close();
  await dropSchemas(schemas);
});

/** A replica that follows the others by notification only (its safety poll once a minute). */
async function replica(schema: string, keepEvents?: number): Promise<Runtime> {
  const store = new PostgresStore({ connectionString: PG_URL, schema, ...(keepEvents === undefined ? {} : { keepEvents }) });
  const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile({ quirks: [] }), store, threads: 1 });
  runtimes.push(runtime);
  await runtime.start();
  runtime.service.follow(60_000);
  return runtime;
}

const vmId = parseVmId('vmq');
const d0 = parseDomainId('d0');
const NIC = parsePciAddress('0000:01:00.0');
const OTHER = parsePciAddress('0000:02:00.0');
const THIRD = parsePciAddress('0000:03:00.0');
const nic = (bdf: PciAddress) => ({ bdf, domainId: d0, vendorId: 0x8086, deviceId: 0x1572, function: 'pf' as const, physfn: null, nosnoop: 'disabled' as const });
/** VM vmq through `a`: trap with `onEnable`, a non-coherent d0, and NICs (bit clear) in it. */
async function vmq(a: Runtime, onEnable: 'allow' | 'deny', nics: readonly PciAddress[]): Promise<void> {
  await a.service.apply({ type: 'put-vm', vmId, arch: 'x86_64', policy: { mode: 'trap', onEnable } });
  await a.service.apply({ type: 'put-domain', vmId, domainId: d0, enforceCacheCoherency: false });
  for (const bdf of nics) await a.service.apply({ type: 'put-device', vmId, device: nic(bdf) });
}

const IGNORES: Quirk = { vendorId: 0x8086, deviceId: 0x1572, deviceMask: 0xffff, flags: ['ignores-nosnoop-enable'] };

describe('events and flush jobs across replicas (real PostgreSQL, LISTEN/NOTIFY)', () => {
  it('the quirk case: a VMM on replica B hears of the replay an operator caused on A, acknowledges it on B, and A counts it done', async () => {
    const [a, b] = await twoReplicas('quirk', schemas, replica);
    // vmq: trap, onEnable deny, a non-coherent domain, a NIC whose bit is clear, 2 MiB pinned "no flush".
    await vmq(a, 'deny', [NIC]);
    const pin = await a.service.apply({ type: 'pin', vmId, ranges: [{ iova: 0, pages: 512, hpa: 0x100000 }] });
    expect(pin.decision.flush.required).toBe(false);

    const seen: VmEvent[] = [];
    const stop = b.service.events.subscribe(vmId, undefined, (e) => seen.push(e));
    try {
      const quirked = await a.service.apply({ type: 'put-quirks', quirks: [IGNORES] }, 'operator');
      const jobId = quirked.vmJobIds?.get(vmId) as string;
      expect(jobId).toMatch(/^fj-/);
      // On B's stream: the operator's decision with its replay and job, as A answered it.
      const told = await until('the decision on B', () => seen.find((e) => e.type === 'decision' && e.command === 'put-quirks'));
      expect(told).toMatchObject({ type: 'decision', vmId: 'vmq', command: 'put-quirks', actor: 'operator', jobId, revision: quirked.revision });
      if (told.type !== 'decision') throw new Error('not a decision');
      expect(told.decision.flush).toMatchObject({ required: true, cause: 'replay', pages: 512 });
      // B knows the job (adopted with the change), pending, and lists it for its VM.
      const planned = await b.service.settledFlushJob(jobId);
      expect(planned).toMatchObject({ id: jobId, vmId: 'vmq', state: 'pending', cause: 'replay', requestedPages: 512 });
      expect(b.service.openFlushJobs(vmId)).toEqual([jobId]);
      await until('the planned job on B', () => seen.find((e) => e.type === 'flush-job' && e.job.id === jobId));

      // The VMM acknowledges it on B; A hears of it and counts it done.
      expect((await b.service.acknowledgeFlushJob(jobId, { flushedPages: 512 }))?.state).toBe('acknowledged');
      await until('the acknowledgement on A', () => (a.service.flushJob(jobId)?.state === 'acknowledged' ? true : undefined));
      expect(a.service.openFlushJobs(vmId)).toEqual([]);
      expect(seen.filter((e) => e.type === 'flush-job' && e.job.state === 'acknowledged').map((e) => e.type === 'flush-job' && e.job.id)).toEqual([jobId]);
      // And the VMM's own query on B for the range: flagged since the change, nothing pending.
      expect(b.service.mustFlush(vmId, 'map', [{ iova: 0, pages: 512 }]).after).toBeUndefined();
    } finally {
      stop();
    }
  });

  it('two devices across replicas: an enable on B while A\'s replay is outstanding names it in flush.after; ?wait on B ends with the ack on A', async () => {
    const [a, b] = await twoReplicas('after', schemas, replica);
    await vmq(a, 'allow', [NIC, OTHER, THIRD]);
    await a.service.apply({ type: 'pin', vmId, ranges: [{ iova: 0, pages: 1, hpa: 0x100000 }] });
    const x = await a.service.apply({ type: 'devctl', vmId, bdf: NIC, write: { nosnoopEnable: true } });
    expect(x.decision.flush.cause).toBe('replay');
    const j = x.jobId as string;

    // A change on B applies A's change first, in its own transaction, and adopts J with it.
    const y = await b.service.apply({ type: 'devctl', vmId, bdf: OTHER, write: { nosnoopEnable: true } });
    expect(y.decision.devctl?.decision).toBe('allow');
    expect(y.after).toEqual([j]);
    // ?wait=true on B for the third device waits for J's acknowledgement, made through A.
    let waited = false;
    const wait = b.service.awaitDependencies(vmId, 5000, { bdf: THIRD, write: { nosnoopEnable: true } }).then(() => {
      waited = true;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(waited).toBe(false);
    await a.service.acknowledgeFlushJob(j, {});
    await wait;
    expect(waited).toBe(true);
    expect(b.service.flushJob(j)?.state).toBe('acknowledged');
    const z = await b.service.apply({ type: 'devctl', vmId, bdf: THIRD, write: { nosnoopEnable: true } });
    expect(z.after).toBeUndefined();
    expect(z.decision.devctl?.decision).toBe('allow');
  });

  it('a subscriber on B resuming after a change on A gets it as a decision, applied to B\'s state first', async () => {
    const [a, b] = await twoReplicas('events', schemas, replica);
    await a.service.apply({ type: 'put-vm', vmId, arch: 'x86_64', policy: {} });
    const seen: VmEvent[] = [];
    const stop = b.service.events.subscribe(vmId, undefined, (e) => seen.push(e));
    try {
      const changed = await a.service.apply({ type: 'put-domain', vmId, domainId: d0, enforceCacheCoherency: false }, 'vmm-a');
      const e = await until('the decision on B', () => seen.find((x) => x.type === 'decision' && x.revision === changed.revision));
      expect(e).toMatchObject({ type: 'decision', vmId: 'vmq', command: 'put-domain', actor: 'vmm-a' });
      expect(b.service.vm(vmId).domains.map((d) => d.id)).toEqual(['d0']);
      expect(b.service.revisionOf(vmId)).toBe(changed.revision);
    } finally {
      stop();
    }
  });

  it('a replica cut off while the store dropped the events it had not read tells its subscribers to re-read the VM', async () => {
    const schema = freshSchema('gone');
    schemas.push(schema);
    const a = await replica(schema, 8);
    const b = await replica(schema);
    await new Promise((r) => setTimeout(r, 300));
    const seen: VmEvent[] = [];
    const stop = b.service.events.subscribe(vmId, undefined, (e) => seen.push(e));
    try {
      await a.service.apply({ type: 'put-vm', vmId, arch: 'x86_64', policy: {} });
      const made = await a.service.apply({ type: 'put-domain', vmId, domainId: d0, enforceCacheCoherency: true });
      // B has handed on everything so far; then it is cut off: it no longer follows.
      await until('B at A\'s revision', () => seen.find((e) => e.type === 'decision' && e.revision === made.revision));
      b.service.stop();
      seen.length = 0;
      for (let i = 0; i < 40; i++) await a.service.apply({ type: 'pin', vmId, ranges: [{ iova: i, pages: 1, hpa: 0x1000 + i }] });
      expect(seen).toEqual([]);
      b.service.follow(60_000);
      const reset = await until('reset on B', () => seen.find((e) => e.type === 'reset'));
      expect(reset).toMatchObject({ type: 'reset', vmId: 'vmq' });
      expect(b.service.pins(vmId, 0, 100)).toHaveLength(40);
    } finally {
      stop();
    }
  });

  it('a replica that fell behind the log\'s floor reloads, and takes up the flush jobs promised meanwhile', async () => {
    const [a, b] = await twoReplicas('floor', schemas, replica);
    await vmq(a, 'allow', [NIC, OTHER]);
    const made = await a.service.apply({ type: 'pin', vmId, ranges: [{ iova: 0, pages: 1, hpa: 0x100000 }] });
    await until('B at A\'s revision', () => (b.service.revisionOf(vmId) === made.revision ? true : undefined));
    b.service.stop(); // cut off
    // 5,000 ranges: A snapshots the VM and drops its effects, so B can no longer catch up by them.
    await a.service.apply({ type: 'pin', vmId, ranges: Array.from({ length: 5000 }, (_, i) => ({ iova: 16 + 2 * i, pages: 1, hpa: 0x200000 + i })) });
    await new Promise((r) => setTimeout(r, 300));
    const x = await a.service.apply({ type: 'devctl', vmId, bdf: NIC, write: { nosnoopEnable: true } });
    const j = x.jobId as string;
    expect(x.decision.flush.cause).toBe('replay');
    b.service.follow(60_000);
    await until('B reloaded', () => (b.service.revisionOf(vmId) === x.revision ? true : undefined));
    // J was promised while B was behind: B took it up with the reload.
    expect((await b.service.settledFlushJob(j))?.state).toBe('pending');
    const y = await b.service.apply({ type: 'devctl', vmId, bdf: OTHER, write: { nosnoopEnable: true }, dryRun: true });
    expect(y.after).toEqual([j]);
  });
});
