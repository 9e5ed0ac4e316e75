/** How flush jobs are batched, bounded, remembered and kept (see FlushJobs). */
import type { FlushAcks, FlushJob, KeepRecord } from './flush-job.js';
import type { JobPool } from './job-pool.js';

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
  readonly persist?: KeepRecord;
}
