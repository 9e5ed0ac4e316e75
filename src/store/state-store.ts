/**
 * Where acknowledged changes live. A store holds decided state, not requests to decide again:
 * per VM a snapshot (its record and pinned ranges) and the effects of the changes after it (the
 * VM's record as it became, and its pin map's operations), plus the quirk list in force. Loading
 * applies them as they were decided; nothing is decided again, so a restart under other server
 * defaults or another quirk file changes nothing, and its cost follows the live state: a VM's
 * effects before its snapshot are dropped. The command behind each change is kept apart, for the
 * audit trail only. Every implementation passes test/store/state-store.contract.ts.
 */
import type { Command } from '../domain/index.js';

export { auditOf, AuditFolder, AUDIT_FOLD_AFTER, AUDIT_FOLD_WINDOW_MS, AUDIT_RANGES } from './audit-of.js';
export { NotReadyError, StoreUnavailableError, type StoreErrorCode } from './store-errors.js';

/** One VM's part of a change, or a new quirk list (`vmId` empty). */
export interface StoredEffect {
  readonly vmId: string;
  /** The VM's record after the change (encodeVmRecord, or encodeVmDelta after a change of its pins only), the quirk file JSON, or null: the VM was deleted. */
  readonly record: string | null;
  /** The VM's pin map operations (PinJournal), if any. */
  readonly ops: Float64Array | null;
}

/** One decision's flush as part of a job: the job's header (JSON) and the decision's [hpa page, pages] pairs. */
export interface StoredJobPart {
  readonly id: string;
  readonly vmId: string;
  readonly header: string;
  readonly pairs: Float64Array;
}

/** An accepted change as stored: its effects, and the command behind it for the audit trail. */
export interface StoredChange {
  /** Position in the log, from 1, increasing (an embedded store's without gaps; a shared store's per VM). */
  readonly seq: number;
  /** The time the change was applied at (ms since the epoch). */
  readonly at: number;
  readonly effects: readonly StoredEffect[];
  /** The flush jobs the change's decisions joined: their ids are in the answer, so they are kept with the change. */
  readonly jobs?: readonly StoredJobPart[];
  /** The command, for the audit trail (a large batch as its summary: see `auditOf`; a folded pin or unpin as its window's summary: see `AuditFolder`). */
  readonly command: Command;
  /**
   * Where the audit record goes: absent, a record of its own under `seq`; set, the summary of a
   * fold window, kept under this revision (the window's first folded change, which may be this
   * one) and replaced by each later change folded into it, in the same transaction.
   */
  readonly auditSeq?: number;
  /** Who made the change (a token id, or "anonymous" without tokens), for the audit trail. */
  readonly actor?: string;
  /** Rule ids the decision named, for the audit trail. */
  readonly rules?: readonly string[];
  /** The events the change sends each VM's stream (JSON), for replicas sharing the store. */
  readonly events?: readonly StoredEvent[];
}

/** An event of a VM's stream (JSON, without its id), as a replica publishes it to the others. */
export interface StoredEvent {
  readonly vmId: string;
  readonly body: string;
}

/** An event another replica published: its position in the store's event log, and the event. */
export interface PublishedEvent extends StoredEvent {
  readonly n: number;
}

/** An effect as loaded back, with the sequence number of its change. */
export interface EffectRow extends StoredEffect {
  readonly seq: number;
}

/** A VM as of change `seq`: its record and its pinned ranges (PinMap.toArray). */
export interface VmSnapshot {
  readonly vmId: string;
  readonly seq: number;
  readonly record: string;
  readonly pins: Float64Array;
}

export interface LoadedState {
  /** The last change stored (0 for none). */
  readonly seq: number;
  readonly snapshots: readonly VmSnapshot[];
  /** Effects after each VM's snapshot, and quirk lists, in change order. */
  readonly effects: readonly EffectRow[];
}

/** A change of the audit trail: the command as decided, who made it and the rules it named. */
export interface AuditEntry {
  readonly seq: number;
  readonly at: number;
  readonly command: Command;
  readonly actor?: string;
  readonly rules?: readonly string[];
}

/** A command of a store written by 0.1.0 (a log of commands to replay), to migrate. */
export type LegacyCommand = AuditEntry;

export interface AuditQuery {
  readonly vmId?: string;
  /** Only changes at or after this time (ms since the epoch). */
  readonly since?: number;
  /** Only changes after this sequence number (paging). */
  readonly afterSeq?: number;
  readonly limit: number;
}

/** Share of the budget a size prune brings the audit trail down to (room for the next records). */
export const AUDIT_PRUNE_TO = 0.9;

/** What a size check of the audit trail found and did. */
export interface AuditSize {
  /**
   * Bytes the audit trail holds, approximately: its records' column bytes and a fixed overhead
   * per record (row and index entries), as the store would count them on disk.
   */
  readonly auditBytes: number;
  /** Bytes the store holds on disk (SQLite: its db and WAL files; PostgreSQL: its schema's relations). */
  readonly storeBytes: number;
  /** Records the check removed for size. */
  readonly removed: number;
  /** The newest `at` among them (0: none removed). */
  readonly removedThrough: number;
}

/** A flush job's state record: its JSON (without ranges), replaced as it moves on. */
export interface StoredJob {
  readonly id: string;
  readonly vmId: string;
  /** JSON of the job without its ranges. */
  readonly body: string;
  /** [hpa page, pages] pairs (records of 0.1.0 carry them; newer ones keep them in parts). */
  readonly pairs: Float64Array | null;
}

/** A flush job as loaded back: its last state record, if any, and every range it was given. */
export interface LoadedJob {
  readonly id: string;
  readonly vmId: string;
  /** The last state record (null: the job was never dispatched before the stop). */
  readonly body: string | null;
  /** The header of its first part (null for a job of 0.1.0). */
  readonly header: string | null;
  /** Parts (decisions) it carries. */
  readonly parts: number;
  /** Its [hpa page, pages] pairs: every part's, in order. */
  readonly pairs: Float64Array | null;
}

export interface StateStore {
  readonly kind: 'memory' | 'sqlite' | 'postgres';
  /** The decided state: snapshots and the effects after them. */
  load(): Promise<LoadedState>;
  /**
   * A store written by 0.1.0 holds commands to replay instead of decided state: they are given
   * here once, to be replayed by the core and stored as snapshots (`migrated`). Null otherwise.
   */
  legacy(): Promise<LegacyCommand[] | null>;
  /**
   * The legacy commands are now stored as snapshots up to `seq`, with the quirk list they left
   * in force: they stay as the audit trail only.
   */
  migrated(snapshots: readonly VmSnapshot[], quirks: string, seq: number): Promise<void>;
  /** Appends durably: resolves only once the changes survive a crash. */
  append(changes: readonly StoredChange[]): Promise<void>;
  /**
   * Keeps a VM's snapshot and drops its effects up to `snapshot.seq`. Ordered after every append
   * made before it: it is kept only if they are.
   */
  snapshot(snapshot: VmSnapshot): Promise<void>;
  /**
   * A real write (a transaction that commits), ordered after every write before it: how the
   * service learns that the store takes changes again after a failure, rather than by a read.
   */
  probe(): Promise<void>;
  /**
   * After a failed write the store refuses every later one (a commit fence: nothing decided on
   * top of a refused change is kept) until the service lifts it, just before reloading its
   * state. Stores whose transactions cannot outlive a failure (PostgreSQL's) have none.
   */
  unfence?(): Promise<void>;
  /** Calls `listener` whenever a write fails and the fence goes up (stores with a fence). */
  onFence?(listener: (err: Error) => void): void;
  /**
   * Calls `listener` after each commit with its duration in seconds, from the writes handed to
   * the store until durable (metrics): once per transaction, not per change. Stores that keep
   * nothing durable have none.
   */
  onCommit?(listener: (seconds: number) => void): void;
  /** Inserts or replaces a flush job's record. */
  saveJob(job: StoredJob): Promise<void>;
  /** Every stored flush job, oldest first. */
  loadJobs(): Promise<LoadedJob[]>;
  /** Forgets flush jobs (records and ranges): they are past their retention. */
  forgetJobs(ids: readonly string[]): Promise<void>;
  /** Forgets the audit trail's changes made before `at` (ms since the epoch); says how many. */
  trimAudit(at: number): Promise<number>;
  /**
   * Keeps the audit trail within `budgetBytes` (approximate: see AuditSize): when it holds more,
   * its oldest records are removed until it holds at most AUDIT_PRUNE_TO of the budget. Cheap
   * when under budget; never part of a change's transaction, so its failure fails no change.
   * Stores without one (memory) are bounded by age only.
   */
  pruneAudit?(budgetBytes: number): Promise<AuditSize>;
  /** Stored changes matching the query, oldest first: the audit trail. */
  audit(query: AuditQuery): Promise<AuditEntry[]>;
  /**
   * The value kept under `key`, storing `initial` first when there is none: the first writer
   * wins, later starts read what it kept (the quirk list the log starts from).
   */
  meta(key: string, initial: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * Where a replica stands: per VM id (and QUIRKS_EFFECT), the sequence number of the last change
 * to it that the replica applied (absent: none).
 */
export type Known = ReadonlyMap<string, number>;

/** A cursor in the events replicas publish to each other (opaque to the service). */
export interface EventCursor {
  readonly xid: number;
  readonly n: number;
}

/**
 * What a replica missed of some VMs: the snapshot to start a VM from when its effects after what
 * the replica knew were dropped for it, the effects after that (in change order), and the parts
 * of flush jobs those changes promised (including changes a snapshot covers).
 */
export interface Missed {
  readonly snapshots: readonly VmSnapshot[];
  readonly effects: readonly EffectRow[];
  readonly jobs: readonly StoredJobPart[];
}

/** The VMs a shared transaction changes, or every VM and the quirk list (`'all'`). */
export type WriteScope = readonly string[] | 'all';

/**
 * A store several replicas share, serialised per VM. A transaction holds a lock per VM it
 * changes (changes to different VMs proceed in parallel, on any replica), and one on the whole
 * store only to change the quirk list. `decide` first receives what the replica missed of those
 * VMs and of the quirk list (so it applies them before deciding: no lost updates) and the
 * sequence numbers the transaction may give its changes (increasing, unique across replicas,
 * with gaps), then returns the changes to store together (group commit; possibly none), or
 * throws to store nothing.
 */
export interface SharedStateStore extends StateStore {
  write(scope: WriteScope, known: Known, seqs: number, decide: (missed: Missed, seqs: readonly number[]) => readonly StoredChange[]): Promise<void>;
  /** The VM whose change promised flush job `id` (null: no change stored it, or it was forgotten). */
  jobVm(id: string): Promise<string | null>;
  /** The state records of flush jobs `ids` that are stored (their JSON, without ranges). */
  jobRecords(ids: readonly string[]): Promise<{ readonly id: string; readonly body: string }[]>;
  /** What the replica missed of `vmIds` and the quirk list (null: of every VM). */
  since(vmIds: readonly string[] | null, known: Known): Promise<Missed>;
  /**
   * Publishes an event to the other replicas (a flush job planned or acknowledged); a change's
   * events are published with it (`StoredChange.events`).
   */
  publish(event: StoredEvent): Promise<void>;
  /**
   * Events other replicas published after `after` (null: from now on), in order, with the
   * cursor to ask from next; `gone` when some after `after` were already dropped, `more` when
   * there are more to read now, `held` when others' events are stored but cannot be read yet
   * (behind a transaction still running: ask again shortly). With `vmIds`, only those VMs'
   * events (a replica reads the events of the VMs it serves; the cursor passes the others').
   */
  eventsAfter(
    after: EventCursor | null,
    vmIds?: readonly string[] | null
  ): Promise<{ readonly events: readonly PublishedEvent[]; readonly next: EventCursor; readonly gone: boolean; readonly more: boolean; readonly held: boolean }>;
  /**
   * Calls `onChange` whenever another replica stored a change or published an event, with the
   * VMs it changed, or null for every VM (the quirk list changed, too many to tell, a replica of
   * an earlier version, and once after each reconnection, in case one was missed); returns how
   * to stop.
   */
  watch(onChange: (vmIds: readonly string[] | null) => void): () => void;
}

export function isShared(store: StateStore): store is SharedStateStore {
  return 'write' in store && 'since' in store && 'watch' in store;
}

/** The quirk list effect's `vmId`: not a VM id (those start with a letter or digit). */
export const QUIRKS_EFFECT = '';
