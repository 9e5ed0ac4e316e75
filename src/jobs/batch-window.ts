/**
 * The batching window: flushes of one VM, cause and method arriving within a short window
 * (default 2 ms) are planned together, up to a size cap, in one task of the worker pool (each
 * answer's flush and the batch as a whole priced), and every job in the batch keeps its own
 * receipt. A batch only plans jobs together: each submitted flush is exactly one job.
 *
 * A job is promised (`reserve`) before its change is durable, so that the answer can name an id
 * stored with the change; its batch is not dispatched until every promised flush has come
 * (`fill`) or been withdrawn (`cancel`, when the change could not be kept).
 */
import { randomUUID } from 'node:crypto';
import { coalescePairs, type Arch, type FlushCause, type FlushMethod, type VmId } from '../domain/index.js';
import { acksOf, queuedJob, type BatchInfo, type FlushAcks, type FlushJob } from './flush-job.js';
import type { InFlight } from './in-flight.js';
import type { JobPool } from './job-pool.js';

/** Flush chunk the planner splits ranges into (1 GiB), unless configured otherwise. */
export const CHUNK_PAGES = 262_144;

/** Whether one demanded flush of `pages` uses WBINVD under the VM's policy (x86 only, above its threshold). */
export function usesWbinvd(arch: Arch, policy: { wbinvdAbovePages: number | null }, pages: number): boolean {
  return arch === 'x86_64' && policy.wbinvdAbovePages !== null && pages > policy.wbinvdAbovePages;
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

export interface BatchWindowOptions {
  readonly pool: JobPool;
  /** How long a batch stays open for more flushes of the same VM, cause and method. */
  readonly windowMs: number;
  /** A batch stops taking flushes beyond this many pages (it is dispatched at once). */
  readonly maxBatchPages: number;
  readonly chunkPages: number;
  readonly clock: () => number;
  /** The acknowledgement mode new jobs are promised under. */
  readonly acks: FlushAcks;
  readonly inflight: InFlight;
  readonly onState: (job: FlushJob) => void;
  /** A promised job withdrawn: its change was not kept, and nobody is told of it. */
  readonly withdrawn: (job: FlushJob) => void;
  /** A job planned (or its planning failed); what it returns is waited for before the batch counts as finished. */
  readonly planned: (job: FlushJob) => Promise<void> | undefined;
}

export class BatchWindow {
  readonly #options: BatchWindowOptions;
  /** Batches still taking flushes, by VM, cause and method. */
  readonly #open = new Map<string, Batch>();
  /** The batch of every job not dispatched yet, by job id. */
  readonly #batchOf = new Map<string, Batch>();
  /** Each job's own pairs until it is planned (a teardown covering it reads them). */
  readonly #own = new Map<string, Float64Array>();

  constructor(options: BatchWindowOptions) {
    this.#options = options;
  }

  /**
   * Promises an answer's flush of `pages` a job of its own, in the open batch of its VM, cause
   * and method (opening one). The method is chosen per answer: WBINVD only for a flush above the
   * VM's threshold (such flushes share a WBINVD batch); smaller ones are planned per line even
   * when together they would pass it, since WBINVD stalls every CPU.
   */
  reserve(vmId: VmId, arch: Arch, policy: { flushMethod: FlushMethod; wbinvdAbovePages: number | null }, cause: FlushCause, pages: number): { job: FlushJob; wbinvdAbovePages: number | null } {
    const wbinvd = usesWbinvd(arch, policy, pages);
    const key = `${vmId}\u0000${cause}\u0000${wbinvd ? 'wbinvd' : policy.flushMethod}`;
    let batch = this.#open.get(key);
    if (batch !== undefined && batch.pages + pages > this.#options.maxBatchPages && batch.pages > 0) {
      this.#seal(batch);
      batch = undefined;
    }
    if (batch === undefined) {
      // A WBINVD batch is planned with a zero threshold (it is WBINVD whatever it holds); a per-line
      // batch with none.
      const opened: Batch = { key, id: `fb-${randomUUID()}`, parts: [], pages: 0, wbinvdAbovePages: wbinvd ? 0 : null, timer: null, reserved: 0, due: false };
      this.#open.set(key, opened);
      opened.timer = setTimeout(() => this.#seal(opened), this.#options.windowMs);
      batch = opened;
    }
    const job = queuedJob(`fj-${randomUUID()}`, { vmId, arch, method: policy.flushMethod, cause, createdAt: this.#options.clock(), acks: this.#options.acks }, 0);
    batch.parts.push({ job, pairs: null });
    batch.pages += pages;
    batch.reserved++;
    this.#batchOf.set(job.id, batch);
    return { job, wbinvdAbovePages: batch.wbinvdAbovePages };
  }

  /** The flush promised to job `id`, now that its change is durable; the job holds on to `pairs`. */
  fill(id: string, pairs: Float64Array, pages: number): void {
    const batch = this.#batchOf.get(id);
    const part = batch?.parts.find((p) => p.job.id === id);
    if (batch === undefined || part === undefined || part.pairs !== null) throw new Error(`flush job ${id} is not promised`);
    part.pairs = pairs;
    part.job.requestedPages = pages;
    this.#own.set(id, pairs);
    batch.reserved--;
    if (batch.pages >= this.#options.maxBatchPages) this.#seal(batch);
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
    this.#own.delete(id);
    this.#options.withdrawn(job);
    if (batch.reserved > 0) return;
    if (batch.parts.length === 0) this.#drop(batch);
    else if (batch.due) this.#dispatch(batch);
  }

  /** A job planned again on its own, from its ranges (after a restart, or adopted from another replica). */
  planAlone(job: FlushJob, pairs: Float64Array, wbinvdAbovePages: number | null): void {
    this.#own.set(job.id, pairs);
    const batch: Batch = { key: `resume\u0000${job.id}`, id: `fb-${randomUUID()}`, parts: [{ job, pairs }], pages: job.requestedPages, wbinvdAbovePages, timer: null, reserved: 0, due: true };
    this.#batchOf.set(job.id, batch);
    this.#dispatch(batch);
  }

  /** The pairs of a job not planned yet, as its answer gave them. */
  pairsOf(id: string): Float64Array | undefined {
    return this.#own.get(id);
  }

  /** Closes the batch of job `id`, if it is not dispatched yet. */
  sealOf(id: string): void {
    const batch = this.#batchOf.get(id);
    if (batch !== undefined) this.#seal(batch);
  }

  /** Closes every batch (draining): each is dispatched once its promised flushes have come. */
  sealAll(): void {
    for (const batch of new Set(this.#batchOf.values())) this.#seal(batch);
  }

  /** Takes no more flushes; dispatched once every promised one has come. */
  #seal(batch: Batch): void {
    this.#drop(batch);
    batch.due = true;
    if (batch.reserved > 0) return;
    if (batch.parts.length === 0) return;
    this.#dispatch(batch);
  }

  /** Closes the batch's window: it takes no more flushes. */
  #drop(batch: Batch): void {
    if (this.#open.get(batch.key) === batch) this.#open.delete(batch.key);
    if (batch.timer !== null) clearTimeout(batch.timer);
    batch.timer = null;
  }

  #dispatch(batch: Batch): void {
    const parts = batch.parts.filter((p) => this.#batchOf.get(p.job.id) === batch);
    if (parts.length === 0) return;
    for (const p of parts) this.#batchOf.delete(p.job.id);
    this.#drop(batch);
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
    const { clock, onState, pool, chunkPages, acks, inflight } = this.#options;
    const startedAt = clock();
    for (const { job } of parts) {
      job.state = 'running';
      job.startedAt = startedAt;
      onState(job);
    }
    const first = (parts[0] as { job: FlushJob }).job;
    // No record yet: until it finishes, a job is rebuilt after a restart from the ranges kept
    // with its change, and planned again.
    const run = pool
      .plan({ pairs, arch: first.arch, flushMethod: first.method, wbinvdAbovePages: batch.wbinvdAbovePages, chunkPages, ...(parts.length > 1 ? { parts: starts } : {}) })
      .then(
        (result) => {
          const info: BatchInfo = { id: batch.id, decisions: parts.length, pages: result.receipt.pages };
          parts.forEach(({ job }, i) => {
            const own = result.parts?.[i] ?? result;
            job.receipt = own.receipt;
            job.ranges = own.ranges;
            job.batch = info;
            job.state = acksOf(job, acks) === 'required' ? 'pending' : 'done';
          });
        },
        (err: unknown) => {
          // The model failed, not the flush: the VMM still has the ranges it was answered.
          for (const { job } of parts) {
            job.error = err instanceof Error ? err.message : String(err);
            job.ranges = coalescePairs(this.#own.get(job.id) ?? new Float64Array(0));
            job.state = acksOf(job, acks) === 'required' ? 'pending' : 'failed';
          }
        }
      )
      .then(async () => {
        const finishedAt = clock();
        const saving: Promise<void>[] = [];
        for (const { job } of parts) {
          job.finishedAt = finishedAt;
          this.#own.delete(job.id);
          // Planned, nothing is kept: its ranges are stored with its change, and a restart plans
          // it again from them (the same receipt). A record is kept only once it is settled by
          // its acknowledgement or a teardown, which a restart must not undo.
          const saved = this.#options.planned(job);
          if (saved !== undefined) saving.push(saved);
        }
        await Promise.all(saving);
        inflight.delete(run);
      });
    inflight.add(run);
  }
}
