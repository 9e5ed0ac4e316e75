/**
 * Flush jobs: every answer that demands a flush gets a flush of its own, a job whose ranges are
 * exactly what that answer lists and never change afterwards (never grown, never shared with
 * another answer). Flushes of one VM, cause and method arriving within a short window (default
 * 2 ms) form a batch, up to a size cap: when the window closes the batch is planned and priced in
 * one task (each answer's flush and the batch as a whole), and every job in it keeps its own
 * receipt. The flush itself is the VMM's: a planned job is `pending` until the VMM that got the
 * answer acknowledges it (`acknowledge`), and until then it is outstanding: answers that are safe
 * only once it is done name it. An acknowledgement covers exactly its job. Where acks are not
 * required (`acks: 'answered'`, the weaker guarantee) a planned job is `done` at once; the mode a
 * job was promised under is kept with it, so a restart in another mode re-decides nothing.
 *
 * Invariants:
 * - A job accepted (an id handed out) is never dropped: it ends `done`, `failed` or
 *   `acknowledged`, and `drain()` waits for every one of them.
 * - Overload is refused before a decision is made (`assertCapacity`), never by dropping work.
 * - Each submitted flush is exactly one job; a batch only plans jobs together.
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
  /** Answers whose flush this job is: always 1 (a job is one answer's flush). */
  decisions: number;
  /** Pages requested (before coalescing). */
  requestedPages: number;
  readonly createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** The receipt of this job's own flush. */
  receipt: FlushReceipt | null;
  /** Coalesced [hpa page, pages] pairs once planned; forgotten with the job. */
  ranges: Float64Array | null;
  error: string | null;
  /** When the VMM acknowledged the flush (ms since the epoch), and what it reported. */
  acknowledgedAt?: number | null;
  report?: VmmReport | null;
  /** Whether the flush was promised to be acknowledged (records of earlier versions: the mode of the process). */
  acks?: FlushAcks;
  /** The batch it was planned with: its id, how many answers' flushes it coalesced and their pages. */
  batch?: BatchInfo | null;
  /** Settled without an acknowledgement: a later answer's own flush covers its ranges (a teardown). */
  coveredBy?: string | null;
}

/** A batch as its jobs show it. */
export interface BatchInfo {
  readonly id: string;
  readonly decisions: number;
  /** Coalesced pages of the whole batch. */
  readonly pages: number;
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
  /** A batch stops taking flushes beyond this many pages (it is dispatched at once). */
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

/** Answers' flushes planned together: one VM, cause and method, one window. */
interface Batch {
  readonly key: string;
  readonly id: string;
  /** The jobs in it, in arrival order, with their own pairs once filled (null: promised). */
  readonly parts: { readonly job: FlushJob; pairs: Float64Array | null }[];
  /** Pages promised or given to it (the size cap). */
  pages: number;
  readonly wbinvdAbovePages: number | null;
  timer: NodeJS.Timeout | null;
  /** Flushes promised (reserve) whose ranges have not come yet (fill or cancel). */
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
  /** The acknowledgement mode it was promised under (headers of earlier versions: none). */
  readonly acks?: FlushAcks;
}

/** A job rebuilt from its header and its ranges, to be planned (again). */
export function jobFromHeader(id: string, header: JobHeader, pairs: Float64Array): ResumableJob {
  const pages = pagesOf(pairs);
  const job: FlushJob = {
    id,
    vmId: header.vmId,
    arch: header.arch,
    method: header.method,
    cause: header.cause,
    state: 'queued',
    decisions: 1,
    requestedPages: pages,
    createdAt: header.createdAt,
    startedAt: null,
    finishedAt: null,
    receipt: null,
    ranges: null,
    error: null,
    ...(header.acks === undefined ? {} : { acks: header.acks })
  };
  return { job, pairs, wbinvdAbovePages: header.wbinvdAbovePages };
}

interface Settled {
  readonly promise: Promise<FlushJob>;
  resolve(job: FlushJob): void;
}

function settledPromise(): Settled {
  let resolve!: (job: FlushJob) => void;
  const promise = new Promise<FlushJob>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Acknowledged jobs remembered after they left the history, so that acking again still answers 200. */
const FORGOTTEN_KEPT = 16_384;

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
  readonly #open = new Map<string, Batch>();
  /** The batch of every job not dispatched yet, by job id. */
  readonly #batchOf = new Map<string, Batch>();
  /** Each job's own pairs until it is planned (a teardown covering it reads them). */
  readonly #own = new Map<string, Float64Array>();
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
  /** Settled jobs forgotten from the history (oldest first, bounded): acking one again answers as before. */
  readonly #forgotten = new Map<string, FlushJob>();
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

  /** The acknowledgement mode job `job` was promised under. */
  #acksOf(job: FlushJob): FlushAcks {
    return job.acks ?? this.acks;
  }

  /**
   * After a restart: finished jobs are listed again, with their ranges; unfinished ones (their
   * ranges were kept with the changes they belong to) are planned again, each on its own.
   */
  resume(stored: readonly ResumableJob[], remote = false): number {
    let resumed = 0;
    for (const { job, pairs, wbinvdAbovePages } of stored) {
      if (this.#jobs.has(job.id)) continue;
      if (remote) this.#remote.add(job.id);
      // Records of earlier versions say no mode: one still pending was promised to be acknowledged;
      // one not planned yet is taken as such too (the safe side).
      job.acks ??= job.state === 'done' || job.state === 'failed' ? this.acks : 'required';
      // Planned jobs come back as they were, pending ones still waiting for their VMM.
      if (isPlanned(job)) {
        if (job.ranges === null && pairs !== null) job.ranges = coalescePairs(pairs);
        if (job.state === 'pending') this.#countPending(job, 1);
        this.#jobs.set(job.id, job);
        this.#listed(job.vmId).push(job.id);
        if (!isSettled(job)) this.#opened(job);
        continue;
      }
      job.state = 'queued';
      this.#register(job);
      const own = pairs ?? new Float64Array(0);
      this.#own.set(job.id, own);
      const batch: Batch = { key: `resume\u0000${job.id}`, id: `fb-${randomUUID()}`, parts: [{ job, pairs: own }], pages: job.requestedPages, wbinvdAbovePages, timer: null, reserved: 0, due: true };
      this.#batchOf.set(job.id, batch);
      this.#dispatch(batch);
      resumed++;
    }
    this.#forgetOld();
    return resumed;
  }

  /**
   * A job another replica promised, stored with a change this replica has now applied: the job is
   * planned here too, so that answers here list it in `flush.after` and its VMM may acknowledge
   * it here. Its state record is the other replica's to keep (an acknowledgement made here is
   * kept by whoever receives it). A job is one answer's flush: one already known never changes.
   */
  adopt(id: string, header: JobHeader, pairs: Float64Array): void {
    if (this.#jobs.has(id) || this.#forgotten.has(id)) return;
    this.resume([jobFromHeader(id, header, pairs)], true);
  }

  /**
   * What this replica holds of a job another replica keeps, as that replica's record says now
   * (a replica that missed an acknowledgement while it could not hear learns it here).
   */
  refresh(stored: FlushJob): void {
    const job = this.#jobs.get(stored.id);
    if (job === undefined || !this.#remote.has(job.id)) return;
    if ((stored.acknowledgedAt ?? null) !== null && !isAcknowledged(job)) this.acknowledge(job.id, stored.report ?? {});
  }

  /** Jobs other replicas promised that are still outstanding here. */
  remoteOutstanding(): string[] {
    const ids: string[] = [];
    for (const id of this.#remote) {
      const job = this.#jobs.get(id);
      if (job !== undefined && !isSettled(job) && !isAcknowledged(job)) ids.push(id);
    }
    return ids;
  }

  /** Jobs queued or running. */
  get pending(): number {
    return this.#pending;
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
    if (this.#closed || this.#pending >= this.#maxPending) throw new OverloadedError(1);
    if (adds && vmId !== undefined && this.#unacknowledged(vmId) >= this.#maxUnacknowledged) {
      throw new OverloadedError(1, `VM ${vmId} has ${this.#maxUnacknowledged} flush jobs its VMM has not acknowledged (POST /v1/flush-jobs/{jobId}/ack); changes to it that add flushes are refused until it catches up`);
    }
  }

  /** Planned jobs of a VM still waiting for their acknowledgement. */
  #unacknowledged(vmId: VmId): number {
    return this.#pendingByVm.get(vmId) ?? 0;
  }

  readonly #pendingByVm = new Map<VmId, number>();

  /** Counts a job entering (+1) or leaving (-1) the `pending` state. */
  #countPending(job: FlushJob, delta: 1 | -1): void {
    if (this.#detached.has(job.id)) return;
    const n = (this.#pendingByVm.get(job.vmId) ?? 0) + delta;
    if (n <= 0) this.#pendingByVm.delete(job.vmId);
    else this.#pendingByVm.set(job.vmId, n);
  }

  #listed(vmId: VmId): string[] {
    let list = this.#byVm.get(vmId);
    if (list === undefined) {
      list = [];
      this.#byVm.set(vmId, list);
    }
    return list;
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
   * answer can then name a job id that is stored with the change. The job joins the open batch of
   * its VM, cause and method (opening one); the batch is not dispatched until every promised
   * flush has come (`fill`) or been withdrawn (`cancel`, when the change could not be kept). The
   * method is chosen per answer: WBINVD only for a flush above the VM's threshold (such flushes
   * share a WBINVD batch); smaller ones are planned per line even when together they would pass
   * it, since WBINVD stalls every CPU.
   */
  reserve(vmId: VmId, arch: Arch, policy: { flushMethod: FlushMethod; wbinvdAbovePages: number | null }, cause: FlushCause, pages: number): { id: string; header: JobHeader } {
    const wbinvd = usesWbinvd(arch, policy, pages);
    const key = `${vmId}\u0000${cause}\u0000${wbinvd ? 'wbinvd' : policy.flushMethod}`;
    let batch = this.#open.get(key);
    if (batch !== undefined && batch.pages + pages > this.#maxBatchPages && batch.pages > 0) {
      this.#seal(batch);
      batch = undefined;
    }
    if (batch === undefined) {
      // A WBINVD batch is planned with a zero threshold (it is WBINVD whatever it holds); a per-line
      // batch with none.
      const opened: Batch = { key, id: `fb-${randomUUID()}`, parts: [], pages: 0, wbinvdAbovePages: wbinvd ? 0 : null, timer: null, reserved: 0, due: false };
      this.#open.set(key, opened);
      opened.timer = setTimeout(() => this.#seal(opened), this.#windowMs);
      batch = opened;
    }
    const job: FlushJob = {
      id: `fj-${randomUUID()}`,
      vmId,
      arch,
      method: policy.flushMethod,
      cause,
      state: 'queued',
      decisions: 1,
      requestedPages: 0,
      createdAt: this.#clock(),
      startedAt: null,
      finishedAt: null,
      receipt: null,
      ranges: null,
      error: null,
      acks: this.acks
    };
    batch.parts.push({ job, pairs: null });
    batch.pages += pages;
    batch.reserved++;
    this.#batchOf.set(job.id, batch);
    this.#register(job);
    return { id: job.id, header: { vmId, arch, method: job.method, cause, wbinvdAbovePages: batch.wbinvdAbovePages, createdAt: job.createdAt, acks: this.acks } };
  }

  /**
   * The flush promised to job `id` (reserve), now that its change is durable: (hpa, pages) pairs,
   * and their pages when the caller knows them. The job holds on to `pairs`: they are not changed
   * afterwards.
   */
  fill(id: string, pairs: Float64Array, pages = pagesOf(pairs)): void {
    const batch = this.#batchOf.get(id);
    const part = batch?.parts.find((p) => p.job.id === id);
    if (batch === undefined || part === undefined || part.pairs !== null) throw new Error(`flush job ${id} is not promised`);
    part.pairs = pairs;
    part.job.requestedPages = pages;
    this.#own.set(id, pairs);
    batch.reserved--;
    if (batch.pages >= this.#maxBatchPages) this.#seal(batch);
    else if (batch.due && batch.reserved === 0) this.#dispatch(batch);
  }

  /** Withdraws a flush promised to job `id`: its change was not kept, and nobody is told of the job. */
  cancel(id: string): void {
    const batch = this.#batchOf.get(id);
    if (batch === undefined) return;
    const at = batch.parts.findIndex((p) => p.job.id === id);
    if (at < 0 || (batch.parts[at] as { pairs: Float64Array | null }).pairs !== null) return;
    const job = (batch.parts[at] as { job: FlushJob }).job;
    batch.parts.splice(at, 1);
    batch.reserved--;
    this.#batchOf.delete(id);
    this.#unregister(job);
    if (batch.reserved > 0) return;
    if (batch.parts.length === 0) this.#drop(batch);
    else if (batch.due) this.#dispatch(batch);
  }

  /** Takes no more flushes; dispatched once every promised one has come. */
  #seal(batch: Batch): void {
    if (this.#open.get(batch.key) === batch) this.#open.delete(batch.key);
    if (batch.timer !== null) clearTimeout(batch.timer);
    batch.timer = null;
    batch.due = true;
    if (batch.reserved > 0) return;
    if (batch.parts.length === 0) this.#drop(batch);
    else this.#dispatch(batch);
  }

  #drop(batch: Batch): void {
    if (this.#open.get(batch.key) === batch) this.#open.delete(batch.key);
    if (batch.timer !== null) clearTimeout(batch.timer);
    batch.timer = null;
  }

  /** Forgets a job nobody was told of (its change was not kept). */
  #unregister(job: FlushJob): void {
    this.#jobs.delete(job.id);
    this.#own.delete(job.id);
    this.#openByVm.get(job.vmId)?.delete(job.id);
    const list = this.#byVm.get(job.vmId);
    if (list !== undefined) {
      const i = list.lastIndexOf(job.id);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.#byVm.delete(job.vmId);
    }
    this.#pending--;
    this.#settled.delete(job.id);
  }

  /** A job, or one acknowledged and forgotten since (undefined: never known here). */
  get(id: string): FlushJob | undefined {
    return this.#jobs.get(id) ?? this.#forgotten.get(id);
  }

  /** A VM's jobs, oldest first, starting after job `afterId` (exclusive). */
  list(vmId: VmId, afterId: string | undefined, limit: number): FlushJob[] {
    const ids = this.#byVm.get(vmId) ?? [];
    const at = afterId === undefined ? -1 : ids.indexOf(afterId);
    // A cursor naming a job already forgotten ends the listing rather than starting it over.
    if (afterId !== undefined && at < 0) return [];
    return ids.slice(at + 1, at + 1 + limit).flatMap((id) => this.#jobs.get(id) ?? []);
  }

  /** Jobs of a VM not finished yet, oldest first (those found finished since are dropped from the set here). */
  open(vmId: VmId): FlushJob[] {
    const ids = this.#openByVm.get(vmId);
    if (ids === undefined) return [];
    const jobs: FlushJob[] = [];
    for (const id of ids) {
      const job = this.#jobs.get(id);
      if (job === undefined || isSettled(job)) ids.delete(id);
      else jobs.push(job);
    }
    if (ids.size === 0) this.#openByVm.delete(vmId);
    return jobs;
  }

  /** Per VM, the ids of its jobs that may not be finished yet (a superset: `open` prunes it). */
  readonly #openByVm = new Map<VmId, Set<string>>();

  #opened(job: FlushJob): void {
    let ids = this.#openByVm.get(job.vmId);
    if (ids === undefined) {
      ids = new Set();
      this.#openByVm.set(job.vmId, ids);
    }
    ids.add(job.id);
  }

  /**
   * Jobs of a VM whose flush the service cannot count as done: not acknowledged by the VMM yet
   * (none of those promised where acks are not required: they count as done once answered), of
   * `cause` if given.
   */
  outstanding(vmId: VmId, cause?: FlushCause): FlushJob[] {
    return this.open(vmId).filter((job) => this.#acksOf(job) === 'required' && !isAcknowledged(job) && job.coveredBy === undefined && (cause === undefined || job.cause === cause));
  }

  /**
   * The ranges of every outstanding job of the VM, as (hpa, pages) pairs, and their ids: what a
   * teardown of the VM covers with its own flush (`settle` once it is kept).
   */
  outstandingPairs(vmId: VmId): { ids: string[]; pairs: Float64Array } {
    const jobs = this.outstanding(vmId);
    const parts = jobs.map((job) => job.ranges ?? this.#own.get(job.id) ?? new Float64Array(0));
    const pairs = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      pairs.set(p, at);
      at += p.length;
    }
    return { ids: jobs.map((job) => job.id), pairs };
  }

  /**
   * Jobs whose ranges a later answer's own flush covers (`by`, a teardown of their VM): settled
   * now, outstanding no more; their VM's listing starts afresh when `detach` (the VM is gone, and
   * one made again under its id starts with none).
   */
  settle(ids: readonly string[], by: string | null, vmId?: VmId): void {
    for (const id of ids) {
      const job = this.#jobs.get(id);
      if (job === undefined || isSettled(job)) continue;
      job.coveredBy = by;
      this.#ackWaiters.get(id)?.resolve(job);
      this.#ackWaiters.delete(id);
      if (isPlanned(job)) this.#finishCovered(job);
    }
    if (vmId !== undefined) {
      // The VM is gone: what is still open of it (the teardown's own flush) stays the VMM's to
      // perform and acknowledge by id, but no longer counts for a VM made again under its id.
      for (const id of this.#byVm.get(vmId) ?? []) {
        const job = this.#jobs.get(id);
        if (job === undefined || isSettled(job) || job.coveredBy !== undefined) continue;
        if (job.state === 'pending') this.#countPending(job, -1);
        this.#detached.add(id);
      }
      this.#byVm.delete(vmId);
      this.#openByVm.delete(vmId);
    }
  }

  /** Open jobs of VMs deleted since (see `settle`): listed and counted for no VM. */
  readonly #detached = new Set<string>();

  #finishCovered(job: FlushJob): void {
    if (job.state === 'pending') this.#countPending(job, -1);
    job.state = 'done';
    this.#onState(job);
    this.#keep(job, plannedThreshold(job));
    this.#forgetOld();
  }

  /**
   * The VMM reports the job's flush performed. A job still being planned is acknowledged once
   * planned. Acknowledging again (even a job forgotten since) changes nothing. Undefined for an
   * unknown job; the promise resolves once the record is kept.
   */
  acknowledge(id: string, report: VmmReport): { job: FlushJob; saved: Promise<void> } | undefined {
    const job = this.#jobs.get(id);
    if (job === undefined) {
      const forgotten = this.#forgotten.get(id);
      return forgotten === undefined ? undefined : { job: forgotten, saved: Promise.resolve() };
    }
    if (isSettled(job)) return { job, saved: this.#unsaved.has(id) ? this.#save(job) : Promise.resolve() };
    if (isAcknowledged(job)) return { job, saved: job.state === 'pending' ? Promise.resolve() : this.#planned(id) };
    job.acknowledgedAt = this.#clock();
    job.report = report;
    // Whoever waits for it may go on now: the VMM has flushed.
    this.#ackWaiters.get(id)?.resolve(job);
    this.#ackWaiters.delete(id);
    const batch = this.#batchOf.get(id);
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
      waiter = settledPromise();
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
    const saved = this.#save(job);
    this.#forgetOld();
    return saved;
  }

  /**
   * Acknowledged jobs whose record could not be kept: acknowledging again keeps it then (an
   * acknowledgement answered 200 is never lost), and they are not forgotten meanwhile.
   */
  readonly #unsaved = new Set<string>();

  #save(job: FlushJob): Promise<void> {
    const saved = this.#persist({ ...job, ranges: null }, null, plannedThreshold(job));
    saved.then(
      () => this.#unsaved.delete(job.id),
      () => this.#unsaved.add(job.id)
    );
    return saved;
  }

  /** Resolves once the job is planned (pending, acknowledged, done or failed). */
  wait(id: string): Promise<FlushJob> {
    const job = this.get(id);
    if (job === undefined) return Promise.reject(new Error(`unknown flush job ${id}`));
    if (isPlanned(job)) return Promise.resolve(job);
    return (this.#settled.get(id) as Settled).promise;
  }

  /** Dispatches every open batch now and waits for every accepted job to finish. */
  async drain(): Promise<void> {
    for (const batch of new Set(this.#batchOf.values())) this.#seal(batch);
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
    this.#listed(job.vmId).push(job.id);
    this.#opened(job);
    this.#settled.set(job.id, settledPromise());
    this.#pending++;
    this.#onState(job);
    this.#forgetOld();
  }

  #dispatch(batch: Batch): void {
    const parts = batch.parts.filter((p) => this.#batchOf.get(p.job.id) === batch);
    if (parts.length === 0) return;
    for (const p of parts) this.#batchOf.delete(p.job.id);
    if (this.#open.get(batch.key) === batch) this.#open.delete(batch.key);
    if (batch.timer !== null) clearTimeout(batch.timer);
    batch.timer = null;
    // One task for the batch: its parts side by side (a copy: the planner takes it over,
    // transferred), each planned on its own and the whole priced together.
    const starts: number[] = [];
    let length = 0;
    for (const p of parts) {
      starts.push(length);
      length += (p.pairs as Float64Array).length;
    }
    const pairs = new Float64Array(length);
    for (let i = 0; i < parts.length; i++) pairs.set(parts[i]?.pairs as Float64Array, starts[i]);
    const startedAt = this.#clock();
    for (const { job } of parts) {
      job.state = 'running';
      job.startedAt = startedAt;
      this.#onState(job);
    }
    const first = (parts[0] as { job: FlushJob }).job;
    // No record yet: until it finishes, a job is rebuilt after a restart from the ranges kept
    // with its change, and planned again.
    const run = this.#pool
      .plan({ pairs, arch: first.arch, flushMethod: first.method, wbinvdAbovePages: batch.wbinvdAbovePages, chunkPages: this.#chunkPages, ...(parts.length > 1 ? { parts: starts } : {}) })
      .then(
        (result) => {
          const info: BatchInfo = { id: batch.id, decisions: parts.length, pages: result.receipt.pages };
          parts.forEach(({ job }, i) => {
            const own = result.parts?.[i] ?? result;
            job.receipt = own.receipt;
            job.ranges = own.ranges;
            job.batch = info;
            job.state = this.#acksOf(job) === 'required' ? 'pending' : 'done';
          });
        },
        (err: unknown) => {
          // The model failed, not the flush: the VMM still has the ranges it was answered.
          for (const { job } of parts) {
            job.error = err instanceof Error ? err.message : String(err);
            job.ranges = coalescePairs(this.#own.get(job.id) ?? new Float64Array(0));
            job.state = this.#acksOf(job) === 'required' ? 'pending' : 'failed';
          }
        }
      )
      .then(async () => {
        const finishedAt = this.#clock();
        const saving: Promise<unknown>[] = [];
        for (const { job } of parts) {
          job.finishedAt = finishedAt;
          this.#own.delete(job.id);
          this.#pending--;
          if (job.state === 'pending') this.#countPending(job, 1);
          this.#onState(job);
          this.#settled.get(job.id)?.resolve(job);
          this.#settled.delete(job.id);
          if (job.state === 'pending' && job.coveredBy !== undefined) {
            this.#finishCovered(job);
          } else if (job.state === 'pending' && isAcknowledged(job)) {
            // Acknowledged while it was being planned.
            const saved = this.#acknowledged(job);
            this.#ackSaved.set(job.id, saved);
            saving.push(
              saved.catch(() => undefined).then(() => {
                this.#ackSaved.delete(job.id);
              })
            );
          }
          // Planned, nothing is kept: its ranges are stored with its change, and a restart plans
          // it again from them (the same receipt). A record is kept only once it is settled by
          // its acknowledgement or a teardown, which a restart must not undo.
        }
        await Promise.all(saving);
        this.#inflight.delete(run);
      });
    this.#inflight.add(run);
  }

  /**
   * Keeps the job's state record (its ranges are stored with the change it belongs to). A record
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
   * are forgotten oldest first, here and in the store (acknowledging one again still answers).
   */
  #forgetOld(): void {
    const oldest = this.#clock() - this.#maxAgeMs;
    const forgotten: string[] = [];
    for (const [id, job] of this.#jobs) {
      if (this.#jobs.size <= this.#history && (job.finishedAt === null || job.finishedAt >= oldest)) {
        if (isSettled(job)) break;
        continue;
      }
      // A job its VMM has not acknowledged (or whose acknowledgement is not kept yet) is never forgotten.
      if (!isSettled(job) || this.#unsaved.has(id)) continue;
      this.#jobs.delete(id);
      this.#remote.delete(id);
      this.#detached.delete(id);
      forgotten.push(id);
      job.ranges = null;
      this.#forgotten.set(id, job);
      if (this.#forgotten.size > FORGOTTEN_KEPT) this.#forgotten.delete(this.#forgotten.keys().next().value as string);
      const list = this.#byVm.get(job.vmId);
      if (list !== undefined) {
        const i = list.indexOf(id);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0) this.#byVm.delete(job.vmId);
      }
    }
    if (forgotten.length === 0) return;
    // Forgotten in the store together, once a turn: one write for every job forgotten meanwhile.
    if (this.#forgetting.length === 0) {
      setImmediate(() => {
        const ids = this.#forgetting;
        this.#forgetting = [];
        this.#onForget(ids);
      });
    }
    this.#forgetting.push(...forgotten);
  }

  /** Ids forgotten this turn, for the store. */
  #forgetting: string[] = [];
}

/** Whether one demanded flush of `pages` uses WBINVD under the VM's policy (x86 only, above its threshold). */
export function usesWbinvd(arch: Arch, policy: { wbinvdAbovePages: number | null }, pages: number): boolean {
  return arch === 'x86_64' && policy.wbinvdAbovePages !== null && pages > policy.wbinvdAbovePages;
}

/** Flush chunk the planner splits ranges into (1 GiB), unless configured otherwise. */
export const CHUNK_PAGES = 262_144;

function pagesOf(pairs: Float64Array): number {
  let pages = 0;
  for (let i = 1; i < pairs.length; i += 2) pages += pairs[i] as number;
  return pages;
}
