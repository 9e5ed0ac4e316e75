/**
 * Everything behind the HTTP layer, wired together: metrics, the worker pool, flush jobs and
 * the policy service. `close()` finishes accepted jobs, then stops the pool.
 */
import type { PolicyDefaults, Quirk } from '../domain/index.js';
import { FlushJobs, isPlanned, jobFromHeader, type FlushAcks, type FlushJob, type JobHeader, type ResumableJob } from '../jobs/flush-jobs.js';
import { createJobPool, type JobPool } from '../jobs/job-pool.js';
import { Simulator } from '../sim/simulator.js';
import { Metrics } from './metrics.js';
import { PolicyService } from './policy-service.js';
import { VmEvents } from './vm-events.js';
import type { LoadedJob, StateStore } from '../store/state-store.js';

export interface RuntimeOptions {
  readonly defaults: PolicyDefaults;
  readonly quirks: readonly Quirk[];
  readonly threads?: number;
  /** Plans flush jobs; absent: a pool of `threads` worker threads (job-pool.ts). Closed with the runtime. */
  readonly pool?: JobPool;
  readonly windowMs?: number;
  readonly maxPending?: number;
  readonly maxBatchPages?: number;
  readonly clock?: () => number;
  /** Durable store; absent: state in memory only. Closed with the runtime. */
  readonly store?: StateStore;
  /** Worker threads for what-if simulations (started on demand, stopped when idle); 0: inline. */
  readonly simThreads?: number;
  /** Finished flush jobs kept, at most (default 1,000)... */
  readonly jobHistory?: number;
  /** ...and for at most this long after they finished (ms; default an hour). */
  readonly jobMaxAgeMs?: number;
  /** How long the audit trail keeps a change (ms; default 30 days). */
  readonly auditRetentionMs?: number;
  /** Bytes the audit trail may hold (default 256 MiB). */
  readonly auditMaxBytes?: number;
  /** Whether VMMs acknowledge flushes (default) or they count as done once answered. */
  readonly flushAcks?: FlushAcks;
  /** Jobs of one VM waiting for acknowledgement beyond which changes to it are refused (default 10,000). */
  readonly maxUnackedJobs?: number;
}

export interface Runtime {
  readonly service: PolicyService;
  readonly jobs: FlushJobs;
  readonly metrics: Metrics;
  readonly simulator: Simulator;
  /** Rebuilds the state from the store and resumes unfinished flush jobs; returns the effects applied after the snapshots. */
  start(): Promise<number>;
  close(): Promise<void>;
}

interface JobBody {
  readonly job: FlushJob;
  readonly wbinvdAbovePages: number | null;
}

/**
 * A stored job as the flush jobs take it back: its last state record, or (a job whose change
 * was kept but which was never dispatched before the stop) one rebuilt from its header.
 */
function resumable(s: LoadedJob): ResumableJob[] {
  if (s.body !== null) {
    const body = JSON.parse(s.body) as JobBody;
    return [{ job: body.job, pairs: s.pairs, wbinvdAbovePages: body.wbinvdAbovePages }];
  }
  if (s.header === null || s.pairs === null) return [];
  return [jobFromHeader(s.id, JSON.parse(s.header) as JobHeader, s.pairs)];
}

export function createRuntime(options: RuntimeOptions): Runtime {
  const metrics = new Metrics();
  const events = new VmEvents();
  const pool = options.pool ?? createJobPool({ ...(options.threads === undefined ? {} : { threads: options.threads }), maxQueue: options.maxPending ?? 10_000 });
  const jobs = new FlushJobs({
    pool,
    onState: (job: FlushJob) => {
      metrics.onJobState(job);
      // The VMM hears of a job first in the decision naming it (a job is promised before its
      // change is kept, and dropped if the change is not), then as it is planned and
      // acknowledged (a copy: the job moves on).
      if (isPlanned(job)) events.emit({ type: 'flush-job', vmId: job.vmId, job: { ...job, ranges: null } });
    },
    ...(options.windowMs === undefined ? {} : { windowMs: options.windowMs }),
    ...(options.maxPending === undefined ? {} : { maxPending: options.maxPending }),
    ...(options.maxBatchPages === undefined ? {} : { maxBatchPages: options.maxBatchPages }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.jobHistory === undefined ? {} : { history: options.jobHistory }),
    ...(options.jobMaxAgeMs === undefined ? {} : { maxAgeMs: options.jobMaxAgeMs }),
    ...(options.flushAcks === undefined ? {} : { acks: options.flushAcks }),
    ...(options.maxUnackedJobs === undefined ? {} : { maxUnacknowledged: options.maxUnackedJobs }),
    ...(options.store === undefined
      ? {}
      : {
          persist: (job: FlushJob, pairs: Float64Array | null, wbinvdAbovePages: number | null) =>
            (options.store as StateStore).saveJob({ id: job.id, vmId: job.vmId, body: JSON.stringify({ job, wbinvdAbovePages } satisfies JobBody), pairs }),
          onForget: (ids: readonly string[]) => {
            // A record that could not be dropped now is dropped with the next ones.
            (options.store as StateStore).forgetJobs(ids).catch(() => undefined);
          }
        })
  });
  metrics.watch(jobs);
  /** Takes up the jobs the store holds that are not known here (`remote`: as other replicas', whose records they keep). */
  const resumeStored = async (remote: boolean): Promise<void> => {
    jobs.resume(((await options.store?.loadJobs()) ?? []).flatMap((s) => resumable(s)), remote);
  };
  const service = new PolicyService({
    defaults: options.defaults,
    quirks: options.quirks,
    jobs,
    onDecision: metrics.onDecision,
    events,
    ...(options.store === undefined ? {} : { store: options.store, reloadJobs: resumeStored }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    audit: {
      ...(options.auditRetentionMs === undefined ? {} : { retentionMs: options.auditRetentionMs }),
      ...(options.auditMaxBytes === undefined ? {} : { maxBytes: options.auditMaxBytes }),
      onPruned: metrics.onAuditPruned
    }
  });
  metrics.watchStore(() => service.ready.store, options.store);
  metrics.watchAudit(service.auditBudget);
  const simulator = new Simulator(options.simThreads === undefined ? {} : { threads: options.simThreads });
  return {
    service,
    jobs,
    metrics,
    simulator,
    // Restoring takes up the stored flush jobs too, before the service says it is ready.
    start: () => service.restore(),
    close: async () => {
      service.stop();
      await jobs.close();
      await simulator.close();
      await options.store?.close();
    }
  };
}
