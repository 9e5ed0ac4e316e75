/**
 * Worker-thread entry: coalesces a batch's host ranges and prices the flush, the batch's as a
 * whole and each answer's own. Ranges arrive as a transferred Float64Array of [hpa page, pages]
 * pairs, never as JSON.
 */
import { coalescePairs, planFlush, type Arch, type FlushMethod, type FlushReceipt } from '../domain/index.js';

export interface PlanTask {
  readonly pairs: Float64Array;
  readonly arch: Arch;
  readonly flushMethod: FlushMethod;
  readonly wbinvdAbovePages: number | null;
  readonly chunkPages: number;
  /**
   * Where each answer's own flush starts in `pairs` (indices of numbers, ascending, the first 0):
   * each is planned on its own too. Absent or of one entry: `pairs` is one answer's.
   */
  readonly parts?: readonly number[];
}

export interface PlannedPart {
  readonly receipt: FlushReceipt;
  /** The part's coalesced [hpa page, pages] pairs. */
  readonly ranges: Float64Array;
}

export interface PlanResult extends PlannedPart {
  /** Each answer's own plan, in the order of `parts` (absent for a task of one answer). */
  readonly parts?: readonly PlannedPart[];
}

export default function plan(task: PlanTask): PlanResult {
  const ranges = coalescePairs(task.pairs);
  const receipt = planFlush(ranges, task.arch, task, task.chunkPages);
  const starts = task.parts;
  if (starts === undefined || starts.length <= 1) return { receipt, ranges };
  const parts: PlannedPart[] = [];
  for (let i = 0; i < starts.length; i++) {
    const own = coalescePairs(task.pairs.subarray(starts[i], i + 1 < starts.length ? starts[i + 1] : task.pairs.length));
    parts.push({ receipt: planFlush(own, task.arch, task, task.chunkPages), ranges: own });
  }
  return { receipt, ranges, parts };
}
