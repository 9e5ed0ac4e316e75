/**
 * The embedded store's writes on their way to the writer thread (sqlite-writer.ts), packed so
 * that crossing the thread boundary costs little.
 */
import { encodeCommand } from '../codec.js';
import type { StoredChange, StoredJob, VmSnapshot } from '../state-store.js';

/** A write the engine commits in order with the others queued with it. */
export type WriteOp =
  | { readonly kind: 'append'; readonly changes: readonly StoredChange[] }
  | { readonly kind: 'snapshot'; readonly snapshot: VmSnapshot }
  | { readonly kind: 'probe'; readonly at: number }
  | { readonly kind: 'job'; readonly job: StoredJob }
  | { readonly kind: 'forget'; readonly ids: readonly string[] };

/**
 * Writes as they travel to the writer thread: their fields flattened into one array of strings
 * and numbers, in order, and every number array (pin operations, job ranges, pinned ranges) in
 * one Float64Array, named by offset and length (-1: none). Far cheaper to copy between threads
 * than the objects themselves, and the numbers can be transferred rather than copied.
 */
export interface PackedWrites {
  readonly values: (string | number | null)[];
  readonly floats: Float64Array;
}

/** How many numbers a write carries to the writer thread (pin operations, job ranges, pinned ranges). */
export function numbersOf(op: WriteOp): number {
  switch (op.kind) {
    case 'append': {
      let n = 0;
      for (const c of op.changes) {
        for (const e of c.effects) n += e.ops?.length ?? 0;
        for (const j of c.jobs ?? []) n += j.pairs.length;
      }
      return n;
    }
    case 'snapshot':
      return op.snapshot.pins.length;
    case 'job':
      return op.job.pairs?.length ?? 0;
    case 'probe':
    case 'forget':
      return 0;
  }
}

/** Flattens `ops` (see PackedWrites); the column values are encoded here, once. */
export function packWrites(ops: readonly WriteOp[]): PackedWrites {
  let size = 0;
  for (const op of ops) size += numbersOf(op);
  const floats = new Float64Array(size);
  let at = 0;
  const values: (string | number | null)[] = [];
  const put = (a: Float64Array | null): void => {
    if (a === null) {
      values.push(-1, -1);
      return;
    }
    floats.set(a, at);
    values.push(at, a.length);
    at += a.length;
  };
  for (const op of ops) {
    switch (op.kind) {
      case 'append':
        for (const c of op.changes) {
          values.push(
            'c',
            c.seq,
            c.at,
            'vmId' in c.command ? c.command.vmId : null,
            encodeCommand(c.command),
            c.actor ?? null,
            c.rules === undefined ? null : JSON.stringify(c.rules),
            c.auditSeq ?? c.seq,
            c.effects.length
          );
          for (const e of c.effects) {
            values.push(e.vmId, e.record);
            put(e.ops);
          }
          const jobs = c.jobs ?? [];
          values.push(jobs.length);
          for (const j of jobs) {
            values.push(j.id, j.vmId, j.header);
            put(j.pairs);
          }
        }
        break;
      case 'snapshot':
        values.push('s', op.snapshot.vmId, op.snapshot.seq, op.snapshot.record);
        put(op.snapshot.pins);
        break;
      case 'probe':
        values.push('p', op.at);
        break;
      case 'job':
        values.push('j', op.job.id, op.job.vmId, op.job.body);
        put(op.job.pairs);
        break;
      case 'forget':
        values.push('f', op.ids.length, ...op.ids);
        break;
    }
  }
  return { values, floats };
}
