/**
 * Prometheus metrics (GET /metrics): decisions by rule, flush jobs by cause and state, flushed
 * and acknowledged bytes and modelled cycles by arch and method, bytes avoided against the
 * pessimistic policy, queue depth, flushes awaiting their VMM's ack, pool utilisation, store
 * commit latency and whether the store answers, open event streams, event-loop delay (default
 * Node metrics) and HTTP latency. One registry per runtime, so tests and several apps in one
 * process do not collide. deploy/grafana/coherency.json and deploy/prometheus/alerts.yml read
 * these names (test/project/dashboard.test.ts checks them).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import { pagesToBytes, type Decision, type Vm } from '../domain/index.js';
import type { FlushJob, FlushJobs } from '../jobs/flush-jobs.js';
import type { AuditBudget } from './audit-budget.js';
import type { StateStore } from '../store/state-store.js';

const toNumber = (pages: number): number => Number(pagesToBytes(pages));

export class Metrics {
  readonly registry = new Registry();
  readonly #decisions = new Counter({ name: 'coherency_decisions_total', help: 'Rules named in decisions', labelNames: ['rule'] as const, registers: [this.registry] });
  readonly #jobs = new Counter({ name: 'coherency_flush_jobs_total', help: 'Flush jobs entering each state', labelNames: ['cause', 'state'] as const, registers: [this.registry] });
  readonly #flushed = new Counter({
    name: 'coherency_flushed_bytes_total',
    help: 'Bytes of flush jobs planned (after coalescing), counted once when planned, whether or not the VMM has acknowledged them yet (see coherency_flush_acknowledged_bytes_total)',
    labelNames: ['arch', 'method'] as const,
    registers: [this.registry]
  });
  readonly #acknowledged = new Counter({
    name: 'coherency_flush_acknowledged_bytes_total',
    help: 'Bytes of planned flush jobs (after coalescing) that their VMM acknowledged (FLUSH_ACKS=required; none otherwise)',
    labelNames: ['arch', 'method'] as const,
    registers: [this.registry]
  });
  readonly #cycles = new Counter({ name: 'coherency_flush_modeled_cycles_total', help: 'Modelled CPU cycles of flush jobs planned', labelNames: ['arch', 'method'] as const, registers: [this.registry] });
  readonly #seconds = new Counter({ name: 'coherency_flush_modeled_seconds_total', help: 'Modelled CPU time of flush jobs planned', labelNames: ['arch', 'method'] as const, registers: [this.registry] });
  readonly #required = new Counter({ name: 'coherency_flush_required_bytes_total', help: 'Bytes decisions required to flush', labelNames: ['arch'] as const, registers: [this.registry] });
  readonly #pessimistic = new Counter({ name: 'coherency_pessimistic_bytes_total', help: 'Bytes the pessimistic policy would have flushed for the same events', labelNames: ['arch'] as const, registers: [this.registry] });
  /** One observation per store commit (a group commit of the embedded store, a change transaction of PostgreSQL's). */
  readonly #commits = new Histogram({
    name: 'coherency_store_commit_seconds',
    help: 'Time of each store commit, from the writes handed to the store until durable (SQLite: one group commit; PostgreSQL: one change transaction)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry]
  });
  /** Open event streams (GET /v1/vms/{vmId}/events), moved by the route as streams open and end. */
  readonly eventSubscribers = new Gauge({ name: 'coherency_event_subscribers', help: 'Open event streams (GET /v1/vms/{vmId}/events)', registers: [this.registry] });
  /** Per arch: [pessimistic bytes, required bytes] so far. A decision may flush more than pessimistic would (a late replay), so only the difference of the totals is meaningful. */
  readonly #totals = new Map<string, [number, number]>();
  /** Whether a job is another replica's: its bytes are counted there, so that sums over replicas count each job once. */
  #remote: (id: string) => boolean = () => false;
  /** HTTP latency, counted without allocating per request (see LatencyHistogram). */
  readonly #http = new LatencyHistogram('coherency_http_request_duration_seconds', 'HTTP request latency', [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5]);

  /** Records one HTTP request's latency. */
  observeHttp(method: string, route: string, status: number, seconds: number): void {
    this.#http.observe(method, route, status, seconds);
  }

  constructor() {
    this.registry.registerMetric(this.#http as unknown as Metric);
    const totals = this.#totals;
    new Gauge({
      // A gauge (it can go down: a late replay flushes more than pessimistic would have): no _total.
      name: 'coherency_flush_avoided_bytes',
      help: 'Bytes not flushed compared with what the pessimistic policy would have flushed for the same events',
      labelNames: ['arch'] as const,
      registers: [this.registry],
      collect: function () {
        for (const [arch, [pessimistic, required]] of totals) this.set({ arch }, pessimistic - required);
      }
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'coherency_', eventLoopMonitoringPrecision: 10 });
  }

  /** Gauges read from the job queue and the pool when scraped. */
  watch(jobs: FlushJobs): void {
    this.#remote = (id) => jobs.isRemote(id);
    new Gauge({ name: 'coherency_flush_jobs_pending', help: 'Flush jobs queued or running (not planned yet); see coherency_flushes_awaiting_ack for planned ones the VMM has not acknowledged', registers: [this.registry], collect: function () { this.set(jobs.pending); } });
    new Gauge({ name: 'coherency_flushes_awaiting_ack', help: 'Flush jobs planned and answered to a VMM, waiting for its acknowledgement (FLUSH_ACKS=required)', registers: [this.registry], collect: function () { this.set(jobs.awaitingAck); } });
    new Gauge({ name: 'coherency_pool_queue_depth', help: 'Planning tasks waiting for a worker thread', registers: [this.registry], collect: function () { this.set(jobs.pool.queueSize); } });
    new Gauge({ name: 'coherency_pool_utilization_ratio', help: 'Share of time the worker threads were busy', registers: [this.registry], collect: function () { this.set(jobs.pool.utilization); } });
    new Gauge({ name: 'coherency_pool_threads', help: 'Worker threads planning flushes', registers: [this.registry], collect: function () { this.set(jobs.pool.threads); } });
  }

  /**
   * Whether the store answers, read when scraped: `ready` is the store check of /readyz (0 from
   * a failed write until a write commits again and the state is reloaded). Commits of `store`
   * are timed, one observation per commit.
   */
  watchStore(ready: () => boolean, store: StateStore | undefined): void {
    new Gauge({ name: 'coherency_store_up', help: 'Whether the store takes writes (1) or failed and is being recovered (0): the store check of /readyz', registers: [this.registry], collect: function () { this.set(ready() ? 1 : 0); } });
    store?.onCommit?.((seconds) => this.#commits.observe(seconds));
  }

  // --- Audit trail and store size (AUDIT_MAX_MB) ---
  readonly #auditPruned = new Counter({
    name: 'coherency_audit_pruned_total',
    help: 'Audit trail records removed: past AUDIT_RETENTION (age) or beyond AUDIT_MAX_MB (size)',
    labelNames: ['reason'] as const,
    registers: [this.registry]
  });

  /** Counts audit records removed, and why. */
  readonly onAuditPruned = (reason: 'age' | 'size', records: number): void => {
    this.#auditPruned.inc({ reason }, records);
  };

  /** Gauges of the audit trail's size, its budget and the store's size, as the last size check measured them. */
  watchAudit(audit: Pick<AuditBudget, 'maxBytes' | 'size'>): void {
    // Both reasons are exported from the start, so an alert on their rate has a series to read.
    this.#auditPruned.inc({ reason: 'age' }, 0);
    this.#auditPruned.inc({ reason: 'size' }, 0);
    new Gauge({ name: 'coherency_audit_bytes', help: 'Bytes the audit trail holds (approximate: records and their index entries)', registers: [this.registry], collect: function () { this.set(audit.size.auditBytes); } });
    new Gauge({ name: 'coherency_audit_budget_bytes', help: 'Bytes the audit trail may hold (AUDIT_MAX_MB)', registers: [this.registry], collect: function () { this.set(audit.maxBytes); } });
    new Gauge({ name: 'coherency_store_bytes', help: 'Bytes the store holds on disk (SQLite: db and WAL files; PostgreSQL: its schema\'s relations; memory: 0)', registers: [this.registry], collect: function () { this.set(audit.size.storeBytes); } });
  }
  // --- end of the audit trail's metrics ---

  readonly onDecision = (vm: Pick<Vm, 'arch'>, decision: Decision): void => {
    for (const r of decision.reasons) this.#decisions.inc({ rule: r.rule });
    const arch = vm.arch;
    this.#required.inc({ arch }, toNumber(decision.flush.pages));
    this.#pessimistic.inc({ arch }, toNumber(decision.pessimisticPages));
    const t = this.#totals.get(arch) ?? [0, 0];
    t[0] += toNumber(decision.pessimisticPages);
    t[1] += toNumber(decision.flush.pages);
    this.#totals.set(arch, t);
  };

  readonly onJobState = (job: FlushJob): void => {
    this.#jobs.inc({ cause: job.cause, state: job.state });
    if (job.receipt === null || this.#remote(job.id)) return;
    const labels = { arch: job.arch, method: job.receipt.method };
    if (job.state === 'acknowledged') {
      this.#acknowledged.inc(labels, toNumber(job.receipt.pages));
      return;
    }
    // Counted once, when planned: `pending` (the VMM will acknowledge it) or `done`. A pending
    // job a teardown covers becomes `done` later (coveredBy set): it was counted as pending.
    if (job.state !== 'pending' && (job.state !== 'done' || job.coveredBy !== undefined)) return;
    this.#flushed.inc(labels, toNumber(job.receipt.pages));
    this.#cycles.inc(labels, job.receipt.modeledCycles);
    this.#seconds.inc(labels, job.receipt.modeledNs / 1e9);
  };
}

/** One line of the histogram as the registry writes it. */
interface LatencyValue {
  readonly metricName: string;
  readonly labels: Record<string, string | number>;
  readonly value: number;
}

/** Counts of one (method, route, status): per bucket (not cumulative), their sum and count. */
interface LatencyCell {
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram labelled by method, route and status, written as prom-client writes
 * its own (cumulative buckets with `le` first, then `_sum` and `_count`). A request finds its
 * cell through nested maps and adds to typed counters: no label object, hash string or closure
 * per observation, unlike prom-client's `observe`. Labels are built when the registry is read.
 */
export class LatencyHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  readonly #cells = new Map<string, Map<string, Map<number, LatencyCell>>>();

  constructor(name: string, help: string, bounds: readonly number[]) {
    this.name = name;
    this.help = help;
    this.#bounds = bounds;
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    let byMethod = this.#cells.get(route);
    if (byMethod === undefined) this.#cells.set(route, (byMethod = new Map<string, Map<number, LatencyCell>>()));
    let byStatus = byMethod.get(method);
    if (byStatus === undefined) byMethod.set(method, (byStatus = new Map<number, LatencyCell>()));
    let cell = byStatus.get(status);
    if (cell === undefined) byStatus.set(status, (cell = { counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 }));
    let b = 0;
    while (b < this.#bounds.length && seconds > (this.#bounds[b] as number)) b++;
    cell.counts[b] = (cell.counts[b] as number) + 1;
    cell.sum += seconds;
    cell.count++;
  }

  /** What the registry reads (prom-client's metric interface). */
  get(): Promise<{ name: string; help: string; type: string; values: LatencyValue[]; aggregator: string }> {
    const values: LatencyValue[] = [];
    for (const [route, byMethod] of this.#cells) {
      for (const [method, byStatus] of byMethod) {
        for (const [status, cell] of byStatus) {
          const labels = { method, route, status: String(status) };
          let cumulative = 0;
          for (let b = 0; b <= this.#bounds.length; b++) {
            cumulative += cell.counts[b] as number;
            values.push({ metricName: `${this.name}_bucket`, labels: { le: b < this.#bounds.length ? (this.#bounds[b] as number) : '+Inf', ...labels }, value: cumulative });
          }
          values.push({ metricName: `${this.name}_sum`, labels, value: cell.sum });
          values.push({ metricName: `${this.name}_count`, labels, value: cell.count });
        }
      }
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  reset(): void {
    this.#cells.clear();
  }
}
