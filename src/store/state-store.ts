/**
 * Where acknowledged changes live. The state is rebuilt at start by replaying every stored
 * command through the decision core, with the time each was applied at, so a restart loses
 * nothing that was acknowledged. Every implementation passes test/store/state-store.contract.ts.
 */
import type { Command } from '../domain/index.js';

export interface StoredCommand {
  /** Position in the log, from 1, without gaps. */
  readonly seq: number;
  /** The time the command was applied at (ms since the epoch); replays use it. */
  readonly at: number;
  readonly command: Command;
  /** Who made the change (a token id, or "anonymous" without tokens), for the audit trail. */
  readonly actor?: string;
  /** Rule ids the decision named, for the audit trail. */
  readonly rules?: readonly string[];
}

export interface AuditQuery {
  readonly vmId?: string;
  /** Only changes at or after this time (ms since the epoch). */
  readonly since?: number;
  /** Only changes after this sequence number (paging). */
  readonly afterSeq?: number;
  readonly limit: number;
}

/** A flush job as stored: its JSON, and its ranges while it is unfinished (to resume it). */
export interface StoredJob {
  readonly id: string;
  readonly vmId: string;
  /** JSON of the job without its ranges. */
  readonly body: string;
  /** [hpa page, pages] pairs, kept while the job is unfinished. */
  readonly pairs: Float64Array | null;
}

export interface StateStore {
  readonly kind: 'memory' | 'sqlite' | 'postgres';
  /** Every stored command, in order. */
  load(): Promise<StoredCommand[]>;
  /** Appends durably: resolves only once the commands survive a crash. */
  append(commands: readonly StoredCommand[]): Promise<void>;
  /** Inserts or replaces a flush job's record. */
  saveJob(job: StoredJob): Promise<void>;
  /** Every stored flush job, oldest first. */
  loadJobs(): Promise<StoredJob[]>;
  /** Stored changes matching the query, oldest first: the audit trail. */
  audit(query: AuditQuery): Promise<StoredCommand[]>;
  /**
   * The value kept under `key`, storing `initial` first when there is none: the first writer
   * wins, later starts read what it kept (the quirk list the log starts from).
   */
  meta(key: string, initial: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * A store several replicas share. Every change is one transaction under a store-wide lock:
 * `decide` first receives the commands other replicas stored after `afterSeq` (so the replica
 * applies them before deciding: no lost updates), then returns the command to store, or throws
 * to store nothing.
 */
export interface SharedStateStore extends StateStore {
  write(afterSeq: number, decide: (missed: readonly StoredCommand[]) => StoredCommand): Promise<void>;
  /** Commands stored after `afterSeq`, in order. */
  since(afterSeq: number): Promise<StoredCommand[]>;
}

export function isShared(store: StateStore): store is SharedStateStore {
  return 'write' in store && 'since' in store;
}

/** Raised when the store cannot take or give changes; the service then fails closed. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  readonly code = 'STORE_UNAVAILABLE';
}
