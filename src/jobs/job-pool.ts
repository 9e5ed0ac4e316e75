/**
 * The worker pool that plans flush jobs: piscina, sized from the CPU count, with a bounded
 * queue. Run from TypeScript sources (tests, benchmarks), workers load the source through tsx.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { PlanResult, PlanTask } from './flush-worker.js';
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

export function createJobPool(options: JobPoolOptions = {}): JobPool {
  const threads = options.threads ?? Math.max(1, availableParallelism() - 1);
  const pool = new Piscina({
    ...workerFile(import.meta.url, 'flush-worker'),
    minThreads: threads,
    maxThreads: threads,
    maxQueue: options.maxQueue ?? 10_000
  });
  return {
    plan: (task) => pool.run(task, { transferList: [task.pairs.buffer as ArrayBuffer] }) as Promise<PlanResult>,
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
