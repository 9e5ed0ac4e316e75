/**
 * Everything behind the HTTP layer, wired together: metrics, the worker pool, flush jobs and
 * the policy service. `close()` finishes accepted jobs, then stops the pool.
 */
import type { PolicyDefaults, Quirk } from '../domain/index.js';
import { FlushJobs, type FlushJob } from '../jobs/flush-jobs.js';
import { createJobPool } from '../jobs/job-pool.js';
import { Simulator } from '../sim/simulator.js';
import { Metrics } from './metrics.js';
import { PolicyService } from './policy-service.js';
import type { StateStore } from '../store/state-store.js';

export interface RuntimeOptions {
  readonly defaults: PolicyDefaults;
  readonly quirks: readonly Quirk[];
  readonly threads?: number;
  readonly windowMs?: number;
  readonly maxPending?: number;
  readonly maxBatchPages?: number;
  readonly clock?: () => number;
  /** Durable store; absent: state in memory only. Closed with the runtime. */
  readonly store?: StateStore;
  /** Worker threads for what-if simulations (started on demand, stopped when idle); 0: inline. */
  readonly simThreads?: number;
}

export interface Runtime {
  readonly service: PolicyService;
  readonly jobs: FlushJobs;
  readonly metrics: Metrics;
  readonly simulator: Simulator;
  /** Rebuilds the state from the store and resumes unfinished flush jobs; returns the commands replayed. */
  start(): Promise<number>;
  close(): Promise<void>;
}

interface JobBody {
  readonly job: FlushJob;
  readonly wbinvdAbovePages: number | null;
}

export function createRuntime(options: RuntimeOptions): Runtime {
  const metrics = new Metrics();
  const pool = createJobPool({ ...(options.threads === undefined ? {} : { threads: options.threads }), maxQueue: options.maxPending ?? 10_000 });
  const jobs = new FlushJobs({
    pool,
    onState: metrics.onJobState,
    ...(options.windowMs === undefined ? {} : { windowMs: options.windowMs }),
    ...(options.maxPending === undefined ? {} : { maxPending: options.maxPending }),
    ...(options.maxBatchPages === undefined ? {} : { maxBatchPages: options.maxBatchPages }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.store === undefined
      ? {}
      : {
          persist: (job: FlushJob, pairs: Float64Array | null, wbinvdAbovePages: number | null) =>
            (options.store as StateStore).saveJob({ id: job.id, vmId: job.vmId, body: JSON.stringify({ job, wbinvdAbovePages } satisfies JobBody), pairs })
        })
  });
  metrics.watch(jobs);
  const service = new PolicyService({
    defaults: options.defaults,
    quirks: options.quirks,
    jobs,
    onDecision: metrics.onDecision,
    ...(options.store === undefined ? {} : { store: options.store }),
    ...(options.clock === undefined ? {} : { clock: options.clock })
  });
  const simulator = new Simulator(options.simThreads === undefined ? {} : { threads: options.simThreads });
  return {
    service,
    jobs,
    metrics,
    simulator,
    start: async () => {
      const replayed = await service.restore();
      const stored = (await options.store?.loadJobs()) ?? [];
      jobs.resume(
        stored.map((s) => {
          const body = JSON.parse(s.body) as JobBody;
          return { job: body.job, pairs: s.pairs, wbinvdAbovePages: body.wbinvdAbovePages };
        })
      );
      return replayed;
    },
    close: async () => {
      service.stop();
      await jobs.close();
      await simulator.close();
      await options.store?.close();
    }
  };
}
