/**
 * How a change is kept: one interface, two implementations (as undici's client hands protocol
 * work to `connectH1`/`connectH2`). The embedded commit decides at once and keeps the change in
 * this process's store (SQLite, or memory only); the replicated commit decides inside a
 * PostgreSQL transaction shared with other replicas, after applying what they stored.
 */
import type { VmId } from '../../domain/index.js';
import type { VmmReport } from '../../jobs/flush-jobs.js';
import type { Decided, PendingChange } from '../decide.js';

export interface Commit {
  /** Decides the change in the order the store keeps it, and resolves once it is kept. */
  commit(change: PendingChange): Promise<Decided>;
  /**
   * Read-your-writes: before answering about VM `vmId`, apply what other replicas stored of it,
   * unless this process follows it and a change of it at least as recent as `minRevision` was
   * applied here. The VM counts as asked about (served).
   */
  catchUp(minRevision: number, vmId: VmId): Promise<void>;
  /**
   * Whether an answer about VM `vmId` may come from memory now (this process holds the VM as
   * the store does, as of the last change it heard of). When it may not, the VM is being caught
   * up on: ask `catchUp` first. Either way the VM counts as asked about (served).
   */
  serves(vmId: VmId): boolean;
  /** Before an answer about every VM (a listing): apply what other replicas stored of all of them. */
  catchUpAll(): Promise<void>;
  /** Before acknowledging job `id`, which this process does not know: learn of it. */
  learnJob(id: string): Promise<void>;
  /** An acknowledgement was kept: the other replicas hear of it. */
  acknowledged(vmId: VmId, jobId: string, report: VmmReport): Promise<void>;
  /** After a reload (a recovery): take up the flush jobs promised elsewhere meanwhile. */
  reloaded(): Promise<void>;
  /** Follows what the other replicas change, every `intervalMs` and on notification. */
  follow(intervalMs: number): void;
  stop(): void;
}
