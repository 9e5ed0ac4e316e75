/**
 * Jobs taken up from the store: this process's own after a restart, and those another replica
 * promised with a change this replica has applied since. Finished jobs are listed again with
 * their ranges; unfinished ones (their ranges were kept with the changes they belong to) are
 * planned again, each on its own, to the same receipt.
 */
import { coalescePairs } from '../domain/index.js';
import type { BatchWindow } from './batch-window.js';
import { isAcknowledged, isPlanned, jobFromHeader, type FlushAcks, type FlushJob, type JobHeader, type ResumableJob } from './flush-job.js';
import type { JobAcks } from './job-acks.js';
import type { JobRegistry } from './job-registry.js';
import type { JobRetention } from './job-retention.js';

export interface ResumedJobsOptions {
  readonly registry: JobRegistry;
  readonly retention: JobRetention;
  readonly window: BatchWindow;
  readonly acks: JobAcks;
  /** The acknowledgement mode of this process. */
  readonly mode: FlushAcks;
  /** Takes a job not planned yet into the registry (as a newly promised one). */
  readonly register: (job: FlushJob) => void;
}

export class ResumedJobs {
  readonly #options: ResumedJobsOptions;

  constructor(options: ResumedJobsOptions) {
    this.#options = options;
  }

  /** Takes up stored jobs not known here (`remote`: as another replica's); returns how many are planned again. */
  resume(stored: readonly ResumableJob[], remote = false): number {
    const { registry, window, mode } = this.#options;
    let resumed = 0;
    for (const { job, pairs, wbinvdAbovePages } of stored) {
      if (registry.has(job.id)) continue;
      if (remote) registry.markRemote(job.id);
      // Records of earlier versions say no mode: one still pending was promised to be acknowledged;
      // one not planned yet is taken as such too (the safe side).
      job.acks ??= job.state === 'done' || job.state === 'failed' ? mode : 'required';
      // Planned jobs come back as they were, pending ones still waiting for their VMM.
      if (isPlanned(job)) {
        if (job.ranges === null && pairs !== null) job.ranges = coalescePairs(pairs);
        registry.restore(job);
        continue;
      }
      job.state = 'queued';
      this.#options.register(job);
      window.planAlone(job, pairs ?? new Float64Array(0), wbinvdAbovePages);
      resumed++;
    }
    this.#options.retention.forgetOld();
    return resumed;
  }

  /**
   * A job another replica promised, stored with a change this replica has now applied: the job is
   * planned here too, so that answers here list it in `flush.after` and its VMM may acknowledge
   * it here. Its state record is the other replica's to keep (an acknowledgement made here is
   * kept by whoever receives it). A job is one answer's flush: one already known never changes.
   */
  adopt(id: string, header: JobHeader, pairs: Float64Array): void {
    if (this.#options.registry.has(id) || this.#options.retention.tombstone(id) !== undefined) return;
    this.resume([jobFromHeader(id, header, pairs)], true);
  }

  /**
   * What this replica holds of a job another replica keeps, as that replica's record says now
   * (a replica that missed an acknowledgement while it could not hear learns it here).
   */
  refresh(stored: FlushJob): void {
    const job = this.#options.registry.get(stored.id);
    if (job === undefined || !this.#options.registry.isRemote(job.id)) return;
    if ((stored.acknowledgedAt ?? null) !== null && !isAcknowledged(job)) this.#options.acks.acknowledge(job.id, stored.report ?? {});
  }
}
