/**
 * Jobs a later answer's own flush covers: a teardown of their VM flushes every range they list,
 * so they are settled without an acknowledgement (`done`, covered by that answer) and outstanding
 * no more. Their records are kept so that a restart does not bring them back.
 */
import type { VmId } from '../domain/index.js';
import { isPlanned, isSettled, plannedThreshold, type FlushJob, type KeepRecord } from './flush-job.js';
import type { InFlight } from './in-flight.js';
import type { JobAcks } from './job-acks.js';
import type { JobRegistry } from './job-registry.js';
import type { JobRetention } from './job-retention.js';

export interface CoveredJobsOptions {
  readonly registry: JobRegistry;
  readonly retention: JobRetention;
  readonly acks: JobAcks;
  readonly inflight: InFlight;
  readonly onState: (job: FlushJob) => void;
  readonly persist: KeepRecord;
}

export class CoveredJobs {
  readonly #registry: JobRegistry;
  readonly #retention: JobRetention;
  readonly #acks: JobAcks;
  readonly #inflight: InFlight;
  readonly #onState: (job: FlushJob) => void;
  readonly #persist: KeepRecord;

  constructor(options: CoveredJobsOptions) {
    this.#registry = options.registry;
    this.#retention = options.retention;
    this.#acks = options.acks;
    this.#inflight = options.inflight;
    this.#onState = options.onState;
    this.#persist = options.persist;
  }

  /**
   * Jobs whose ranges a later answer's own flush covers (`by`, a teardown of their VM): settled
   * now (one still being planned once planned), outstanding no more; their VM's listing starts
   * afresh when `vmId` is given (the VM is gone, and one made again under its id starts with none).
   */
  settle(ids: readonly string[], by: string | null, vmId?: VmId): void {
    for (const id of ids) {
      const job = this.#registry.get(id);
      if (job === undefined || isSettled(job)) continue;
      job.coveredBy = by;
      this.#acks.release(job);
      if (isPlanned(job)) this.finish(job);
    }
    if (vmId !== undefined) this.#registry.detach(vmId);
  }

  /** A covered job, planned: done, and its record kept. */
  finish(job: FlushJob): void {
    if (job.state === 'pending') this.#registry.countPending(job, -1);
    job.state = 'done';
    this.#onState(job);
    this.#keep(job, plannedThreshold(job));
    this.#retention.forgetOld();
  }

  /**
   * Keeps the job's state record (its ranges are stored with the change it belongs to). A record
   * that cannot be kept fails nothing: after a restart the job is planned again from its ranges.
   * Another replica's job is that replica's to keep.
   */
  #keep(job: FlushJob, wbinvdAbovePages: number | null): void {
    if (this.#registry.isRemote(job.id)) return;
    const saved = this.#persist({ ...job, ranges: null }, null, wbinvdAbovePages).catch(() => undefined);
    this.#inflight.add(saved);
    void saved.then(() => this.#inflight.delete(saved));
  }
}
