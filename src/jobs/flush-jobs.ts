/**
 * Flush jobs: every answer that demands a flush gets a flush of its own, a job whose ranges are
 * exactly what that answer lists and never change afterwards. Jobs of one VM, cause and method
 * arriving within a short window are planned together (batch-window.ts), each keeping its own
 * receipt. The flush itself is the VMM's: a planned job is `pending` until the VMM that got the
 * answer acknowledges it (job-acks.ts), and until then it is outstanding: answers that are safe
 * only once it is done name it. Where acks are not required (`acks: 'answered'`, the weaker
 * guarantee) a planned job is `done` at once.
 *
 * Invariants:
 * - A job accepted (an id handed out) is never dropped: it ends `done`, `failed` or
 *   `acknowledged`, and `drain()` waits for every one of them.
 * - Overload is refused before a decision is made (`assertCapacity`), never by dropping work.
 * - Each submitted flush is exactly one job; a batch only plans jobs together.
 */
import { pairsOf, type Arch, type FlushCause, type FlushMethod, type HostRange, type VmId } from '../domain/index.js';
import { BatchWindow, CHUNK_PAGES } from './batch-window.js';
import { CoveredJobs } from './covered-jobs.js';
import { OverloadedError } from './errors.js';
import { isAcknowledged, isPlanned, pagesOf, type FlushAcks, type FlushJob, type JobHeader, type ResumableJob, type VmmReport } from './flush-job.js';
import type { FlushJobsOptions } from './flush-jobs-options.js';
import { InFlight } from './in-flight.js';
import { JobAcks } from './job-acks.js';
import type { JobPool } from './job-pool.js';
import { JobRegistry } from './job-registry.js';
import { JobRetention } from './job-retention.js';
import { ResumedJobs } from './resumed-jobs.js';

export { CHUNK_PAGES, usesWbinvd } from './batch-window.js';
export { FlushAckTimeoutError, OverloadedError } from './errors.js';
export { isPlanned, isSettled, jobFromHeader, plannedThreshold, type BatchInfo, type FlushAcks, type FlushJob, type FlushJobState, type JobHeader, type ResumableJob, type VmmReport } from './flush-job.js';
export type { FlushJobsOptions } from './flush-jobs-options.js';

export class FlushJobs {
  /** Whether the VMM acknowledges flushes promised now, or they count as done once answered. */
  readonly acks: FlushAcks;
  readonly #pool: JobPool;
  readonly #maxPending: number;
  readonly #maxUnacknowledged: number;
  readonly #onState: (job: FlushJob) => void;
  readonly #inflight = new InFlight();
  readonly #registry: JobRegistry;
  readonly #retention: JobRetention;
  readonly #window: BatchWindow;
  readonly #acknowledgements: JobAcks;
  readonly #covered: CoveredJobs;
  readonly #resumed: ResumedJobs;
  #closed = false;

  constructor(options: FlushJobsOptions) {
    const clock = options.clock ?? Date.now;
    const onState = options.onState ?? (() => undefined);
    const persist = options.persist ?? (() => Promise.resolve());
    const inflight = this.#inflight;
    this.acks = options.acks ?? 'required';
    this.#pool = options.pool;
    this.#maxPending = options.maxPending ?? 10_000;
    this.#maxUnacknowledged = options.maxUnacknowledged ?? 10_000;
    this.#onState = onState;
    const registry = new JobRegistry(this.acks);
    const retention = new JobRetention({
      registry,
      history: options.history ?? 1_000,
      maxAgeMs: options.maxAgeMs ?? 3_600_000,
      clock,
      onForget: options.onForget ?? (() => undefined),
      // Acknowledgements not kept yet hold their jobs (the acks are made below, before any job).
      held: (id) => this.#acknowledgements.isUnsaved(id)
    });
    const window = new BatchWindow({
      pool: options.pool,
      windowMs: options.windowMs ?? 2,
      maxBatchPages: options.maxBatchPages ?? 16 * 262_144, // 16 GiB
      chunkPages: options.chunkPages ?? CHUNK_PAGES,
      clock,
      acks: this.acks,
      inflight,
      onState,
      withdrawn: (job) => registry.unregister(job),
      planned: (job) => this.#planned(job)
    });
    const acks = new JobAcks({ registry, retention, clock, onState, persist, seal: (id) => window.sealOf(id), planned: (id) => this.wait(id) });
    this.#registry = registry;
    this.#retention = retention;
    this.#window = window;
    this.#acknowledgements = acks;
    this.#covered = new CoveredJobs({ registry, retention, acks, inflight, onState, persist });
    this.#resumed = new ResumedJobs({ registry, retention, window, acks, mode: this.acks, register: (job) => this.#register(job) });
  }

  /**
   * After a restart: finished jobs are listed again, with their ranges; unfinished ones are
   * planned again, each on its own. `remote`: the records are another replica's to keep.
   */
  resume(stored: readonly ResumableJob[], remote = false): number {
    return this.#resumed.resume(stored, remote);
  }

  /** A job another replica promised, with a change applied here: planned here too (see ResumedJobs). */
  adopt(id: string, header: JobHeader, pairs: Float64Array): void {
    this.#resumed.adopt(id, header, pairs);
  }

  /** What this replica holds of a job another replica keeps, as that replica's record says now. */
  refresh(stored: FlushJob): void {
    this.#resumed.refresh(stored);
  }

  /** Whether job `id` is another replica's (adopted with a change applied here). */
  isRemote(id: string): boolean {
    return this.#registry.isRemote(id);
  }

  /** Jobs other replicas promised that are still outstanding here. */
  remoteOutstanding(): string[] {
    return this.#registry.remoteOutstanding();
  }

  /** Jobs queued or running. */
  get pending(): number {
    return this.#registry.pending;
  }

  /** Jobs planned and answered here, waiting for their VMM's acknowledgement (`pending`); other replicas' are theirs to count. */
  get awaitingAck(): number {
    return this.#registry.awaitingAck;
  }

  get pool(): JobPool {
    return this.#pool;
  }

  /**
   * Refuses new work (before any decision is made) when the queue is full or closing. A change
   * that adds no obligation (`adds` false: an unpin, a teardown, a removal, a bit clear) is never
   * refused for the VM's unacknowledged jobs: a VMM must always be able to release and shut down.
   */
  assertCapacity(vmId?: VmId, adds = true): void {
    if (this.#closed || this.#registry.pending >= this.#maxPending) throw new OverloadedError(1);
    if (adds && vmId !== undefined && this.#registry.unacknowledged(vmId) >= this.#maxUnacknowledged) {
      throw new OverloadedError(1, `VM ${vmId} has ${this.#maxUnacknowledged} flush jobs its VMM has not acknowledged (POST /v1/flush-jobs/{jobId}/ack); changes to it that add flushes are refused until it catches up`);
    }
  }

  /** An answer's flush as a job of its own, planned in the open batch of its VM, cause and method. Returns the job id. */
  submit(vmId: VmId, arch: Arch, policy: { flushMethod: FlushMethod; wbinvdAbovePages: number | null }, cause: FlushCause, ranges: readonly HostRange[]): string {
    const pairs = pairsOf(ranges);
    const pages = pagesOf(pairs);
    const id = this.reserve(vmId, arch, policy, cause, pages).id;
    this.fill(id, pairs, pages);
    return id;
  }

  /**
   * Promises an answer's flush of `pages` a job of its own, before the change is durable: the
   * answer can then name a job id that is stored with the change (see BatchWindow.reserve).
   */
  reserve(vmId: VmId, arch: Arch, policy: { flushMethod: FlushMethod; wbinvdAbovePages: number | null }, cause: FlushCause, pages: number): { id: string; header: JobHeader } {
    const { job, wbinvdAbovePages } = this.#window.reserve(vmId, arch, policy, cause, pages);
    this.#register(job);
    return { id: job.id, header: { vmId, arch, method: job.method, cause, wbinvdAbovePages, createdAt: job.createdAt, acks: this.acks } };
  }

  /**
   * The flush promised to job `id` (reserve), now that its change is durable: (hpa, pages) pairs,
   * and their pages when the caller knows them. The job holds on to `pairs`: they are not changed
   * afterwards.
   */
  fill(id: string, pairs: Float64Array, pages = pagesOf(pairs)): void {
    this.#window.fill(id, pairs, pages);
  }

  /** Withdraws a flush promised to job `id`: its change was not kept, and nobody is told of the job. */
  cancel(id: string): void {
    this.#window.cancel(id);
  }

  /** A job, or one acknowledged and forgotten since (undefined: never known here). */
  get(id: string): FlushJob | undefined {
    return this.#registry.get(id) ?? this.#retention.tombstone(id);
  }

  /** A VM's jobs, oldest first, starting after job `afterId` (exclusive). */
  list(vmId: VmId, afterId: string | undefined, limit: number): FlushJob[] {
    return this.#registry.list(vmId, afterId, limit);
  }

  /** Jobs of a VM not finished yet, oldest first. */
  open(vmId: VmId): FlushJob[] {
    return this.#registry.open(vmId);
  }

  /** Jobs of a VM whose flush the service cannot count as done (not acknowledged yet), of `cause` if given. */
  outstanding(vmId: VmId, cause?: FlushCause): FlushJob[] {
    return this.#registry.outstanding(vmId, cause);
  }

  /**
   * The ranges of every outstanding job of the VM, as (hpa, pages) pairs, and their ids: what a
   * teardown of the VM covers with its own flush (`settle` once it is kept).
   */
  outstandingPairs(vmId: VmId): { ids: string[]; pairs: Float64Array } {
    const jobs = this.outstanding(vmId);
    const parts = jobs.map((job) => job.ranges ?? this.#window.pairsOf(job.id) ?? new Float64Array(0));
    const pairs = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      pairs.set(p, at);
      at += p.length;
    }
    return { ids: jobs.map((job) => job.id), pairs };
  }

  /** Jobs whose ranges a later answer's own flush covers (`by`, a teardown of their VM): settled now (see CoveredJobs). */
  settle(ids: readonly string[], by: string | null, vmId?: VmId): void {
    this.#covered.settle(ids, by, vmId);
  }

  /** The VMM reports the job's flush performed (see JobAcks). Undefined for an unknown job. */
  acknowledge(id: string, report: VmmReport): { job: FlushJob; saved: Promise<void> } | undefined {
    return this.#acknowledgements.acknowledge(id, report);
  }

  /** Resolves once job `id` is acknowledged (or settled otherwise, or forgotten). */
  acked(id: string): Promise<void> {
    return this.#acknowledgements.acked(id);
  }

  /** Resolves once the job is planned (pending, acknowledged, done or failed). */
  wait(id: string): Promise<FlushJob> {
    const job = this.get(id);
    if (job === undefined) return Promise.reject(new Error(`unknown flush job ${id}`));
    if (isPlanned(job)) return Promise.resolve(job);
    return this.#registry.whenPlanned(id);
  }

  /** Dispatches every open batch now and waits for every accepted job to finish. */
  async drain(): Promise<void> {
    this.#window.sealAll();
    await this.#inflight.settled();
  }

  /** Stops accepting, finishes what was accepted, closes the pool. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#retention.stop();
    await this.drain();
    await this.#pool.close();
  }

  /** A job promised now, or taken up unplanned from the store: registered, reported, and old ones forgotten. */
  #register(job: FlushJob): void {
    this.#registry.register(job);
    this.#onState(job);
    this.#retention.forgetOld();
  }

  /** A job of a batch just planned (or whose planning failed); what it returns is kept before the batch counts as finished. */
  #planned(job: FlushJob): Promise<void> | undefined {
    this.#registry.landed(job);
    this.#onState(job);
    this.#registry.release(job);
    if (job.state !== 'pending') return undefined;
    // Covered by a teardown, or acknowledged, while it was being planned.
    if (job.coveredBy !== undefined) {
      this.#covered.finish(job);
      return undefined;
    }
    return isAcknowledged(job) ? this.#acknowledgements.acknowledgedOnPlan(job) : undefined;
  }
}
