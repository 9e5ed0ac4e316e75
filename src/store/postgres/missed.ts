/**
 * What a replica missed of some VMs, read in one statement (one consistent view): of each VM
 * whose head is past what the replica knows, its newer snapshot, its effects and its flush job
 * parts after that.
 */
import { pairsFromBytes } from '../codec.js';
import type { EffectRow, Missed, StoredJobPart, VmSnapshot } from '../state-store.js';
import type { Table } from './migrations.js';

/** A row of what a replica missed: a VM's snapshot (`s`), an effect (`e`) or a job part (`j`). */
export type MissedRow = { kind: 's' | 'e' | 'j'; vm: string; seq: string; n: string; record: string | null; ops: Buffer | null; job: string | null; header: string | null };

/**
 * The statement: `behind` gives (vm, after) rows, the sequence number each VM is known up to; of
 * those whose head is past it, their newer snapshot, their effects and their job parts after it.
 */
export function missedQuery(t: Table, behind: string): string {
  return `WITH k AS (${behind}), b AS (SELECT k.vm, k.after FROM k JOIN ${t('heads')} h USING (vm) WHERE h.seq > k.after)
    SELECT 's' AS kind, s.vm, s.seq::text AS seq, '0' AS n, s.record, s.pins AS ops, NULL AS job, NULL AS header FROM ${t('snapshots')} s JOIN b USING (vm) WHERE s.seq > b.after
    UNION ALL
    SELECT 'e', e.vm, e.seq::text, e.n::text, e.record, e.ops, NULL, NULL FROM ${t('effects')} e JOIN b USING (vm) WHERE e.seq > b.after
    UNION ALL
    SELECT 'j', p.vm, p.seq::text, p.n::text, NULL, p.pairs, p.job, p.header FROM ${t('job_parts')} p JOIN b USING (vm) WHERE p.seq > b.after`;
}

/** The statement's rows, in change order. */
export function missedOf(rows: readonly MissedRow[]): Missed {
  const sorted = rows.map((r) => ({ r, seq: Number(r.seq), n: Number(r.n) })).sort((x, y) => x.seq - y.seq || x.n - y.n);
  const snapshots: VmSnapshot[] = [];
  const effects: EffectRow[] = [];
  const jobs: StoredJobPart[] = [];
  for (const { r, seq } of sorted) {
    if (r.kind === 's') snapshots.push({ vmId: r.vm, seq, record: r.record as string, pins: pairsFromBytes(r.ops) as Float64Array });
    else if (r.kind === 'e') effects.push({ seq, vmId: r.vm, record: r.record, ops: pairsFromBytes(r.ops) });
    else jobs.push({ id: r.job as string, vmId: r.vm, header: r.header as string, pairs: pairsFromBytes(r.ops) as Float64Array });
  }
  return { snapshots, effects, jobs };
}
