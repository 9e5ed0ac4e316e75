/**
 * Worker-thread entry: coalesces a job's host ranges and prices the flush. Ranges arrive as a
 * transferred Float64Array of [hpa page, pages] pairs, never as JSON.
 */
import { coalescePairs, planFlush, type Arch, type FlushMethod, type FlushReceipt } from '../domain/index.js';

export interface PlanTask {
  readonly pairs: Float64Array;
  readonly arch: Arch;
  readonly flushMethod: FlushMethod;
  readonly wbinvdAbovePages: number | null;
  readonly chunkPages: number;
}

export interface PlanResult {
  readonly receipt: FlushReceipt;
  /** The coalesced [hpa page, pages] pairs, transferred back. */
  readonly ranges: Float64Array;
}

export default function plan(task: PlanTask): PlanResult {
  const ranges = coalescePairs(task.pairs);
  return { receipt: planFlush(ranges, task.arch, task, task.chunkPages), ranges };
}
