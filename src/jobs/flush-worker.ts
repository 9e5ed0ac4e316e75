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

export default function plan(task: PlanTask): FlushReceipt {
  return planFlush(coalescePairs(task.pairs), task.arch, task, task.chunkPages);
}
