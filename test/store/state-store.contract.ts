/**
 * The contract every StateStore keeps, run against each implementation: decided state (effects
 * and snapshots) given back exactly, snapshots that drop what they cover, deleted VMs that leave
 * nothing behind, the audit trail, flush jobs and durability across a reopen.
 */
import { expect, it } from 'vitest';
import { parseVmId, type Command } from '../../src/domain/index.js';
import { QUIRKS_EFFECT, type StateStore, type StoredChange } from '../../src/store/state-store.js';

const vmId = parseVmId('vm1');

/** Change `seq` of vm1: its record and one inserted range at a 64-bit page number. */
function change(seq: number, vm: string = vmId): StoredChange {
  const command: Command = { type: 'pin', vmId: parseVmId(vm), ranges: [{ iova: 2 ** 52 - seq, pages: 1, hpa: seq }] };
  return { seq, at: 1_700_000_000_000 + seq, command, effects: [{ vmId: vm, record: `{"vm":"${vm}","n":${seq}}`, ops: new Float64Array([1, 2 ** 52 - seq, 1, seq, 7]) }] };
}

function changes(from: number, n: number): StoredChange[] {
  return Array.from({ length: n }, (_, i) => change(from + i));
}

function plain(rows: readonly { seq: number; vmId: string; record: string | null; ops: Float64Array | null }[]): unknown[] {
  return rows.map((r) => [r.seq, r.vmId, r.record, r.ops === null ? null : [...r.ops]]);
}

function expected(list: readonly StoredChange[]): unknown[] {
  return list.flatMap((c) => c.effects.map((e) => [c.seq, e.vmId, e.record, e.ops === null ? null : [...e.ops]]));
}

export interface StoreFactory {
  /** A fresh, empty store. */
  readonly open: () => StateStore;
  /** The same store opened again after close (for durable stores); undefined when it keeps nothing. */
  readonly reopen?: () => StateStore;
}

export function runStoreContract(factory: StoreFactory): void {
  it('starts empty, with nothing to migrate', async () => {
    const store = factory.open();
    expect(await store.load()).toEqual({ seq: 0, snapshots: [], effects: [] });
    expect(await store.legacy()).toBeNull();
    await store.close();
  });

  it('gives back the effects appended, in order, exactly (64-bit page numbers)', async () => {
    const store = factory.open();
    const written = changes(1, 50);
    await store.append(written.slice(0, 10));
    await store.append(written.slice(10));
    const loaded = await store.load();
    expect(loaded.seq).toBe(50);
    expect(plain(loaded.effects)).toEqual(expected(written));
    await store.close();
  });

  it('takes appends from one event-loop turn together, each resolving once stored', async () => {
    const store = factory.open();
    const written = changes(1, 100);
    await Promise.all(written.map((c) => store.append([c])));
    expect(plain((await store.load()).effects)).toEqual(expected(written));
    await store.close();
  });

  it('keeps a 10,000-range batch of pin operations whole', async () => {
    const store = factory.open();
    const ops = new Float64Array(5 * 10_000).map((_, i) => i * 512);
    const big: StoredChange = { ...change(1), effects: [{ vmId, record: '{}', ops }] };
    await store.append([big]);
    expect([...((await store.load()).effects[0]?.ops ?? [])]).toEqual([...ops]);
    await store.close();
  });

  it('a snapshot drops its VM effects up to it, and keeps later ones and other VMs', async () => {
    const store = factory.open();
    await store.append([change(1), change(2, 'vm2'), change(3), change(4)]);
    await store.snapshot({ vmId, seq: 3, record: '{"snap":3}', pins: new Float64Array([2 ** 52 - 1, 1, 1, 7]) });
    const loaded = await store.load();
    expect(loaded.snapshots.map((s) => [s.vmId, s.seq, s.record, [...s.pins]])).toEqual([['vm1', 3, '{"snap":3}', [2 ** 52 - 1, 1, 1, 7]]]);
    expect(loaded.effects.map((e) => [e.seq, e.vmId])).toEqual([
      [2, 'vm2'],
      [4, 'vm1']
    ]);
    await store.close();
  });

  it('a deleted VM leaves no effects or snapshot behind; a newer quirk list supersedes older ones', async () => {
    const store = factory.open();
    await store.append([change(1), change(2, 'vm2')]);
    await store.snapshot({ vmId, seq: 1, record: '{}', pins: new Float64Array(0) });
    await store.append([{ ...change(3), effects: [{ vmId, record: null, ops: null }] }]);
    await store.append([{ ...change(4), effects: [{ vmId: QUIRKS_EFFECT, record: '{"quirks":[]}', ops: null }] }]);
    await store.append([{ ...change(5), effects: [{ vmId: QUIRKS_EFFECT, record: '{"quirks":[1]}', ops: null }] }]);
    const loaded = await store.load();
    expect(loaded.snapshots).toEqual([]);
    expect(loaded.effects.filter((e) => e.vmId !== 'vm1' || e.record !== null).map((e) => [e.seq, e.vmId, e.record])).toEqual([
      [2, 'vm2', '{"vm":"vm2","n":2}'],
      [5, QUIRKS_EFFECT, '{"quirks":[1]}']
    ]);
    expect(loaded.seq).toBe(5);
    await store.close();
  });

  it('answers the audit trail: actor, rules, filtered by VM and time, paged by sequence', async () => {
    const store = factory.open();
    const other = parseVmId('vm2');
    await store.append([
      { seq: 1, at: 100, command: { type: 'put-vm', vmId, arch: 'x86_64' }, effects: [], actor: 'ops', rules: [] },
      { seq: 2, at: 200, command: { type: 'put-vm', vmId: other, arch: 'x86_64' }, effects: [], actor: 'vmm', rules: ['K1'] },
      { seq: 3, at: 300, command: { type: 'delete-vm', vmId }, effects: [], actor: 'ops', rules: ['F5', 'F3'] },
      { seq: 4, at: 400, command: { type: 'put-quirks', quirks: [] }, effects: [] }
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

  it('keeps flush job records: the state replaced in place, ranges kept once given', async () => {
    const store = factory.open();
    await store.saveJob({ id: 'j1', vmId: 'vm1', body: '{"state":"running"}', pairs: new Float64Array([1, 2, 2 ** 52 - 1, 3]) });
    await store.saveJob({ id: 'j2', vmId: 'vm2', body: '{"state":"queued"}', pairs: null });
    await store.saveJob({ id: 'j1', vmId: 'vm1', body: '{"state":"done"}', pairs: null });
    const jobs = await store.loadJobs();
    expect(jobs.map((j) => [j.id, j.body, j.pairs === null ? null : [...j.pairs]])).toEqual([
      ['j1', '{"state":"done"}', [1, 2, 2 ** 52 - 1, 3]],
      ['j2', '{"state":"queued"}', null]
    ]);
    await store.close();
  });

  it('keeps each decision part of a job with its change, joins them on load, forgets them with the job', async () => {
    const store = factory.open();
    const part = (id: string, pairs: number[]) => ({ id, vmId: 'vm1', header: `{"job":"${id}"}`, pairs: new Float64Array(pairs) });
    await store.append([{ ...change(1), jobs: [part('ja', [1, 2])] }]);
    await store.append([{ ...change(2), jobs: [part('ja', [5, 1]), part('jb', [9, 9])] }]);
    await store.saveJob({ id: 'ja', vmId: 'vm1', body: '{"state":"done"}', pairs: null });
    const loaded = await store.loadJobs();
    expect(loaded.map((j) => [j.id, j.body, j.header, j.parts, [...(j.pairs ?? [])]])).toEqual([
      ['ja', '{"state":"done"}', '{"job":"ja"}', 2, [1, 2, 5, 1]],
      ['jb', null, '{"job":"jb"}', 1, [9, 9]]
    ]);
    await store.forgetJobs(['ja']);
    expect((await store.loadJobs()).map((j) => j.id)).toEqual(['jb']);
    await store.close();
  });

  it('forgets audit entries older than its retention, and says how many', async () => {
    const store = factory.open();
    await store.append(changes(1, 10));
    expect(await store.trimAudit(1_700_000_000_000 + 6)).toBe(5);
    expect((await store.audit({ limit: 100 })).map((c) => c.seq)).toEqual([6, 7, 8, 9, 10]);
    await store.close();
  });

  it('keeps the first value given for a meta key', async () => {
    const store = factory.open();
    expect(await store.meta('quirks', 'a')).toBe('a');
    expect(await store.meta('quirks', 'b')).toBe('a');
    await store.close();
  });

  if (factory.reopen !== undefined) {
    const reopen = factory.reopen;
    it('keeps everything acknowledged across close and reopen', async () => {
      const store = factory.open();
      const written = changes(1, 20);
      await store.append(written);
      await store.snapshot({ vmId, seq: 10, record: '{"snap":10}', pins: new Float64Array([1, 2, 3, 4]) });
      await store.close();
      const again = reopen();
      const loaded = await again.load();
      expect(loaded.seq).toBe(20);
      expect(loaded.snapshots.map((s) => s.seq)).toEqual([10]);
      expect(plain(loaded.effects)).toEqual(expected(written.slice(10)));
      await again.append(changes(21, 1));
      expect((await again.load()).seq).toBe(21);
      await again.close();
    });
  }
}
