/**
 * What the audit trail keeps: changes at most AUDIT_RETENTION old (trimmed every hour) and at
 * most AUDIT_MAX_MB of them (measured every AUDIT_CHECK_MS; over it, the oldest records go,
 * whatever their age). Both run off the event loop, in the store, outside any change's
 * transaction; a failed round is retried at the next (the trail only keeps a little more
 * meanwhile) and fails no change.
 */
import type { StateStore } from '../store/state-store.js';

/**
 * How often the audit trail's size is checked (ms). At 1,000 changes/s of about 200 bytes each
 * (none folded: many VMs) the trail grows by about 400 KB between checks: what it may exceed its
 * budget by before the next check brings it back under.
 */
export const AUDIT_CHECK_MS = 2000;

export interface AuditBudgetOptions {
  /** How long the audit trail keeps a change (ms); default 30 days. */
  readonly retentionMs?: number;
  /** Bytes the audit trail may hold (AUDIT_MAX_MB); default 256 MiB. */
  readonly maxBytes?: number;
  /** Called with the audit records removed, and why (metrics). */
  readonly onPruned?: (reason: 'age' | 'size', records: number) => void;
}

export class AuditBudget {
  /** How long the audit trail keeps a change (ms). */
  readonly retentionMs: number;
  /** Bytes the audit trail may hold (AUDIT_MAX_MB). */
  readonly maxBytes: number;
  /** What the last size check measured (zeros before the first, and without a store that measures). */
  readonly size = { auditBytes: 0, storeBytes: 0 };
  readonly #store: StateStore | undefined;
  readonly #clock: () => number;
  readonly #onPruned: (reason: 'age' | 'size', records: number) => void;
  /** The newest change removed for size (ms since the epoch; 0: none): the trail no longer covers it. */
  #prunedThrough = 0;
  #trimmer: NodeJS.Timeout | null = null;
  #sizer: NodeJS.Timeout | null = null;
  /** The size check running, if any. */
  #sizing: Promise<void> | null = null;

  constructor(store: StateStore | undefined, clock: () => number, options: AuditBudgetOptions = {}) {
    this.#store = store;
    this.#clock = clock;
    this.retentionMs = options.retentionMs ?? 30 * 86_400_000;
    this.maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
    this.#onPruned = options.onPruned ?? (() => undefined);
  }

  /**
   * The oldest time the audit trail still covers: changes before it were forgotten, by age
   * (AUDIT_RETENTION) or, when the trail outgrew AUDIT_MAX_MB, by size.
   */
  get keptSince(): number {
    return Math.max(this.#clock() - this.retentionMs, this.#prunedThrough === 0 ? 0 : this.#prunedThrough + 1);
  }

  /** Forgets audit entries past their retention now, then every hour; and checks the size now, then every AUDIT_CHECK_MS. */
  start(): void {
    const store = this.#store;
    if (store === undefined || this.#trimmer !== null) return;
    const trim = (): void => {
      store.trimAudit(this.#clock() - this.retentionMs).then(
        (removed) => {
          if (removed > 0) this.#onPruned('age', removed);
        },
        () => undefined
      );
    };
    trim();
    this.#trimmer = setInterval(trim, 3_600_000).unref();
    if (store.pruneAudit === undefined) return;
    void this.check();
    this.#sizer = setInterval(() => void this.check(), AUDIT_CHECK_MS).unref();
  }

  /**
   * Measures the audit trail and, when it holds more than AUDIT_MAX_MB, removes its oldest
   * records. One check at a time: resolves once done (a check asked for while one runs is that one).
   */
  check(): Promise<void> {
    this.#sizing ??= this.#check().finally(() => {
      this.#sizing = null;
    });
    return this.#sizing;
  }

  async #check(): Promise<void> {
    const store = this.#store;
    if (store?.pruneAudit === undefined) return;
    try {
      const size = await store.pruneAudit(this.maxBytes);
      this.size.auditBytes = size.auditBytes;
      this.size.storeBytes = size.storeBytes;
      if (size.removed > 0) {
        this.#prunedThrough = Math.max(this.#prunedThrough, size.removedThrough);
        this.#onPruned('size', size.removed);
      }
    } catch {
      // Tried again at the next check.
    }
  }

  stop(): void {
    if (this.#trimmer !== null) clearInterval(this.#trimmer);
    this.#trimmer = null;
    if (this.#sizer !== null) clearInterval(this.#sizer);
    this.#sizer = null;
  }
}
