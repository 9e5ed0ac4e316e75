import type { Command } from '../domain/index.js';

/** Ranges a pin or unpin batch lists in the audit trail; a larger batch is summarised. */
export const AUDIT_RANGES = 16;

/** Pins (or unpins) of one VM by one actor recorded whole per window; later ones in the window are folded. */
export const AUDIT_FOLD_AFTER = 16;

/** How long a VM's fold window lasts (ms), from its first pin (or unpin). */
export const AUDIT_FOLD_WINDOW_MS = 60_000;

/** What a summary record says of the ranges it stands for. */
export interface AuditSummary {
  readonly ranges: number;
  readonly pages: number;
  readonly iovaFrom: number;
  readonly iovaTo: number;
  /** Changes folded into the record (absent: one batch). */
  readonly changes?: number;
  /** Revisions of the first and the last change folded in. */
  readonly fromRevision?: number;
  readonly toRevision?: number;
}

/** The ranges of a pin or unpin as a summary: their count, pages and IOVA span. */
function summaryOf(ranges: readonly { readonly iova: number; readonly pages: number }[]): AuditSummary {
  let pages = 0;
  let first = Number.POSITIVE_INFINITY;
  let end = 0;
  for (const r of ranges) {
    pages += r.pages;
    if (r.iova < first) first = r.iova;
    if (r.iova + r.pages > end) end = r.iova + r.pages;
  }
  return { ranges: ranges.length, pages, iovaFrom: ranges.length === 0 ? 0 : first, iovaTo: end };
}

/**
 * The command as the audit trail keeps it: whole, except that a pin or unpin batch of more than
 * AUDIT_RANGES ranges keeps its count, its pages and its IOVA span (the ranges themselves are in
 * the state while pinned), so the trail grows with the changes, not with the ranges they carry.
 */
export function auditOf(command: Command): Command {
  if ((command.type !== 'pin' && command.type !== 'unpin') || command.ranges.length <= AUDIT_RANGES) return command;
  return { type: command.type, vmId: command.vmId, summary: summaryOf(command.ranges) } as unknown as Command;
}

/** The audit record a change writes: its command as kept, and where (see StoredChange.auditSeq). */
export interface AuditRecordOf {
  readonly command: Command;
  /** Absent: a record of its own (under the change's revision); set: the fold window's summary, kept under this revision. */
  readonly auditSeq?: number;
  readonly rules: readonly string[];
}

interface FoldWindow {
  readonly start: number;
  /** Changes recorded whole in this window so far. */
  whole: number;
  /** The revision the window's summary is kept under: its first folded change's (0: none folded yet). */
  anchor: number;
  changes: number;
  ranges: number;
  pages: number;
  iovaFrom: number;
  iovaTo: number;
  fromRevision: number;
  readonly rules: Set<string>;
}

/**
 * Folds high-rate pins and unpins of one VM into one record per window, as batches above
 * AUDIT_RANGES already are, so that the audit trail grows with activity at a bounded byte rate:
 * per VM, actor and kind (pin or unpin), the first `after` changes of a window are recorded
 * whole; the later ones update one summary record (a valid audit entry: `{ type, vmId, summary:
 * { ranges, pages, iovaFrom, iovaTo, changes, fromRevision, toRevision } }`, the rules named
 * once each), kept under the revision of the first change folded into it. A VM pinning at any
 * rate thus writes at most `after + 1` records per kind and window.
 *
 * The summary is rewritten in the same transaction as each change folded into it (the change's
 * audit record is the summary so far), not written when the window closes: a crash or restart
 * loses nothing of it, and it always counts exactly the changes the store kept. A reader paging
 * the trail meanwhile sees the summary at its place, with the counts it had then. The decided
 * state never depends on it (restore reads snapshots and effects only; the commands of a 0.1.0
 * store are read once, before any of this is written).
 *
 * The record is chosen when the change is decided, before it is kept: a change that is not kept
 * drops its VM's windows (`forget`), so no summary counts it (its store transaction, summary
 * update included, rolled back), and the VM's next change starts a new window.
 */
export class AuditFolder {
  readonly #after: number;
  readonly #windowMs: number;
  readonly #windows = new Map<string, FoldWindow>();
  #calls = 0;

  constructor(options: { readonly after?: number; readonly windowMs?: number } = {}) {
    this.#after = options.after ?? AUDIT_FOLD_AFTER;
    this.#windowMs = options.windowMs ?? AUDIT_FOLD_WINDOW_MS;
  }

  /** The audit record of change `seq` (decided at `at`), whole or folded. */
  record(command: Command, seq: number, at: number, actor: string, rules: readonly string[]): AuditRecordOf {
    if (command.type !== 'pin' && command.type !== 'unpin') return { command: auditOf(command), rules };
    if (++this.#calls % 4096 === 0) this.#sweep(at);
    const key = `${command.vmId}\u0000${command.type}\u0000${actor}`;
    let w = this.#windows.get(key);
    if (w === undefined || at >= w.start + this.#windowMs || at < w.start) {
      w = { start: at, whole: 0, anchor: 0, changes: 0, ranges: 0, pages: 0, iovaFrom: Number.POSITIVE_INFINITY, iovaTo: 0, fromRevision: 0, rules: new Set() };
      this.#windows.set(key, w);
    }
    if (w.whole < this.#after) {
      w.whole++;
      return { command: auditOf(command), rules };
    }
    const s = summaryOf(command.ranges);
    if (w.anchor === 0) {
      w.anchor = seq;
      w.fromRevision = seq;
    }
    w.changes++;
    w.ranges += s.ranges;
    w.pages += s.pages;
    if (s.ranges > 0) {
      w.iovaFrom = Math.min(w.iovaFrom, s.iovaFrom);
      w.iovaTo = Math.max(w.iovaTo, s.iovaTo);
    }
    for (const r of rules) w.rules.add(r);
    const summary: AuditSummary = {
      ranges: w.ranges,
      pages: w.pages,
      iovaFrom: w.ranges === 0 ? 0 : w.iovaFrom,
      iovaTo: w.iovaTo,
      changes: w.changes,
      fromRevision: w.fromRevision,
      toRevision: seq
    };
    return { command: { type: command.type, vmId: command.vmId, summary } as unknown as Command, auditSeq: w.anchor, rules: [...w.rules] };
  }

  /** A change of VM `vmId` was not kept: its windows end, so no summary counts it. */
  forget(vmId: string): void {
    const prefix = `${vmId}\u0000`;
    for (const key of this.#windows.keys()) if (key.startsWith(prefix)) this.#windows.delete(key);
  }

  /** The state was reloaded: every window ends. */
  clear(): void {
    this.#windows.clear();
  }

  /** Windows over by `at` are dropped, so VMs gone quiet (or gone) cost nothing. */
  #sweep(at: number): void {
    for (const [key, w] of this.#windows) if (at >= w.start + this.#windowMs) this.#windows.delete(key);
  }
}
