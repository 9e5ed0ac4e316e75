/**
 * Keeps decided state in memory: for tests, or `STORE=memory` when losing state on restart is
 * fine. Everything is copied or encoded on the way in, like a real store, so a value that would
 * not survive one fails here too.
 */
import { auditRow, encodeCommand } from './codec.js';
import { mergeJobs } from './merge-jobs.js';
import { QUIRKS_EFFECT, type AuditEntry, type AuditQuery, type EffectRow, type LegacyCommand, type LoadedJob, type LoadedState, type StateStore, type StoredChange, type StoredJob, type StoredJobPart, type VmSnapshot } from './state-store.js';

interface AuditRecord {
  readonly seq: number;
  readonly at: number;
  readonly vm: string | null;
  readonly body: string;
  readonly actor: string | null;
  readonly rules: string | null;
}

export class MemoryStore implements StateStore {
  readonly kind = 'memory' as const;
  #seq = 0;
  #effects: EffectRow[] = [];
  readonly #snapshots = new Map<string, VmSnapshot>();
  readonly #audit: AuditRecord[] = [];
  readonly #meta = new Map<string, string>();
  readonly #jobs = new Map<string, StoredJob>();
  #parts: StoredJobPart[] = [];

  load(): Promise<LoadedState> {
    return Promise.resolve({
      seq: this.#seq,
      snapshots: [...this.#snapshots.values()].map((s) => ({ ...s, pins: s.pins.slice() })),
      effects: this.#effects.map((e) => ({ ...e, ops: e.ops === null ? null : e.ops.slice() }))
    });
  }

  legacy(): Promise<LegacyCommand[] | null> {
    return Promise.resolve(null);
  }

  /** Never called: a memory store has nothing written by 0.1.0 to migrate. */
  migrated(snapshots: readonly VmSnapshot[], quirks: string, seq: number): Promise<void> {
    for (const s of snapshots) void this.snapshot(s);
    this.#effects.push({ seq, vmId: QUIRKS_EFFECT, record: quirks, ops: null });
    this.#seq = seq;
    return Promise.resolve();
  }

  append(changes: readonly StoredChange[]): Promise<void> {
    for (const c of changes) {
      for (const e of c.effects) {
        // A newer quirk list makes older ones useless; a deleted VM leaves nothing behind.
        if (e.vmId === QUIRKS_EFFECT || e.record === null) this.#effects = this.#effects.filter((x) => x.vmId !== e.vmId);
        if (e.record === null) {
          this.#snapshots.delete(e.vmId);
          continue;
        }
        this.#effects.push({ seq: c.seq, vmId: e.vmId, record: e.record, ops: e.ops === null ? null : e.ops.slice() });
      }
      for (const j of c.jobs ?? []) this.#parts.push({ ...j, pairs: j.pairs.slice() });
      const record: AuditRecord = {
        seq: c.auditSeq ?? c.seq,
        at: c.at,
        vm: 'vmId' in c.command ? c.command.vmId : null,
        body: encodeCommand(c.command),
        actor: c.actor ?? null,
        rules: c.rules === undefined ? null : JSON.stringify(c.rules)
      };
      // A fold window's summary is replaced by each change folded into it (it keeps its time).
      const at = c.auditSeq === undefined || c.auditSeq === c.seq ? -1 : this.#audit.findLastIndex((r) => r.seq === c.auditSeq);
      if (at < 0) this.#audit.push(record);
      else this.#audit[at] = { ...record, at: (this.#audit[at] as AuditRecord).at };
      this.#seq = c.seq;
    }
    return Promise.resolve();
  }

  snapshot(snapshot: VmSnapshot): Promise<void> {
    this.#snapshots.set(snapshot.vmId, { ...snapshot, pins: snapshot.pins.slice() });
    this.#effects = this.#effects.filter((e) => e.vmId !== snapshot.vmId || e.seq > snapshot.seq);
    return Promise.resolve();
  }

  audit(query: AuditQuery): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    for (const r of this.#audit) {
      if (out.length >= query.limit) break;
      if (r.seq <= (query.afterSeq ?? 0) || r.at < (query.since ?? 0)) continue;
      if (query.vmId !== undefined && r.vm !== query.vmId) continue;
      out.push(auditRow(r));
    }
    return Promise.resolve(out);
  }

  meta(key: string, initial: string): Promise<string> {
    if (!this.#meta.has(key)) this.#meta.set(key, initial);
    return Promise.resolve(this.#meta.get(key) as string);
  }

  probe(): Promise<void> {
    return Promise.resolve();
  }

  saveJob(job: StoredJob): Promise<void> {
    // Ranges given once are kept: a record without them replaces only the state.
    const pairs = job.pairs === null ? (this.#jobs.get(job.id)?.pairs ?? null) : job.pairs.slice();
    this.#jobs.set(job.id, { ...job, pairs });
    return Promise.resolve();
  }

  loadJobs(): Promise<LoadedJob[]> {
    return Promise.resolve(mergeJobs([...this.#jobs.values()], this.#parts));
  }

  forgetJobs(ids: readonly string[]): Promise<void> {
    const gone = new Set(ids);
    for (const id of ids) this.#jobs.delete(id);
    this.#parts = this.#parts.filter((p) => !gone.has(p.id));
    return Promise.resolve();
  }

  trimAudit(at: number): Promise<number> {
    const before = this.#audit.length;
    const kept = this.#audit.filter((r) => r.at >= at);
    this.#audit.length = 0;
    this.#audit.push(...kept);
    return Promise.resolve(before - kept.length);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
