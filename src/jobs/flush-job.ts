/**
 * A flush job: one answer's flush, its ranges exactly what that answer lists, never grown and
 * never shared. Planned with others of its batch, it is `pending` until the VMM that got the
 * answer acknowledges it; where acks are not required it is `done` once planned. The mode a job
 * was promised under is kept with it, so a restart in another mode re-decides nothing.
 */
import type { Arch, FlushCause, FlushMethod, FlushReceipt, VmId } from '../domain/index.js';

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

/** A stored job, as `resume` takes it back. */
export interface ResumableJob {
  readonly job: FlushJob;
  readonly pairs: Float64Array | null;
  readonly wbinvdAbovePages: number | null;
}

/**
 * Keeps a job's record (a copy: the job moves on), with its ranges where they are not kept with
 * the change it belongs to, and the WBINVD threshold it is planned with.
 */
export type KeepRecord = (job: FlushJob, pairs: Float64Array | null, wbinvdAbovePages: number | null) => Promise<void>;

/** Planned: its ranges and receipt are known (whether or not the VMM has acknowledged it). */
export function isPlanned(job: FlushJob): boolean {
  return job.state !== 'queued' && job.state !== 'running';
}

/** A planned job's WBINVD threshold, as its receipt shows it: a WBINVD job is planned with 0, any other with none. */
export function plannedThreshold(job: FlushJob): number | null {
  return job.receipt?.method === 'wbinvd' ? 0 : null;
}

/** The VMM has acknowledged the job's flush (records of earlier versions have no such field). */
export function isAcknowledged(job: FlushJob): boolean {
  return (job.acknowledgedAt ?? null) !== null;
}

/** Finished for good: nothing more is expected of it (it may be forgotten). */
export function isSettled(job: FlushJob): boolean {
  return job.state === 'done' || job.state === 'failed' || job.state === 'acknowledged';
}

/** The acknowledgement mode `job` was promised under; `current` (the process's) for records that say none. */
export function acksOf(job: FlushJob, current: FlushAcks): FlushAcks {
  return job.acks ?? current;
}

/** A job not planned yet, of `requestedPages`, promised under `header.acks` (none: the record says no mode). */
export function queuedJob(id: string, header: Omit<JobHeader, 'wbinvdAbovePages'>, requestedPages: number): FlushJob {
  return {
    id,
    vmId: header.vmId,
    arch: header.arch,
    method: header.method,
    cause: header.cause,
    state: 'queued',
    decisions: 1,
    requestedPages,
    createdAt: header.createdAt,
    startedAt: null,
    finishedAt: null,
    receipt: null,
    ranges: null,
    error: null,
    ...(header.acks === undefined ? {} : { acks: header.acks })
  };
}

/** A job rebuilt from its header and its ranges, to be planned (again). */
export function jobFromHeader(id: string, header: JobHeader, pairs: Float64Array): ResumableJob {
  return { job: queuedJob(id, header, pagesOf(pairs)), pairs, wbinvdAbovePages: header.wbinvdAbovePages };
}

/** Pages of (hpa page, pages) pairs, before coalescing. */
export function pagesOf(pairs: Float64Array): number {
  let pages = 0;
  for (let i = 1; i < pairs.length; i += 2) pages += pairs[i] as number;
  return pages;
}
