/**
 * Flush jobs: every decision that requires a flush joins a job. Flushes for one VM and cause
 * arriving within a short window (default 2 ms) join the same job, up to a size cap; when the
 * window closes the job is planned and priced and keeps its receipt. The flush itself is the
 * VMM's: a planned job is `pending` until that VM's VMM acknowledges it (`acknowledge`), and
 * until then it is outstanding: answers that are safe only once it is done name it. Where acks
 * are not required (`acks: 'answered'`, the weaker guarantee) a planned job is `done` at once.
 *
 * Invariants:
 * - A job accepted (an id handed out) is never dropped: it ends `done` or `failed`, and `drain()`
 *   waits for every one of them.
 * - Overload is refused before a decision is made (`assertCapacity`), never by dropping work.
 * - Each submitted flush's ranges belong to exactly one job.
 */
import { randomUUID } from 'node:crypto';
import { coalescePairs, pairsOf, type Arch, type FlushCause, type FlushMethod, type FlushReceipt, type HostRange, type VmId } from '../domain/index.js';
import type { JobPool } from './job-pool.js';

export type FlushJobState = 'queued' | 'running' | 'pending' | 'acknowledged' | 'done' | 'failed';

/** What the VMM reported with its acknowledgement (both optional). */
export interface VmmReport {
  /** Pages it flushed. */
  readonly flushedPages?: number;
  /** How long the flush took, in nanoseconds. */
  readonly durationNs?: number;
}

/** Whether flushes must be acknowledged by the VMM, or count as done once answered (weaker). */
export type FlushAcks = 'required' | 'answered';

export interface FlushJob {
  readonly id: string;
  readonly vmId: VmId;
  readonly arch: Arch;
  readonly method: FlushMethod;
  readonly cause: FlushCause;
  state: FlushJobState;
  /** Decisions whose flushes this job carries. */
  decisions: number;
  /** Pages requested (before coalescing). */
  requestedPages: number;
  readonly createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  receipt: FlushReceipt | null;
  /** Coalesced [hpa page, pages] pairs once planned; forgotten with the job. */
  ranges: Float64Array | null;
  error: string | null;
  /** When the VMM acknowledged the flush (ms since the epoch), and what it reported. */
  acknowledgedAt?: number | null;
  report?: VmmReport | null;
}

/** Planned: its ranges and receipt are known (whether or not the VMM has acknowledged it). */
export function isPlanned(job: FlushJob): boolean {
  return job.state !== 'queued' && job.state !== 'running';
}

/** A planned job's WBINVD threshold, as its receipt shows it: a WBINVD job is planned with 0, any other with none. */
export function plannedThreshold(job: FlushJob): number | null {
  return job.receipt?.method === 'wbinvd' ? 0 : null;
}

/** The VMM has acknowledged the job's flush (records of earlier versions have no such field). */
function isAcknowledged(job: FlushJob): boolean {
  return (job.acknowledgedAt ?? null) !== null;
}

/** Finished for good: nothing more is expected of it (it may be forgotten). */
export function isSettled(job: FlushJob): boolean {
  return job.state === 'done' || job.state === 'failed' || job.state === 'acknowledged';
}

export interface FlushJobsOptions {
  readonly pool: JobPool;
  /** How long a job stays open for more flushes of the same VM and cause. */
  readonly windowMs?: number;
  /** A job stops taking flushes beyond this many pages (it is dispatched at once). */
  readonly maxBatchPages?: number;
  /** Jobs queued or running beyond which new decisions are refused (503). */
  readonly maxPending?: number;
  /**
   * Jobs of one VM its VMM has not acknowledged beyond which changes to that VM are refused
   * (503): a VMM that never acknowledges cannot grow the service's memory and store for ever.
   */
  readonly maxUnacknowledged?: number;
  /** Finished jobs kept for GET, oldest forgotten first. */
  readonly history?: number;
  /** Finished jobs older than this (ms since they finished) are forgotten too. */
  readonly maxAgeMs?: number;
  /** Called with the ids of forgotten jobs, so their records go too. */
  readonly onForget?: (ids: readonly string[]) => void;
  readonly chunkPages?: number;
  readonly clock?: () => number;
  /** Called on every state change, for metrics. */
  readonly onState?: (job: FlushJob) => void;
  /** Whether the VMM acknowledges flushes (default) or they count as done once answered. */
  readonly acks?: FlushAcks;
  /**
   * Keeps a job's record when it finishes (its ranges are kept with the changes it carries). A
   * failure to keep a record does not fail the job.
   */
  readonly persist?: (job: FlushJob, pairs: Float64Array | null, wbinvdAbovePages: number | null) => Promise<void>;
}

/** A stored job, as `resume` takes it back. */
export interface ResumableJob {
  readonly job: FlushJob;
  readonly pairs: Float64Array | null;
  readonly wbinvdAbovePages: number | null;
}

/** A change that waits for earlier flushes (?wait=true) did not see them acknowledged in time. */
export class FlushAckTimeoutError extends Error {
  override readonly name = 'FlushAckTimeoutError';
  readonly code = 'FLUSH_ACK_TIMEOUT';
  constructor(
    readonly jobIds: readonly string[],
    readonly timeoutMs: number
  ) {
    super(`flush job(s) ${jobIds.join(', ')} were not acknowledged within ${timeoutMs} ms; nothing was changed`);
  }
}

export class OverloadedError extends Error {
  override readonly name = 'OverloadedError';
  readonly code = 'OVERLOADED';
  constructor(
    readonly retryAfterSeconds: number,
    message = 'the flush queue is full; retry shortly'
  ) {
    super(message);
  }
}

interface OpenBatch {
  readonly key: string;
  readonly job: FlushJob;
  pairs: Float64Array;
  length: number;
  readonly wbinvdAbovePages: number | null;
  timer: NodeJS.Timeout | null;
  /** Flushes promised to this job (reserve) whose ranges have not come yet (fill or cancel). */
  reserved: number;
  /** Its window closed (or it is full) while flushes were still promised: dispatch once they come. */
  due: boolean;
}

/** What a job is, for its durable record: enough to rebuild it from its ranges after a restart. */
export interface JobHeader {
  readonly vmId: VmId;
  readonly arch: Arch;
  readonly method: FlushMethod;
  readonly cause: FlushCause;
  readonly wbinvdAbovePages: number | null;
  readonly createdAt: number;
}

/** A job rebuilt from its header and its ranges (`parts` decisions), to be planned (again). */
export function jobFromHeader(id: string, header: JobHeader, parts: number, pairs: Float64Array): ResumableJob {
  const pages = pagesOf(pairs);
  const job: FlushJob = {
    id,
    vmId: header.vmId,
    arch: header.arch,
    method: header.method,
    cause: header.cause,
    state: 'queued',
    decisions: parts,
    requestedPages: pages,
    createdAt: header.createdAt,
    startedAt: null,
    finishedAt: null,
    receipt: null,
    ranges: null,
    error: null
  };
  return { job, pairs, wbinvdAbovePages: header.wbinvdAbovePages };
}

interface Settled {
  readonly promise: Promise<FlushJob>;
  resolve(job: FlushJob): void;
}

export class FlushJobs {
  readonly #pool: JobPool;
  readonly #windowMs: number;
  readonly #maxBatchPages: number;
  readonly #maxPending: number;
  readonly #maxUnacknowledged: number;
  readonly #history: number;
  readonly #chunkPages: number;
  readonly #clock: () => number;
  readonly #onState: (job: FlushJob) => void;
  readonly #persist: NonNullable<FlushJobsOptions['persist']>;
  readonly #jobs = new Map<string, FlushJob>();
  readonly #byVm = new Map<VmId, string[]>();
  /** Batches still taking flushes, by VM, cause and method. */
  readonly #open = new Map<string, OpenBatch>();
  /** Every batch not dispatched yet (open, or sealed while flushes are promised), by job id. */
  readonly #batches = new Map<string, OpenBatch>();
  readonly #maxAgeMs: number;
  readonly #onForget: (ids: readonly string[]) => void;
  #sweeper: NodeJS.Timeout | null = null;
  readonly #settled = new Map<string, Settled>();
  /** Waiters for acknowledgements, by job id. */
  readonly #ackWaiters = new Map<string, Settled>();
  readonly acks: FlushAcks;
  readonly #inflight = new Set<Promise<unknown>>();
  /** Jobs another replica promised (adopt): their records are that replica's to keep. */
  readonly #remote = new Set<string>();
  #pending = 0;
  #closed = false;

  constructor(options: FlushJobsOptions) {
    this.#pool = options.pool;
    this.#windowMs = options.windowMs ?? 2;
    this.#maxBatchPages = options.maxBatchPages ?? 16 * 262_144; // 16 GiB
    this.#maxPending = options.maxPending ?? 10_000;
    this.#maxUnacknowledged = options.maxUnacknowledged ?? 10_000;
    this.#history = options.history ?? 1_000;
    this.#chunkPages = options.chunkPages ?? CHUNK_PAGES;
    this.#clock = options.clock ?? Date.now;
    this.#onState = options.onState ?? (() => undefined);
    this.#persist = options.persist ?? (() => Promise.resolve());
    this.#maxAgeMs = options.maxAgeMs ?? 3_600_000;
    this.#onForget = options.onForget ?? (() => undefined);
    this.acks = options.acks ?? 'required';
    // Old jobs go even when no new ones come.
    this.#sweeper = setInterval(() => this.#forgetOld(), 60_000).unref();
  }

  /**
   * After a restart: finished jobs are listed again, with their ranges; unfinished ones (their
   * ranges were kept with the changes they belong to) are planned again.
   */
  resume(stored: readonly ResumableJob[], remote = false): number {
    let resumed = 0;
    for (const { job, pairs, wbinvdAbovePages } of stored) {
      if (this.#jobs.has(job.id)) continue;
      if (remote) this.#remote.add(job.id);
      // Planned jobs come back as they were, pending ones still waiting for their VMM.
      if (isPlanned(job)) {
        if (job.ranges === null && pairs !== null) job.ranges = coalescePairs(pairs);
        if (job.state === 'pending') this.#countPending(job, 1);
        this.#jobs.set(job.id, job);
        const list = this.#byVm.get(job.vmId) ?? [];
        list.push(job.id);
        this.#byVm.set(job.vmId, list);
        continue;
      }
      job.state = 'queued';
      this.#register(job);
      const batch: OpenBatch = { key: `resume\u0000${job.id}`, job, pairs: pairs ?? new Float64Array(0), length: pairs?.length ?? 0, wbinvdAbovePages, timer: null, reserved: 0, due: true };
      this.#batches.set(job.id, batch);
      this.#dispatch(batch);
      resumed++;
    }
    this.#forgetOld();
    return resumed;
  }

  /**
   * A part of a job another replica promised, stored with a change this replica has now applied:
   * the job is planned here too, so that answers here list it in `flush.after` and its VMM may
   * acknowledge it here. Its state record is the other replica's to keep (an acknowledgement
   * made here is kept by whoever receives it).
   */
  adopt(id: string, header: JobHeader, pairs: Float64Array): void {
    const known = this.#jobs.get(id);
    if (known === undefined) {
      this.resume([jobFromHeader(id, header, 1, pairs)], true);
      return;
    }
    if (!this.#remote.has(id)) return;
    // Another decision joined it there: its ranges join it here.
    const pages = pagesOf(pairs);
    known.decisions++;
    known.requestedPages += pages;
    const batch = this.#batches.get(id);
    if (batch !== undefined) {
      append(batch, pairs);
      return;
    }
    const merged = new Float64Array((known.ranges?.length ?? 0) + pairs.length);
    merged.set(known.ranges ?? new Float64Array(0));
    merged.set(pairs, known.ranges?.length ?? 0);
    known.ranges = coalescePairs(merged);
    // As on the replica that promised it: an acknowledgement did not cover a flush answered after it.
    if (isAcknowledged(known)) {
      known.acknowledgedAt = null;
      known.report = null;
      if (known.state === 'acknowledged') {
        known.state = 'pending';
        this.#countPending(known, 1);
      }
    }
  }

  /** Jobs queued or running. */
  get pending(): number {
    return this.#pending;
  }

  get pool(): JobPool {
    return this.#pool;
  }

  /** Refuses new work (before any decision is made) when the queue is full or closing. */
  assertCapacity(vmId?: VmId): void {
    if (this.#closed || this.#pending >= this.#maxPending) throw new OverloadedError(1);
    if (vmId !== undefined && this.acks === 'required' && this.#unacknowledged(vmId) >= this.#maxUnacknowledged) {
      throw new OverloadedError(1, `VM ${vmId} has ${this.#maxUnacknowledged} flush jobs its VMM has not acknowledged (POST /v1/flush-jobs/{jobId}/ack); changes to it are refused until it catches up`);
    }
  }

  /** Planned jobs of a VM still waiting for their acknowledgement. */
  #unacknowledged(vmId: VmId): number {
    return this.#pendingByVm.get(vmId) ?? 0;
  }

  readonly #pendingByVm = new Map<VmId, number>();

  /** Counts a job entering (+1) or leaving (-1) the `pending` state. */
  #countPending(job: FlushJob, delta: 1 | -1): void {
    const n = (this.#pendingByVm.get(job.vmId) ?? 0) + delta;
    if (n <= 0) this.#pendingByVm.delete(job.vmId);
    else this.#pendingByVm.set(job.vmId, n);
  }

  /** Adds a decision's flush to the open job of its VM, cause and method, or opens one. Returns the job id. */
  submit(vmId: VmId, arch: Arch, policy: { flushMethod: FlushMethod; wbinvdAbovePages: number | null }, cause: FlushCause, ranges: readonly HostRange[]): string {
    const pairs = pairsOf(ranges);
    const pages = pagesOf(pairs);
    const id = this.reserve(vmId, arch, policy, cause, pages).id;
    this.fill(id, pairs, pages);
    return id;
  }

  /**
   * Promises a decision's flush of `pages` to the open job of its VM, cause and method (opening
   * one), before the change is durable: the answer can then name a job id that is stored with
   * the change. The job is not dispatched until every promised flush has come (`fill`) or been
   * withdrawn (`cancel`, when the change could not be kept). The method is chosen per demanded
   * flush: WBINVD only for a flush above the VM's threshold (such flushes share one job, one
   * WBINVD); smaller ones join a per-line job even when together they would pass it, since
   * WBINVD stalls every CPU.
   */
  reserve(vmId: VmId, arch: Arch, policy: { flushMethod: FlushMethod; wbinvdAbovePages: number | null }, cause: FlushCause, pages: number): { id: string; header: JobHeader } {
    const wbinvd = usesWbinvd(arch, policy, pages);
    const key = `${vmId}\u0000${cause}\u0000${wbinvd ? 'wbinvd' : policy.flushMethod}`;
    let batch = this.#open.get(key);
    if (batch !== undefined && batch.job.requestedPages + pages > this.#maxBatchPages && batch.job.requestedPages > 0) {
      this.#seal(batch);
      batch = undefined;
    }
    if (batch === undefined) {
      const job: FlushJob = {
        id: `fj-${randomUUID()}`,
        vmId,
        arch,
        method: policy.flushMethod,
        cause,
        state: 'queued',
        decisions: 0,
        requestedPages: 0,
        createdAt: this.#clock(),
        startedAt: null,
        finishedAt: null,
        receipt: null,
        ranges: null,
        error: null
      };
      // A WBINVD job is planned with a zero threshold (it is WBINVD whatever it holds); a per-line
      // job with none.
      const opened: OpenBatch = { key, job, pairs: new Float64Array(16), length: 0, wbinvdAbovePages: wbinvd ? 0 : null, timer: null, reserved: 0, due: false };
      this.#open.set(key, opened);
      this.#batches.set(job.id, opened);
      this.#register(job);
      opened.timer = setTimeout(() => this.#seal(opened), this.#windowMs);
      batch = opened;
    }
    batch.reserved++;
    const job = batch.job;
    return { id: job.id, header: { vmId, arch, method: job.method, cause, wbinvdAbovePages: batch.wbinvdAbovePages, createdAt: job.createdAt } };
  }

  /**
   * The flush promised to job `id` (reserve), now that its change is durable: (hpa, pages) pairs,
   * and their pages when the caller knows them. The job may hold on to `pairs`: they are not
   * changed afterwards.
   */
  fill(id: string, pairs: Float64Array, pages = pagesOf(pairs)): void {
    const batch = this.#batches.get(id);
    if (batch === undefined) throw new Error(`flush job ${id} is not open`);
    append(batch, pairs);
    // A flush promised before the VMM acknowledged the job and answered after: that
    // acknowledgement did not cover it, so the job is outstanding again until the VMM, told of
    // it by this answer, acknowledges once more.
    if (isAcknowledged(batch.job)) {
      batch.job.acknowledgedAt = null;
      batch.job.report = null;
    }
    batch.job.decisions++;
    batch.job.requestedPages += pages;
    batch.reserved--;
    if (batch.job.requestedPages >= this.#maxBatchPages) this.#seal(batch);
    else if (batch.due && batch.reserved === 0) this.#dispatch(batch);
  }

  /** Withdraws a flush promised to job `id`: its change was not kept. */
  cancel(id: string): void {
    const batch = this.#batches.get(id);
    if (batch === undefined) return;
    batch.reserved--;
    if (batch.reserved > 0) return;
    if (batch.job.decisions === 0) {
      // Nobody was told about this job: it never existed.
      this.#drop(batch);
    } else if (batch.due) {
      this.#dispatch(batch);
    }
  }

  /** Takes no more flushes; dispatched once every promised one has come. */
  #seal(batch: OpenBatch): void {
    if (this.#open.get(batch.key) === batch) this.#open.delete(batch.key);
    if (batch.timer !== null) clearTimeout(batch.timer);
    batch.timer = null;
    batch.due = true;
    if (batch.reserved > 0) return;
    if (batch.job.decisions === 0) this.#drop(batch);
    else this.#dispatch(batch);
  }

  #drop(batch: OpenBatch): void {
    if (this.#open.get(batch.key) === batch) this.#open.delete(batch.key);
    if (batch.timer !== null) clearTimeout(batch.timer);
    this.#batches.delete(batch.job.id);
    const job = batch.job;
    this.#jobs.delete(job.id);
    const list = this.#byVm.get(job.vmId);
    if (list !== undefined) {
      const i = list.indexOf(job.id);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.#byVm.delete(job.vmId);
    }
    this.#pending--;
    this.#settled.delete(job.id);
  }

  get(id: string): FlushJob | undefined {
    return this.#jobs.get(id);
  }

  /** A VM's jobs, oldest first, starting after job `afterId` (exclusive). */
  list(vmId: VmId, afterId: string | undefined, limit: number): FlushJob[] {
    const ids = this.#byVm.get(vmId) ?? [];
    const at = afterId === undefined ? -1 : ids.indexOf(afterId);
    // A cursor naming a job already forgotten ends the listing rather than starting it over.
    if (afterId !== undefined && at < 0) return [];
    return ids.slice(at + 1, at + 1 + limit).flatMap((id) => this.#jobs.get(id) ?? []);
  }

  /** Jobs of a VM not finished yet. */
  open(vmId: VmId): FlushJob[] {
    return (this.#byVm.get(vmId) ?? []).flatMap((id) => {
      const job = this.#jobs.get(id);
      return job !== undefined && !isSettled(job) ? [job] : [];
    });
  }

  /**
   * Jobs of a VM whose flush the service cannot count as done: not acknowledged by the VMM yet
   * (none where acks are not required: flushes count as done once answered), of `cause` if given.
   */
  outstanding(vmId: VmId, cause?: FlushCause): FlushJob[] {
    if (this.acks === 'answered') return [];
    return this.open(vmId).filter((job) => !isAcknowledged(job) && (cause === undefined || job.cause === cause));
  }

  /**
   * The VMM reports the job's flush performed. A job still taking flushes is closed first (a
   * flush joining it later would not be covered); one still being planned is acknowledged once
   * planned. Acknowledging again changes nothing. Undefined for an unknown job; the promise
   * resolves once the record is kept.
   */
  acknowledge(id: string, report: VmmReport): { job: FlushJob; saved: Promise<void> } | undefined {
    const job = this.#jobs.get(id);
    if (job === undefined) return undefined;
    if (isSettled(job) || isAcknowledged(job)) return { job, saved: Promise.resolve() };
    job.acknowledgedAt = this.#clock();
    job.report = report;
    // Whoever waits for it may go on now: the VMM has flushed.
    this.#ackWaiters.get(id)?.resolve(job);
    this.#ackWaiters.delete(id);
    const batch = this.#batches.get(id);
    if (batch !== undefined) this.#seal(batch);
    if (job.state !== 'pending') return { job, saved: this.#planned(id) };
    return { job, saved: this.#acknowledged(job) };
  }

  /** Resolves once job `id` is acknowledged (or settled otherwise, or forgotten). */
  acked(id: string): Promise<void> {
    const job = this.#jobs.get(id);
    if (job === undefined || isSettled(job) || isAcknowledged(job)) return Promise.resolve();
    let waiter = this.#ackWaiters.get(id);
    if (waiter === undefined) {
      let resolve!: (job: FlushJob) => void;
      const promise = new Promise<FlushJob>((r) => {
        resolve = r;
      });
      waiter = { promise, resolve };
      this.#ackWaiters.set(id, waiter);
    }
    return waiter.promise.then(() => undefined);
  }

  /** Resolves once job `id` is planned and its acknowledgement kept. */
  async #planned(id: string): Promise<void> {
    await this.wait(id);
    await this.#ackSaved.get(id);
  }

  /** Records of acknowledgements made while their job was being planned, until kept. */
  readonly #ackSaved = new Map<string, Promise<void>>();

  #acknowledged(job: FlushJob): Promise<void> {
    if (job.state === 'pending') this.#countPending(job, -1);
    job.state = 'acknowledged';
    this.#onState(job);
    this.#ackWaiters.get(job.id)?.resolve(job);
    this.#ackWaiters.delete(job.id);
    const saved = this.#persist({ ...job, ranges: null }, null, plannedThreshold(job));
    this.#forgetOld();
    return saved;
  }


  /** Resolves once the job is done or failed. */
  wait(id: string): Promise<FlushJob> {
    const job = this.#jobs.get(id);
    if (job === undefined) return Promise.reject(new Error(`unknown flush job ${id}`));
    if (isPlanned(job)) return Promise.resolve(job);
    return (this.#settled.get(id) as Settled).promise;
  }

  /** Dispatches every open batch now and waits for every accepted job to finish. */
  async drain(): Promise<void> {
    for (const batch of [...this.#batches.values()]) this.#seal(batch);
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
  }

  /** Stops accepting, finishes what was accepted, closes the pool. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    this.#sweeper = null;
    await this.drain();
    await this.#pool.close();
  }

  #register(job: FlushJob): void {
    this.#jobs.set(job.id, job);
    let list = this.#byVm.get(job.vmId);
    if (list === undefined) {
      list = [];
      this.#byVm.set(job.vmId, list);
    }
    list.push(job.id);
    let resolve!: (job: FlushJob) => void;
    const promise = new Promise<FlushJob>((r) => {
      resolve = r;
    });
    this.#settled.set(job.id, { promise, resolve });
    this.#pending++;
    this.#onState(job);
    this.#forgetOld();
  }

  #dispatch(batch: OpenBatch): void {
    if (this.#batches.get(batch.job.id) !== batch) return;
    this.#batches.delete(batch.job.id);
    if (this.#open.get(batch.key) === batch) this.#open.delete(batch.key);
    if (batch.timer !== null) clearTimeout(batch.timer);
    const job = batch.job;
    // A copy: the planner takes its ranges over (transferred), and the first flush's ranges are
    // its decision's too.
    const pairs = batch.pairs.slice(0, batch.length);
    job.state = 'running';
    job.startedAt = this.#clock();
    this.#onState(job);
    // No record yet: until it finishes, the job is rebuilt after a restart from the ranges kept
    // with its changes, and planned again.
    const run = this.#pool
      .plan({ pairs, arch: job.arch, flushMethod: job.method, wbinvdAbovePages: batch.wbinvdAbovePages, chunkPages: this.#chunkPages })
      .then(
        (result) => {
          job.receipt = result.receipt;
          job.ranges = result.ranges;
          job.state = this.acks === 'required' ? 'pending' : 'done';
        },
        (err: unknown) => {
          // The model failed, not the flush: the VMM still has the ranges it was answered.
          job.error = err instanceof Error ? err.message : String(err);
          job.state = this.acks === 'required' ? 'pending' : 'failed';
        }
      )
      .then(async () => {
        job.finishedAt = this.#clock();
        this.#pending--;
        if (job.state === 'pending') this.#countPending(job, 1);
        this.#onState(job);
        this.#settled.get(job.id)?.resolve(job);
        this.#settled.delete(job.id);
        if (job.state === 'pending' && isAcknowledged(job)) {
          // Acknowledged while it was being planned.
          const saved = this.#acknowledged(job);
          this.#ackSaved.set(job.id, saved);
          await saved.catch(() => undefined);
          this.#ackSaved.delete(job.id);
        } else {
          this.#keep(job, batch.wbinvdAbovePages);
        }
        this.#inflight.delete(run);
      });
    this.#inflight.add(run);
  }

  /**
   * Keeps the job's state record (its ranges are stored with the changes it carries). A record
   * that cannot be kept fails nothing: after a restart the job is planned again from its ranges.
   */
  #keep(job: FlushJob, wbinvdAbovePages: number | null): void {
    if (this.#remote.has(job.id)) return;
    const saved = this.#persist({ ...job, ranges: null }, null, wbinvdAbovePages).catch(() => undefined);
    this.#inflight.add(saved);
    void saved.then(() => this.#inflight.delete(saved));
  }

  /**
   * Keeps at most `history` finished jobs, none finished longer ago than `maxAgeMs`; the others
   * are forgotten oldest first, here and in the store.
   */
  #forgetOld(): void {
    const oldest = this.#clock() - this.#maxAgeMs;
    const forgotten: string[] = [];
    for (const [id, job] of this.#jobs) {
      if (this.#jobs.size <= this.#history && (job.finishedAt === null || job.finishedAt >= oldest)) {
        if (isSettled(job)) break;
        continue;
      }
      // A job its VMM has not acknowledged is never forgotten.
      if (!isSettled(job)) continue;
      this.#jobs.delete(id);
      this.#remote.delete(id);
      forgotten.push(id);
      const list = this.#byVm.get(job.vmId);
      if (list !== undefined) {
        const i = list.indexOf(id);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0) this.#byVm.delete(job.vmId);
      }
    }
    if (forgotten.length > 0) this.#onForget(forgotten);
  }
}

/** Whether one demanded flush of `pages` uses WBINVD under the VM's policy (x86 only, above its threshold). */
export function usesWbinvd(arch: Arch, policy: { wbinvdAbovePages: number | null }, pages: number): boolean {
  return arch === 'x86_64' && policy.wbinvdAbovePages !== null && pages > policy.wbinvdAbovePages;
}

/** Flush chunk the planner splits ranges into (1 GiB), unless configured otherwise. */
export const CHUNK_PAGES = 262_144;

/** A job's first flush of at least this many numbers is held as given rather than copied. */
const ADOPTED_PAIRS = 4096;

function pagesOf(pairs: Float64Array): number {
  let pages = 0;
  for (let i = 1; i < pairs.length; i += 2) pages += pairs[i] as number;
  return pages;
}

/** Adds `pairs` to the batch's ranges; the first ones are kept as they are, not copied. */
function append(batch: OpenBatch, pairs: Float64Array): void {
  if (batch.length === 0 && pairs.length >= ADOPTED_PAIRS) {
    batch.pairs = pairs;
    batch.length = pairs.length;
    return;
  }
  const need = batch.length + pairs.length;
  if (need > batch.pairs.length) {
    const grown = new Float64Array(Math.max(need, 2 * batch.pairs.length));
    grown.set(batch.pairs.subarray(0, batch.length));
    batch.pairs = grown;
  }
  batch.pairs.set(pairs, batch.length);
  batch.length += pairs.length;
}
