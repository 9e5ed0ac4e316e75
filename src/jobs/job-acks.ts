/**
 * Acknowledgements: the VMM reports a job's flush performed, and whoever waits for it goes on.
 * An acknowledgement covers exactly its job. One answered 200 is never lost: a record that could
 * not be kept is kept when the VMM acknowledges again, and its job is not forgotten meanwhile;
 * acknowledging again (even a job forgotten since) changes nothing else.
 */
import { deferred, type Deferred } from './deferred.js';
import { isAcknowledged, isSettled, plannedThreshold, type FlushJob, type KeepRecord, type VmmReport } from './flush-job.js';
import type { JobRegistry } from './job-registry.js';
import type { JobRetention } from './job-retention.js';

export interface JobAcksOptions {
  readonly registry: JobRegistry;
  readonly retention: JobRetention;
  readonly clock: () => number;
  readonly onState: (job: FlushJob) => void;
  readonly persist: KeepRecord;
  /** Closes the batch of a job not dispatched yet: an acknowledged job takes no one's company. */
  readonly seal: (id: string) => void;
  /** Resolves once the job is planned. */
  readonly planned: (id: string) => Promise<FlushJob>;
}

export class JobAcks {
  readonly #registry: JobRegistry;
  readonly #retention: JobRetention;
  readonly #clock: () => number;
  readonly #onState: (job: FlushJob) => void;
  readonly #persist: KeepRecord;
  readonly #seal: (id: string) => void;
  readonly #planned: (id: string) => Promise<FlushJob>;
  /** Waiters for acknowledgements, by job id. */
  readonly #waiters = new Map<string, Deferred<FlushJob>>();
  /** Records of acknowledgements made while their job was being planned, until kept. */
  readonly #savedOnPlan = new Map<string, Promise<void>>();
  /** Acknowledged jobs whose record could not be kept (kept when acknowledged again). */
  readonly #unsaved = new Set<string>();

  constructor(options: JobAcksOptions) {
    this.#registry = options.registry;
    this.#retention = options.retention;
    this.#clock = options.clock;
    this.#onState = options.onState;
    this.#persist = options.persist;
    this.#seal = options.seal;
    this.#planned = options.planned;
  }

  /**
   * The VMM reports the job's flush performed. A job still being planned is acknowledged once
   * planned. Undefined for an unknown job; the promise resolves once the record is kept.
   */
  acknowledge(id: string, report: VmmReport): { job: FlushJob; saved: Promise<void> } | undefined {
    const job = this.#registry.get(id);
    if (job === undefined) {
      const forgotten = this.#retention.tombstone(id);
      return forgotten === undefined ? undefined : { job: forgotten, saved: Promise.resolve() };
    }
    if (isSettled(job)) return { job, saved: this.#unsaved.has(id) ? this.#save(job) : Promise.resolve() };
    if (isAcknowledged(job)) return { job, saved: job.state === 'pending' ? Promise.resolve() : this.#plannedAndSaved(id) };
    job.acknowledgedAt = this.#clock();
    job.report = report;
    // Whoever waits for it may go on now: the VMM has flushed.
    this.release(job);
    this.#seal(id);
    if (job.state !== 'pending') return { job, saved: this.#plannedAndSaved(id) };
    return { job, saved: this.acknowledged(job) };
  }

  /** Resolves once job `id` is acknowledged (or settled otherwise, or forgotten). */
  acked(id: string): Promise<void> {
    const job = this.#registry.get(id);
    if (job === undefined || isSettled(job) || isAcknowledged(job)) return Promise.resolve();
    let waiter = this.#waiters.get(id);
    if (waiter === undefined) {
      waiter = deferred();
      this.#waiters.set(id, waiter);
    }
    return waiter.promise.then(() => undefined);
  }

  /** Tells whoever waits for the job's acknowledgement that nothing more is to be waited for. */
  release(job: FlushJob): void {
    this.#waiters.get(job.id)?.resolve(job);
    this.#waiters.delete(job.id);
  }

  /** A pending job is acknowledged: settled, and its record kept (the promise says when). */
  acknowledged(job: FlushJob): Promise<void> {
    if (job.state === 'pending') this.#registry.countPending(job, -1);
    job.state = 'acknowledged';
    this.#onState(job);
    this.release(job);
    const saved = this.#save(job);
    this.#retention.forgetOld();
    return saved;
  }

  /** A job acknowledged while it was being planned, planned now; resolves once its record is kept or failed. */
  acknowledgedOnPlan(job: FlushJob): Promise<void> {
    const saved = this.acknowledged(job);
    this.#savedOnPlan.set(job.id, saved);
    return saved
      .catch(() => undefined)
      .then(() => {
        this.#savedOnPlan.delete(job.id);
      });
  }

  /** Whether the job's acknowledgement is not kept yet (it must not be forgotten). */
  isUnsaved(id: string): boolean {
    return this.#unsaved.has(id);
  }

  /** Resolves once job `id` is planned and its acknowledgement kept. */
  async #plannedAndSaved(id: string): Promise<void> {
    await this.#planned(id);
    await this.#savedOnPlan.get(id);
  }

  #save(job: FlushJob): Promise<void> {
    const saved = this.#persist({ ...job, ranges: null }, null, plannedThreshold(job));
    saved.then(
      () => this.#unsaved.delete(job.id),
      () => this.#unsaved.add(job.id)
    );
    return saved;
  }
}
