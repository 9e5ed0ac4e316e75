/**
 * The worker pool that plans flush jobs: piscina, sized from the CPU count, with a bounded
 * queue; small jobs are planned inline. Run from TypeScript sources (tests, benchmarks), workers
 * load the source through tsx.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import plan, { type PlanResult, type PlanTask } from './flush-worker.js';
import { workerFile } from '../worker-file.js';

export interface JobPool {
  plan(task: PlanTask): Promise<PlanResult>;
  /** Tasks waiting for a thread. */
  readonly queueSize: number;
  /** Share of time the threads were busy, 0..1. */
  readonly utilization: number;
  readonly threads: number;
  close(): Promise<void>;
}

export interface JobPoolOptions {
  readonly threads?: number;
  readonly maxQueue?: number;
}

/**
 * Jobs of at most this many ranges are planned on the calling thread: for them a round trip to a
 * worker costs more than the planning itself (tens of microseconds for a handful of ranges).
 */
export const INLINE_PLAN_RANGES = 64;

export function createJobPool(options: JobPoolOptions = {}): JobPool {
  const threads = options.threads ?? Math.max(1, availableParallelism() - 1);
  const pool = new Piscina({
    ...workerFile(import.meta.url, 'flush-worker'),
    minThreads: threads,
    maxThreads: threads,
    maxQueue: options.maxQueue ?? 10_000
  });
  return {
    plan: (task) => {
      if (task.pairs.length > 2 * INLINE_PLAN_RANGES) return pool.run(task, { transferList: [task.pairs.buffer as ArrayBuffer] }) as Promise<PlanResult>;
      try {
        return Promise.resolve(plan(task));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    },
    get queueSize() {
      return pool.queueSize;
    },
    get utilization() {
      return pool.utilization;
    },
    threads,
    close: () => pool.close()
  };
}
