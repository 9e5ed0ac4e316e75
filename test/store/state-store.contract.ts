/**
 * The contract every StateStore keeps, run against each implementation.
 */
import { expect, it } from 'vitest';
import { parseDomainId, parseVmId, type Command } from '../../src/domain/index.js';
import type { StateStore, StoredCommand } from '../../src/store/state-store.js';

const vmId = parseVmId('vm1');

function commands(from: number, n: number): StoredCommand[] {
  return Array.from({ length: n }, (_, i) => {
    const seq = from + i;
    const command: Command =
      seq === 1
        ? { type: 'put-vm', vmId, arch: 'x86_64', policy: { mode: 'trap' } }
        : { type: 'pin', vmId, ranges: [{ iova: 2 ** 52 - seq, pages: 1, hpa: seq, memType: 'WC', mmio: true, domains: [parseDomainId('d0')] }] };
    return { seq, at: 1_700_000_000_000 + seq, command };
  });
}

export interface StoreFactory {
  /** A fresh, empty store. */
  readonly open: () => StateStore;
  /** The same store opened again after close (for durable stores); undefined when it keeps nothing. */
  readonly reopen?: () => StateStore;
}

export function runStoreContract(factory: StoreFactory): void {
  it('starts empty', async () => {
    const store = factory.open();
    expect(await store.load()).toEqual([]);
    await store.close();
  });

  it('gives back what was appended, in order, exactly (64-bit page numbers, nested objects)', async () => {
    const store = factory.open();
    const written = commands(1, 50);
    await store.append(written.slice(0, 10));
    await store.append(written.slice(10));
    expect(await store.load()).toEqual(written);
    await store.close();
  });

  it('takes appends from one event-loop turn together, each resolving once stored', async () => {
    const store = factory.open();
    const written = commands(1, 100);
    await Promise.all(written.map((c) => store.append([c])));
    expect(await store.load()).toEqual(written);
    await store.close();
  });

  it('keeps a 10,000-range batch command whole', async () => {
    const store = factory.open();
    const ranges = Array.from({ length: 10_000 }, (_, i) => ({ iova: i * 512, pages: 512, hpa: i * 1024 }));
    const big: StoredCommand = { seq: 1, at: 1, command: { type: 'pin', vmId, ranges } };
    await store.append([big]);
    expect(await store.load()).toEqual([big]);
    await store.close();
  });

  it('answers the audit trail: actor, rules, filtered by VM and time, paged by sequence', async () => {
    const store = factory.open();
    const other = parseVmId('vm2');
    await store.append([
      { seq: 1, at: 100, command: { type: 'put-vm', vmId, arch: 'x86_64' }, actor: 'ops', rules: [] },
      { seq: 2, at: 200, command: { type: 'put-vm', vmId: other, arch: 'x86_64' }, actor: 'vmm', rules: ['K1'] },
      { seq: 3, at: 300, command: { type: 'delete-vm', vmId }, actor: 'ops', rules: ['F5', 'F3'] },
      { seq: 4, at: 400, command: { type: 'put-quirks', quirks: [] } }
    ]);
    expect((await store.audit({ limit: 10 })).map((c) => [c.seq, c.actor, c.rules])).toEqual([
      [1, 'ops', []],
      [2, 'vmm', ['K1']],
      [3, 'ops', ['F5', 'F3']],
      [4, undefined, undefined]
    ]);
    expect((await store.audit({ vmId: 'vm1', limit: 10 })).map((c) => c.seq)).toEqual([1, 3]);
    expect((await store.audit({ since: 200, limit: 10 })).map((c) => c.seq)).toEqual([2, 3, 4]);
    expect((await store.audit({ afterSeq: 1, limit: 2 })).map((c) => c.seq)).toEqual([2, 3]);
    await store.close();
  });

  it('keeps flush job records: replaced in place, ranges kept while given', async () => {
    const store = factory.open();
    await store.saveJob({ id: 'j1', vmId: 'vm1', body: '{"state":"running"}', pairs: new Float64Array([1, 2, 2 ** 52 - 1, 3]) });
    await store.saveJob({ id: 'j2', vmId: 'vm2', body: '{"state":"queued"}', pairs: null });
    await store.saveJob({ id: 'j1', vmId: 'vm1', body: '{"state":"done"}', pairs: null });
    const jobs = await store.loadJobs();
    expect(jobs.map((j) => [j.id, j.body, j.pairs === null ? null : [...j.pairs]])).toEqual([
      ['j1', '{"state":"done"}', null],
      ['j2', '{"state":"queued"}', null]
    ]);
    await store.saveJob({ id: 'j3', vmId: 'vm1', body: '{}', pairs: new Float64Array([5, 6]) });
    expect([...((await store.loadJobs()).find((j) => j.id === 'j3')?.pairs ?? [])]).toEqual([5, 6]);
    await store.close();
  });

  if (factory.reopen !== undefined) {
    const reopen = factory.reopen;
    it('keeps everything acknowledged across close and reopen', async () => {
      const store = factory.open();
      const written = commands(1, 20);
      await store.append(written);
      await store.close();
      const again = reopen();
      expect(await again.load()).toEqual(written);
      await again.append(commands(21, 1));
      expect((await again.load()).map((c) => c.seq)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
      await again.close();
    });
  }
}
