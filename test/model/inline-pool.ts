/**
 * A flush-job pool that plans on the calling thread: the models start a service per run (or per
 * restart), and worker threads would only add start-up time and nondeterminism.
 */
import plan from '../../src/jobs/flush-worker.js';
import type { JobPool } from '../../src/jobs/job-pool.js';

export const INLINE_POOL: JobPool = { plan: (task) => Promise.resolve(plan(task)), queueSize: 0, utilization: 0, threads: 0, close: () => Promise.resolve() };
