/**
 * The service around the decision core: decide, commit, answer, read. It stamps commands with
 * the time, hands them to its commit (embedded or replicated, `commit/`), and answers with the
 * flush jobs their decisions were promised to. One writer at a time is guaranteed by
 * JavaScript itself: every decision runs to completion synchronously.
 */
import {
  applyCommand,
  createState,
  decidedCommand,
  DecisionBuilder,
  flushQueryColumns,
  getVm,
  listPins,
  mustFlushColumns,
  quirkToWire,
  viewVm,
  type CoherencyState,
  type Command,
  type CommandResult,
  type Decision,
  type FlushQueryColumns,
  type FlushQueryColumnsAnswer,
  type FlushQueryRange,
  type PciAddress,
  type PinnedRangeView,
  type PolicyDefaults,
  type Quirk,
  type RuleId,
  type Vm,
  type VmId,
  type VmView
} from '../domain/index.js';
import { FlushAckTimeoutError, type FlushJob, type FlushJobs, type VmmReport } from '../jobs/flush-jobs.js';
import type { AuditEntry, AuditFolder, AuditQuery, StateStore } from '../store/state-store.js';
import { commitFor, type Commit } from './commit/index.js';
import { AuditBudget, type AuditBudgetOptions } from './audit-budget.js';
import { Decider } from './decide.js';
import { StoreUnavailableError } from './errors.js';
import { Health, type HealthObserver } from './health.js';
import { InFlight } from './in-flight.js';
import { Ledger } from './ledger.js';
import { addsObligations, failClosedDevctl } from './obligations.js';
import { restoreState } from './restore.js';
import { Snapshots } from './snapshots.js';
import { VmEvents } from './vm-events.js';

export type { FlushJob } from '../jobs/flush-jobs.js';

export interface PolicyServiceOptions {
  readonly defaults: PolicyDefaults;
  readonly quirks: readonly Quirk[];
  /** Milliseconds since the epoch; injectable for tests. */
  readonly clock?: () => number;
  /** Where demanded flushes become jobs; without it decisions carry no job id. */
  readonly jobs?: FlushJobs;
  /** Called with every decision made (metrics). */
  readonly onDecision?: (vm: Pick<Vm, 'id' | 'arch'>, decision: Decision) => void;
  /** Where acknowledged changes are kept; without one, state lives in memory only. */
  readonly store?: StateStore;
  /** What the audit trail keeps (AUDIT_RETENTION, AUDIT_MAX_MB); defaults 30 days, 256 MiB. */
  readonly audit?: AuditBudgetOptions;
  /** Folds high-rate pins and unpins of one VM in the audit trail; default AuditFolder's. */
  readonly auditFolder?: AuditFolder;
  /** Where each VM's events go (GET /v1/vms/{vmId}/events). */
  readonly events?: VmEvents;
  /**
   * Takes up the flush jobs the store holds that are not known here: at the first restore every
   * one (`remote` false), and with replicas after a reload (a recovery) those other replicas
   * promised meanwhile (`remote` true), which this one could not adopt change by change.
   */
  readonly reloadJobs?: (remote: boolean) => Promise<void>;
}

/**
 * A command's result as the HTTP layer gets it (without the state: it asks the service), plus
 * the flush jobs its decisions joined and the revision the change got.
 */
export interface Applied extends Omit<CommandResult, 'state'> {
  /** Set when the answer failed closed (the state could not be vouched for). */
  readonly failClosed?: 'STORE_UNAVAILABLE';
  /** The job carrying `decision.flush`, when a flush is required. */
  readonly jobId?: string;
  /** put-quirks: the job of each VM decision that requires a flush. */
  readonly vmJobIds?: ReadonlyMap<VmId, string>;
  /** Outstanding flush jobs of the VM the change is safe only after (see `dependencies`). */
  readonly after?: readonly string[];
  /** put-quirks: the same, per VM. */
  readonly vmAfter?: ReadonlyMap<VmId, readonly string[]>;
}

export class PolicyService {
  readonly jobs: FlushJobs | undefined;
  /** Each VM's recent events, for its VMM to follow. */
  readonly events: VmEvents;
  /** What the audit trail keeps (AUDIT_RETENTION, AUDIT_MAX_MB), and its size. */
  readonly auditBudget: AuditBudget;
  readonly #defaults: PolicyDefaults;
  readonly #quirks: readonly Quirk[];
  readonly #clock: () => number;
  readonly #onDecision: (vm: Pick<Vm, 'id' | 'arch'>, decision: Decision) => void;
  readonly #store: StateStore | undefined;
  readonly #reloadJobs: ((remote: boolean) => Promise<void>) | undefined;
  readonly #ledger: Ledger;
  readonly #health: Health;
  readonly #decider: Decider;
  readonly #snapshots: Snapshots | undefined;
  readonly #inFlight = new InFlight();
  readonly #commit: Commit;

  constructor(options: PolicyServiceOptions) {
    this.#defaults = options.defaults;
    this.#quirks = options.quirks;
    this.#clock = options.clock ?? Date.now;
    this.jobs = options.jobs;
    this.#onDecision = options.onDecision ?? (() => undefined);
    this.#store = options.store;
    this.auditBudget = new AuditBudget(options.store, this.#clock, options.audit);
    this.events = options.events ?? new VmEvents();
    this.#reloadJobs = options.reloadJobs;
    this.#ledger = new Ledger(createState(options.defaults, options.quirks));
    const store = options.store;
    // Recovery lifts the store's fence only now: every write sent before the failure was known was refused.
    this.#health = new Health(store === undefined, () =>
      Promise.resolve(store?.unfence?.())
        .then(() => store?.probe())
        .then(() => this.restore())
    );
    this.#decider = new Decider(this.#ledger, this.jobs, options.auditFolder);
    this.#snapshots = store === undefined ? undefined : new Snapshots(store, this.#ledger);
    this.#commit = commitFor({
      store,
      ledger: this.#ledger,
      decider: this.#decider,
      health: this.#health,
      snapshots: this.#snapshots,
      jobs: this.jobs,
      events: this.events,
      reloadJobs: this.#reloadJobs,
      inFlight: this.#inFlight,
      clock: this.#clock
    });
    // A write the store refused, whoever made it, fences the store: the state is reloaded once it
    // takes writes again (until then changes are refused and reads answer 503).
    store?.onFence?.((err) => {
      if (this.#health.restored) this.#health.fail(err);
    });
  }

  get state(): CoherencyState {
    return this.#ledger.state;
  }

  get defaults(): PolicyDefaults {
    return this.state.defaults;
  }

  /** False while the state cannot be vouched for: decisions then fail closed. */
  get healthy(): boolean {
    return this.#health.healthy;
  }

  /** Readiness: state rebuilt from the store, and the store has not failed since. */
  get ready(): { state: boolean; store: boolean } {
    return this.#health.ready;
  }

  /** Tells `observer` of each store outage as it starts and of the recovery that ends it. */
  observeHealth(observer: HealthObserver): void {
    this.#health.observe(observer);
  }

  /**
   * Rebuilds the state from the store (restore.ts) and takes up the stored flush jobs before the
   * service says it is ready: at the first start all of them; at a reload, those other replicas
   * promised meanwhile. Returns the number of effects applied after the snapshots.
   */
  async restore(): Promise<number> {
    const store = this.#store;
    if (store === undefined) return 0;
    const restored = await restoreState(store, this.#defaults, this.#quirks);
    if (!this.#health.restored) await this.#reloadJobs?.(false);
    else await this.#commit.reloaded();
    this.#ledger.reset(restored.state, restored.seq, restored.known);
    this.#snapshots?.clear();
    // Fold windows counted changes of the state now replaced: the next ones start anew.
    this.#decider.audit.clear();
    this.#health.markRestored();
    return restored.effects;
  }

  /**
   * The configured quirk list, and whether it differs from the list in force (kept by the store).
   * A differing list is never applied by itself: an operator applies it with PUT /v1/quirks.
   */
  configuredQuirks(): { readonly quirks: readonly Quirk[]; readonly inForce: boolean } {
    return { quirks: this.#quirks, inForce: sameQuirks(this.state.quirks.quirks, this.#quirks) };
  }

  /** Stops background recovery, trimming and following (on shutdown). */
  stop(): void {
    this.#health.stop();
    this.auditBudget.stop();
    this.#commit.stop();
  }

  /**
   * Applies a command. When the flush queue is full the command is refused before anything
   * changes (OverloadedError); otherwise every required flush joins a flush job.
   */
  async apply(cmd: Command, actor = 'anonymous'): Promise<Applied> {
    const dryRun = cmd.type === 'devctl' && cmd.dryRun === true;
    if (cmd.type === 'devctl' && dryRun) {
      // A dry run answers from memory: about a VM this replica did not follow, only once caught up.
      if (!this.#commit.serves(cmd.vmId)) await this.#commit.catchUp(0, cmd.vmId);
      if (!this.healthy || !this.#commit.serves(cmd.vmId)) return failClosedDevctl(cmd.write);
    }
    this.#health.assertHealthy();
    if (cmd.type === 'devctl' && dryRun) {
      const { decision } = applyCommand(this.state, cmd, this.#clock());
      const after = this.dependencies(cmd.vmId, decision, undefined, cmd);
      return { decision, revision: this.revisionOf(cmd.vmId), ...(after.length === 0 ? {} : { after }) };
    }
    // Backpressure refuses what would add obligations, never a change that only releases pages or
    // lowers exposure (an unpin, a teardown, a removal, a bit clear).
    this.jobs?.assertCapacity(cmd.type === 'put-quirks' ? undefined : cmd.vmId, addsObligations(this.state, cmd));
    // What is stored is what was decided: the policy resolved now, not the defaults of a later start.
    cmd = decidedCommand(this.state, cmd);
    // Teardown removes the VM: remember how it flushes before it is gone.
    const before = cmd.type === 'put-quirks' ? undefined : this.state.vms.get(cmd.vmId);
    // The flush jobs the decisions join are promised before the change is stored and stored with
    // it: no answer names a job a crash could lose. Their ranges join them once it is durable.
    const { result, seq, reserved, told, covered } = await this.#inFlight.track(this.#commit.commit({ cmd, at: this.#clock(), actor }));
    const jobIds = new Map<VmId, string>();
    for (const r of reserved) {
      this.jobs?.fill(r.id, r.pairs, r.pages);
      jobIds.set(r.vmId, r.id);
    }
    // A teardown's own flush covers the VM's outstanding ones: they are settled, and a VM made
    // again under its id starts with none.
    if (covered.length > 0 && cmd.type !== 'put-quirks') this.jobs?.settle(covered, jobIds.get(cmd.vmId) ?? null, cmd.type === 'delete-vm' ? cmd.vmId : undefined);
    for (const e of told) this.events.emit(e);
    if (cmd.type === 'put-quirks') {
      const vmAfter = new Map<VmId, readonly string[]>();
      for (const [vmId, decision] of result.vms ?? []) this.#onDecision(getVm(this.state, vmId), decision);
      for (const e of told) if ('after' in e && e.after !== undefined) vmAfter.set(e.vmId, e.after);
      return { ...result, revision: seq, vmJobIds: jobIds, vmAfter };
    }
    const vm = this.state.vms.get(cmd.vmId) ?? before;
    if (vm === undefined) return { ...result, revision: seq };
    this.#onDecision(vm, result.decision);
    const jobId = jobIds.get(cmd.vmId);
    // The answer depends on what the VM's stream is told it depends on.
    const own = told[0];
    const after = own !== undefined && 'after' in own ? own.after : undefined;
    return { ...result, revision: seq, ...(jobId === undefined ? {} : { jobId }), ...(after === undefined ? {} : { after }) };
  }

  /** The outstanding flush jobs a decision about VM `vmId` depends on (`flush.after`; see Decider.dependencies). */
  dependencies(vmId: VmId, decision: Decision, own?: string, cmd?: Command): string[] {
    return this.#decider.dependencies(vmId, decision, own, cmd);
  }

  /**
   * For ?wait=true: resolves once VM `vmId` has no outstanding replay the change could depend
   * on, so that the change is then decided with nothing to wait for; throws FlushAckTimeoutError
   * (nothing changed) when they are not acknowledged within `timeoutMs`. A DEVCTL write is asked
   * as a dry run (one that leaves the bit clear depends on nothing); any other change waits for
   * every outstanding replay of the VM.
   */
  async awaitDependencies(vmId: VmId, timeoutMs: number, write?: { bdf: PciAddress; write: { value?: number; nosnoopEnable?: boolean } }): Promise<void> {
    const jobs = this.jobs;
    if (jobs === undefined) return;
    // The replays outstanding are those of the VM as the store holds it.
    if (!this.#commit.serves(vmId)) await this.#commit.catchUp(0, vmId);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      let outstanding = jobs.outstanding(vmId, 'replay');
      if (outstanding.length > 0 && write !== undefined && this.healthy) {
        // The write's own dry run says what it would depend on; its errors (an unknown VM or
        // device) are the change's to answer.
        const dry = await this.apply({ type: 'devctl', vmId, bdf: write.bdf, write: write.write, dryRun: true }).catch(() => undefined);
        const deps = new Set(dry?.after ?? []);
        outstanding = outstanding.filter((job) => deps.has(job.id));
      }
      if (outstanding.length === 0) return;
      const left = deadline - performance.now();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        Promise.all(outstanding.map((job) => jobs.acked(job.id))).then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), Math.max(0, left));
        })
      ]);
      clearTimeout(timer);
      if (timedOut) throw new FlushAckTimeoutError(outstanding.map((job) => job.id), timeoutMs);
    }
  }

  /** The VMM reports a flush job done; undefined for an unknown job. Resolves once the record is kept. */
  async acknowledgeFlushJob(id: string, report: VmmReport): Promise<FlushJob | undefined> {
    if (this.jobs === undefined) return undefined;
    this.#health.restoring();
    if (this.jobs.get(id) === undefined) await this.#commit.learnJob(id);
    const acked = this.jobs.acknowledge(id, report);
    if (acked === undefined) return undefined;
    try {
      await acked.saved;
    } catch (err) {
      // Kept in memory, not in the store: the next acknowledgement of it tries again. The store
      // refused a write: the service reloads from it once it takes one again.
      this.#health.fail(err);
      throw new StoreUnavailableError('the acknowledgement could not be kept; send it again', { cause: err });
    }
    await this.#commit.acknowledged(acked.job.vmId, id, report);
    return acked.job;
  }

  /** A flush job, or undefined when unknown (or forgotten). */
  flushJob(id: string): FlushJob | undefined {
    this.#health.restoring();
    return this.jobs?.get(id);
  }

  /** Before reading job `id`: a replica that does not know it yet learns of it (another replica promised it). */
  async learnFlushJob(id: string): Promise<void> {
    this.#health.restoring();
    if (this.jobs !== undefined && this.jobs.get(id) === undefined) await this.#commit.learnJob(id);
  }

  /** Resolves once the job is done or failed (its ranges planned); undefined for an unknown job. */
  async settledFlushJob(id: string): Promise<FlushJob | undefined> {
    await this.learnFlushJob(id);
    if (this.jobs?.get(id) === undefined) return undefined;
    return this.jobs.wait(id);
  }

  /** A VM's flush jobs, oldest first, after job `afterId`. */
  flushJobs(vmId: VmId, afterId: string | undefined, limit: number): FlushJob[] {
    return this.jobs?.list(vmId, afterId, limit) ?? [];
  }

  /** Ids of the VM's flush jobs not finished yet. */
  openFlushJobs(vmId: VmId): string[] {
    return this.jobs?.open(vmId).map((j) => j.id) ?? [];
  }

  /** A VM's revision (0 for a VM that does not exist). */
  revisionOf(vmId: VmId): number {
    this.#commit.serves(vmId);
    return this.state.vms.get(vmId)?.revision ?? 0;
  }

  /** The audit trail: stored changes, oldest first. Empty without a store. */
  audit(query: AuditQuery): Promise<AuditEntry[]> {
    return this.#store?.audit(query) ?? Promise.resolve([]);
  }

  /**
   * Read-your-writes across replicas: before answering about VM `vmId`, apply what other replicas
   * stored of it (and of the quirk list), unless this replica follows the VM (it serves it) and
   * already applied a change of it at least as recent as `minRevision` (a revision from an
   * earlier answer, about any VM: changes of one VM get increasing revisions; 0: any). The VM is
   * served from then on. A replica that cannot reach the store fails closed.
   */
  catchUp(minRevision: number, vmId: VmId): Promise<void> {
    return this.#commit.catchUp(minRevision, vmId);
  }

  /**
   * Whether this replica may answer about VM `vmId` from memory now: with replicas, it follows
   * the VMs it serves (asked about lately, followed by a subscriber here, or waiting for its own
   * flush jobs' acknowledgements); about any other VM it catches up first (`catchUp`), and serves
   * it from then on. Always true without replicas.
   */
  serves(vmId: VmId): boolean {
    return this.#commit.serves(vmId);
  }

  /** Before listing every VM: with replicas, applies what the others stored of all of them. */
  catchUpAll(): Promise<void> {
    return this.#commit.catchUpAll();
  }

  /** Follows a shared store (see commit/follower.ts); nothing to follow for an embedded one. */
  follow(intervalMs = 5000): void {
    this.#commit.follow(intervalMs);
  }

  /**
   * Resolves once every change decided before it has been kept or refused: a read then shows
   * only what the store holds. Reads answer 503 when that left memory ahead of the store.
   */
  settledReads(): Promise<void> {
    return this.#inFlight.settled();
  }

  /**
   * Must the caller flush? When the state cannot be vouched for, the answer fails closed: every
   * range requires a flush, with a reason saying why (`failClosed`).
   */
  mustFlush(vmId: VmId, op: 'map' | 'unmap', ranges: readonly FlushQueryRange[] | FlushQueryColumns): FlushQueryColumnsAnswer & { failClosed?: 'STORE_UNAVAILABLE'; after?: readonly string[] } {
    const q = Array.isArray(ranges) ? flushQueryColumns(ranges as readonly FlushQueryRange[]) : (ranges as FlushQueryColumns);
    // A VM this replica did not follow is answered once caught up on (`catchUp` first); until then, as if the store were unavailable.
    if (this.healthy && this.#commit.serves(vmId)) {
      const answer = mustFlushColumns(this.state, vmId, op, q);
      // A map waits for the replays outstanding where devices may no-snoop, as the change would.
      const after = op === 'map' ? this.dependencies(vmId, answer.decision) : [];
      return after.length === 0 ? answer : { ...answer, after };
    }
    const out = new DecisionBuilder();
    const count = q.iova.length;
    for (let i = 0; i < count; i++) {
      const hpa = q.given?.[i]?.hpa;
      if (hpa !== undefined) out.flush(hpa, q.pages[i] as number, op === 'map' ? 'pin' : 'unpin');
    }
    const rule = op === 'map' ? 'F1' : 'F3';
    out.reason(rule, 'fail closed: the state store is unavailable or the state is not loaded, so every range is treated as needing a flush');
    const decision = out.build(true);
    return {
      decision: { ...decision, flush: { ...decision.flush, required: count > 0 } },
      required: new Uint8Array(count).fill(1),
      rules: new Array<RuleId>(count).fill(rule),
      failClosed: 'STORE_UNAVAILABLE'
    };
  }

  vm(vmId: VmId): VmView {
    this.#health.readable();
    this.#commit.serves(vmId);
    return viewVm(this.state, getVm(this.state, vmId));
  }

  /** VMs in id order, after `after` (exclusive), at most `limit`. */
  listVms(after: string | undefined, limit: number): VmView[] {
    this.#health.readable();
    const ids = [...this.state.vms.keys()].sort();
    const start = after === undefined ? 0 : ids.findIndex((id) => id > after);
    if (start < 0) return [];
    return ids.slice(start, start + limit).map((id) => viewVm(this.state, getVm(this.state, id)));
  }

  pins(vmId: VmId, fromPage: number, limit: number): PinnedRangeView[] {
    this.#health.readable();
    this.#commit.serves(vmId);
    return listPins(getVm(this.state, vmId), fromPage, limit);
  }

  quirks(): readonly Quirk[] {
    this.#health.readable();
    return this.state.quirks.quirks;
  }
}

function sameQuirks(a: readonly Quirk[], b: readonly Quirk[]): boolean {
  return JSON.stringify(a.map(quirkToWire)) === JSON.stringify(b.map(quirkToWire));
}
