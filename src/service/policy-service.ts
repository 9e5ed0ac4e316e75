/**
 * The shell around the decision core: owns the state, stamps commands with the time, and
 * answers the read-only questions. One writer at a time is guaranteed by JavaScript itself:
 * every command runs to completion synchronously.
 */
import {
  flushPairs,
  flushRangeCount,
  applyCommand,
  createState,
  decidedCommand,
  decodeVm,
  encodeVmRecord,
  PIN_OP_STRIDE,
  PinMap,
  parseQuirkFile,
  quirkToWire,
  DecisionBuilder,
  DEVCTL_NOSNOOP_EN,
  DEVCTL_RESET_DEFAULT,
  getVm,
  listPins,
  flushQueryColumns,
  mustFlushColumns,
  viewVm,
  waitsForReplays,
  type CoherencyState,
  type Command,
  type CommandResult,
  type FlushQueryColumns,
  type FlushQueryColumnsAnswer,
  type RuleId,
  type FlushQueryRange,
  type PinnedRangeView,
  type PolicyDefaults,
  type Quirk,
  type Decision,
  type PciAddress,
  type Vm,
  type VmId,
  type VmView
} from '../domain/index.js';
import { FlushAckTimeoutError, type FlushJob, type FlushJobs, type JobHeader, type VmmReport } from '../jobs/flush-jobs.js';

export type { FlushJob } from '../jobs/flush-jobs.js';
import { applyEffect, decideChange, quirkFileJson } from './change.js';
import { VmEvents, type VmEventInput } from './vm-events.js';
import { auditOf, isShared, NotReadyError, QUIRKS_EFFECT, StoreUnavailableError, type AuditEntry, type AuditQuery, type EventCursor, type Missed, type SharedStateStore, type StateStore, type StoredChange, type StoredEffect, type StoredJobPart, type WriteScope } from '../store/state-store.js';

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
  /** How long the audit trail keeps a change (ms); default 30 days. */
  readonly auditRetentionMs?: number;
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
  #state: CoherencyState;
  readonly jobs: FlushJobs | undefined;
  readonly #defaults: PolicyDefaults;
  readonly #quirks: readonly Quirk[];
  #recovery: NodeJS.Timeout | null = null;
  readonly #clock: () => number;
  readonly #onDecision: (vm: Pick<Vm, 'id' | 'arch'>, decision: Decision) => void;
  readonly #store: StateStore | undefined;
  /** The last change stored (its sequence number). */
  #seq = 0;
  /**
   * Per VM (and for the quirk list, QUIRKS_EFFECT), the sequence number of the last change to it
   * applied here: with a shared store, what this replica asks the others' changes after.
   */
  #known = new Map<string, number>();
  /** Set when the store failed: the in-memory state may be ahead of what is durable. */
  #failure: Error | null = null;
  #restored = false;

  constructor(options: PolicyServiceOptions) {
    this.#defaults = options.defaults;
    this.#quirks = options.quirks;
    this.#state = createState(options.defaults, options.quirks);
    this.#clock = options.clock ?? Date.now;
    this.jobs = options.jobs;
    this.#onDecision = options.onDecision ?? (() => undefined);
    this.#store = options.store;
    this.#restored = options.store === undefined;
    this.auditRetentionMs = options.auditRetentionMs ?? 30 * 86_400_000;
    this.events = options.events ?? new VmEvents();
    this.#reloadJobs = options.reloadJobs;
    // A write the store refused, whoever made it, fences the store: the state is reloaded once it
    // takes writes again (until then changes are refused and reads answer 503).
    options.store?.onFence?.((err) => {
      if (this.#restored) this.#fail(err);
    });
  }

  readonly #reloadJobs: ((remote: boolean) => Promise<void>) | undefined;

  /** Each VM's recent events, for its VMM to follow. */
  readonly events: VmEvents;

  /** How long the audit trail keeps a change (ms). */
  readonly auditRetentionMs: number;
  #trimmer: NodeJS.Timeout | null = null;

  /** The oldest time the audit trail still covers: changes before it were forgotten. */
  get auditKeptSince(): number {
    return this.#clock() - this.auditRetentionMs;
  }

  /** Forgets audit entries past their retention now, then every hour. */
  trimAudit(): void {
    const store = this.#store;
    if (store === undefined || this.#trimmer !== null) return;
    const trim = (): void => {
      // A failure is retried at the next round; the trail only keeps a little longer.
      store.trimAudit(this.auditKeptSince).catch(() => undefined);
    };
    trim();
    this.#trimmer = setInterval(trim, 3_600_000).unref();
  }

  get state(): CoherencyState {
    return this.#state;
  }

  /** False while the state cannot be vouched for: decisions then fail closed. */
  get healthy(): boolean {
    return this.#failure === null && this.#restored;
  }

  /** Readiness: state rebuilt from the store, and the store has not failed since. */
  get ready(): { state: boolean; store: boolean } {
    return { state: this.#restored, store: this.#failure === null };
  }

  /**
   * Rebuilds the state from the store: each VM's snapshot, then the effects stored after it, as
   * they were decided (nothing is decided again). A store written by 0.1.0 (commands to replay)
   * is migrated first. Returns the number of effects applied after the snapshots.
   */
  async restore(): Promise<number> {
    const store = this.#store;
    if (store === undefined) return 0;
    // The log starts from the quirk list in force when it began (the first start's), whatever
    // the configured list says now: a restart re-decides nothing.
    const first = await store.meta('quirks', JSON.stringify({ quirks: this.#quirks.map(quirkToWire) }));
    const initial = parseQuirkFile(JSON.parse(first));
    await this.#migrate(store, initial);
    const loaded = await store.load();
    // Built into a fresh state, swapped in only when complete, in slices that leave the event
    // loop free (liveness probes answer throughout a restore of millions of ranges).
    const state = createState(this.#defaults, initial);
    const known = new Map<string, number>();
    for (const s of loaded.snapshots) {
      state.vms.set(s.vmId as VmId, decodeVm(s.record, await pinsOf(s.pins)));
      known.set(s.vmId, s.seq);
    }
    let applied = 0;
    for (const e of loaded.effects) {
      applyEffect(state, e);
      known.set(e.vmId, e.seq);
      applied += e.ops === null ? 1 : e.ops.length / PIN_OP_STRIDE;
      if (applied >= RESTORE_SLICE) {
        applied = 0;
        await yieldToLoop();
      }
    }
    // A reload after the first: the jobs other replicas promised meanwhile are taken up from the store.
    // The stored flush jobs are taken up before the service says it is ready: at the first start
    // all of them; at a reload with replicas, those other replicas promised meanwhile.
    if (!this.#restored) await this.#reloadJobs?.(false);
    else if (isShared(store)) await this.#reloadJobs?.(true);
    this.#state = state;
    this.#seq = loaded.seq;
    this.#known = known;
    this.#sinceSnapshot.clear();
    this.#restored = true;
    return loaded.effects.length;
  }

  /** A 0.1.0 store holds commands: replay them once through the core and keep what they decided. */
  async #migrate(store: StateStore, initial: readonly Quirk[]): Promise<void> {
    const legacy = await store.legacy();
    if (legacy === null) return;
    const state = createState(this.#defaults, initial);
    let seq = 0;
    for (const c of legacy) {
      decideChange(state, c.command, c.at, c.seq);
      seq = c.seq;
      if (seq % 1000 === 0) await yieldToLoop();
    }
    const snapshots = [...state.vms.values()].map((vm) => ({ vmId: vm.id, seq, record: encodeVmRecord(vm), pins: vm.pins.toArray() }));
    await store.migrated(snapshots, quirkFileJson(state.quirks.quirks), seq);
  }

  /**
   * The configured quirk list, and whether it differs from the list in force (kept by the store).
   * A differing list is never applied by itself: an operator applies it with PUT /v1/quirks.
   */
  configuredQuirks(): { readonly quirks: readonly Quirk[]; readonly inForce: boolean } {
    return { quirks: this.#quirks, inForce: sameQuirks(this.state.quirks.quirks, this.#quirks) };
  }

  /**
   * After a store failure memory may hold a change that is not durable. Until the store takes a
   * real write again and the state is rebuilt from it, changes are refused and decisions fail
   * closed; this retries every second, and the service recovers by itself when the store does.
   */
  #startRecovery(): void {
    const store = this.#store;
    if (this.#recovery !== null || store === undefined) return;
    const attempt = (): void => {
      // The fence comes down only now: every write sent before the failure was known was refused.
      Promise.resolve(store.unfence?.())
        .then(() => store.probe())
        .then(() => this.restore())
        .then(
          () => {
            this.#failure = null;
            this.#recovery = null;
          },
          () => {
            this.#recovery = setTimeout(attempt, 1000).unref();
          }
        );
    };
    this.#recovery = setTimeout(attempt, 1000).unref();
  }

  /** A dry-run DEVCTL question while the state cannot be vouched for: deny, keep the bit clear. */
  #failClosedDevctl(write: { value?: number; nosnoopEnable?: boolean }): Applied & { failClosed: 'STORE_UNAVAILABLE' } {
    const value = write.value ?? (write.nosnoopEnable === true ? DEVCTL_RESET_DEFAULT : DEVCTL_RESET_DEFAULT & ~DEVCTL_NOSNOOP_EN);
    const cleared = value & ~DEVCTL_NOSNOOP_EN;
    const out = new DecisionBuilder();
    out.reason('W4', 'fail closed: the state store is unavailable or the state is not loaded, so Enable No Snoop is denied');
    return { decision: out.build(true, { decision: 'deny', hardwareValue: cleared, guestValue: cleared }), failClosed: 'STORE_UNAVAILABLE' };
  }

  /** Stops background recovery and following (on shutdown). */
  stop(): void {
    if (this.#recovery !== null) clearTimeout(this.#recovery);
    if (this.#trimmer !== null) clearInterval(this.#trimmer);
    this.#trimmer = null;
    if (this.#follower !== null) clearInterval(this.#follower);
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#retry = null;
    this.#unwatch?.();
    this.#unwatch = null;
    this.#recovery = null;
    this.#follower = null;
  }

  get defaults(): PolicyDefaults {
    return this.state.defaults;
  }

  /**
   * Applies a command. When the flush queue is full the command is refused before anything
   * changes (OverloadedError); otherwise every required flush joins a flush job.
   */
  async apply(cmd: Command, actor = 'anonymous'): Promise<Applied> {
    const dryRun = cmd.type === 'devctl' && cmd.dryRun === true;
    if (!this.healthy) {
      if (cmd.type === 'devctl' && dryRun) return this.#failClosedDevctl(cmd.write);
      throw new StoreUnavailableError('the state cannot be vouched for: the store failed or has not been loaded; refusing changes', { cause: this.#failure ?? undefined });
    }
    // Backpressure refuses what would add obligations, never a change that only releases pages or
    // lowers exposure (an unpin, a teardown, a removal, a bit clear).
    if (!dryRun) this.jobs?.assertCapacity(cmd.type === 'put-quirks' ? undefined : cmd.vmId, addsObligations(this.state, cmd));
    // What is stored is what was decided: the policy resolved now, not the defaults of a later start.
    if (!dryRun) cmd = decidedCommand(this.state, cmd);
    // Teardown removes the VM: remember how it flushes before it is gone.
    const before = cmd.type === 'put-quirks' ? undefined : this.state.vms.get(cmd.vmId);
    const at = this.#clock();
    if (cmd.type === 'devctl' && dryRun) {
      const { decision } = applyCommand(this.state, cmd, at);
      const after = this.dependencies(cmd.vmId, decision, undefined, cmd);
      return { decision, revision: this.revisionOf(cmd.vmId), ...(after.length === 0 ? {} : { after }) };
    }
    const store = this.#store;
    let result: CommandResult;
    let seq: number;
    // The flush jobs the decisions join are promised before the change is stored and stored with
    // it: no answer names a job a crash could lose. Their ranges join them once it is durable.
    let reserved: Reservation[];
    let told: VmEventInput[];
    let covered: readonly string[];
    if (store !== undefined && isShared(store)) {
      // Replicas share the log: decided inside the store's transaction, with the changes that
      // arrived meanwhile (group commit), after applying what the others stored.
      ({ result, seq, reserved, told, covered } = await this.#committing(
        new Promise<Decided>((resolve, reject) => {
          this.#queued.push({ cmd, at, actor, resolve, reject });
          if (!this.#groupCommitting) void this.#commitQueued();
        })
      ));
    } else {
      const d = this.#decide(cmd, at, actor, before, false);
      ({ result, seq, reserved, told, covered } = d);
      const effects = d.change.effects;
      try {
        await this.#committing(this.#persist(d.change));
      } catch (err) {
        for (const r of reserved) this.jobs?.cancel(r.id);
        throw err;
      }
      this.#snapshotIfDue(effects);
    }
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

  /**
   * What a change tells each VM's stream: its decision (`decision`, `policy` or `deleted`) with
   * the job carrying its flush and the outstanding jobs it depends on (`flush.after`).
   */
  #eventsOf(cmd: Command, result: CommandResult, seq: number, actor: string, reserved: readonly Reservation[]): VmEventInput[] {
    const jobOf = (vmId: VmId): { jobId?: string } => {
      const r = reserved.find((x) => x.vmId === vmId);
      return r === undefined ? {} : { jobId: r.id };
    };
    if (cmd.type === 'put-quirks') {
      return [...(result.vms ?? new Map<VmId, Decision>())].map(([vmId, decision]) => {
        const job = jobOf(vmId);
        const after = this.dependencies(vmId, decision, job.jobId);
        return { type: 'decision', vmId, revision: seq, command: cmd.type, actor, decision, ...job, ...(after.length === 0 ? {} : { after }) };
      });
    }
    if (this.state.vms.get(cmd.vmId) === undefined && cmd.type !== 'delete-vm') return [];
    const job = jobOf(cmd.vmId);
    const after = this.dependencies(cmd.vmId, result.decision, job.jobId, cmd);
    const told = { vmId: cmd.vmId, revision: seq, actor, decision: result.decision, ...job, ...(after.length === 0 ? {} : { after }) };
    if (cmd.type === 'delete-vm') return [{ type: 'deleted', ...told }];
    if (cmd.type === 'put-vm') return [{ type: 'policy', ...told }];
    return [{ type: 'decision', ...told, command: cmd.type }];
  }

  /**
   * The outstanding flush jobs a decision about VM `vmId` depends on (`flush.after`): every
   * replay (F2) of the VM not acknowledged yet, whichever answer, caller or replica it came from,
   * when the change (`cmd`, when there is one) leaves a domain of the VM exposed
   * (waitsForReplays, one rule for changes, dry runs, map questions and ?wait=true). The
   * decision's own job (`own`) is not among them: its answer already says to flush first. Empty
   * for a VM no longer there, and for flushes promised where they count as done once answered
   * (FLUSH_ACKS=answered).
   */
  dependencies(vmId: VmId, decision: Decision, own?: string, cmd?: Command): string[] {
    const outstanding = this.jobs?.outstanding(vmId, 'replay') ?? [];
    if (outstanding.length === 0) return [];
    const vm = this.state.vms.get(vmId);
    if (vm === undefined || !waitsForReplays(vm, this.state.quirks, decision, cmd)) return [];
    return outstanding.flatMap((job) => (job.id === own ? [] : [job.id]));
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
    this.#restoring();
    const store = this.#store;
    // A job another replica promised a moment ago: catch up on its VM first, as a change does.
    if (this.jobs.get(id) === undefined && store !== undefined && isShared(store) && this.healthy) {
      const vmId = await store.jobVm(id).catch((err: unknown) => {
        throw new StoreUnavailableError('the store could not be asked about the flush job; send it again', { cause: err });
      });
      if (vmId !== null) await this.catchUp(Number.MAX_SAFE_INTEGER, vmId as VmId);
    }
    const acked = this.jobs.acknowledge(id, report);
    if (acked === undefined) return undefined;
    try {
      await acked.saved;
    } catch (err) {
      // Kept in memory, not in the store: the next acknowledgement of it tries again. The store
      // refused a write: the service reloads from it once it takes one again.
      this.#fail(err);
      throw new StoreUnavailableError('the acknowledgement could not be kept; send it again', { cause: err });
    }
    if (store !== undefined && isShared(store)) {
      // The other replicas count it done once they hear of it; until then they keep waiting for
      // it (safe), and a restart reads the record kept above.
      const published: Published = { type: 'ack', vmId: acked.job.vmId, jobId: id, report };
      await store.publish({ vmId: acked.job.vmId, body: JSON.stringify(published) }).catch(() => undefined);
    }
    return acked.job;
  }

  // ---- flush jobs, for the HTTP layer (which talks to this service only) -------------------

  /** A flush job, or undefined when unknown (or forgotten). */
  flushJob(id: string): FlushJob | undefined {
    this.#restoring();
    return this.jobs?.get(id);
  }

  /** Resolves once the job is done or failed (its ranges planned); undefined for an unknown job. */
  async settledFlushJob(id: string): Promise<FlushJob | undefined> {
    this.#restoring();
    if (this.jobs?.get(id) === undefined) return undefined;
    return this.jobs.wait(id);
  }

  /** A VM's flush jobs, oldest first, after job `afterId`. */
  flushJobs(vmId: VmId, afterId: string | undefined, limit: number): FlushJob[] {
    return this.jobs?.list(vmId, afterId, limit) ?? [];
  }

  /** A VM's revision (0 for a VM that does not exist). */
  revisionOf(vmId: VmId): number {
    return this.state.vms.get(vmId)?.revision ?? 0;
  }

  /** Ids of the VM's flush jobs not finished yet. */
  openFlushJobs(vmId: VmId): string[] {
    return this.jobs?.open(vmId).map((j) => j.id) ?? [];
  }

  /** The audit trail: stored changes, oldest first. Empty without a store. */
  audit(query: AuditQuery): Promise<AuditEntry[]> {
    return this.#store?.audit(query) ?? Promise.resolve([]);
  }

  /**
   * Read-your-writes across replicas: before answering about VM `vmId`, apply what other replicas
   * stored of it (and of the quirk list), unless this replica already applied a change of the VM
   * at least as recent as `minRevision` (a revision from an earlier answer, about any VM: changes
   * of one VM get increasing revisions). A replica that cannot reach the store fails closed.
   */
  async catchUp(minRevision: number, vmId: VmId): Promise<void> {
    await this.settledReads();
    const store = this.#store;
    if (store === undefined || !isShared(store) || !this.healthy || this.#caughtUp(vmId, minRevision)) return;
    await this.#exclusive(async () => {
      if (this.#caughtUp(vmId, minRevision)) return;
      try {
        this.#replay(await store.since([vmId], this.#known));
      } catch (err) {
        this.#fail(err);
      }
    });
  }

  #caughtUp(vmId: VmId, minRevision: number): boolean {
    return minRevision <= 0 || (this.#known.get(vmId) ?? 0) >= minRevision;
  }

  /** Applies what other replicas stored of every VM since this replica last looked. */
  async #catchUpAll(): Promise<void> {
    const store = this.#store as SharedStateStore;
    await this.#exclusive(async () => {
      if (!this.healthy) return;
      try {
        this.#replay(await store.since(null, this.#known));
      } catch (err) {
        this.#fail(err);
      }
    });
  }

  /**
   * Follows a shared store: applies other replicas' changes as soon as the store notifies them
   * (and every `intervalMs`, in case a notification was lost), and hands the events they
   * published to this replica's subscribers: their decisions, and acknowledgements of flush jobs.
   */
  follow(intervalMs = 5000): void {
    const store = this.#store;
    if (store === undefined || !isShared(store) || this.#follower !== null) return;
    this.#follower = setInterval(() => {
      this.#refreshRemote = true;
      this.#sync();
    }, intervalMs).unref();
    this.#unwatch = store.watch(() => this.#sync());
  }

  /** Changes waiting for the next shared transaction, in arrival order (group commit). */
  #queued: Queued[] = [];
  #groupCommitting = false;

  /** Commits queued changes, as many as have arrived, one transaction at a time. */
  async #commitQueued(): Promise<void> {
    this.#groupCommitting = true;
    try {
      while (this.#queued.length > 0) {
        const batch = this.#queued.splice(0, GROUP_COMMIT_MAX);
        await this.#exclusive(() => this.#commitBatch(batch));
      }
    } finally {
      this.#groupCommitting = false;
    }
  }

  /**
   * One shared transaction: holds the locks of the VMs the batch changes (of the whole store when
   * it changes the quirk list), applies what the other replicas stored of them, decides each
   * queued change in order (a refused one is answered its refusal, the others go on), stores
   * them together. When the store fails after changes were decided, memory is ahead of it: every
   * change of the batch is refused and the replica fails closed until it has reloaded.
   */
  async #commitBatch(batch: readonly Queued[]): Promise<void> {
    const store = this.#store as SharedStateStore;
    const scope: WriteScope = batch.some((q) => q.cmd.type === 'put-quirks') ? 'all' : batch.map((q) => (q.cmd as Exclude<Command, { type: 'put-quirks' }>).vmId);
    const decided: { q: Queued; d: Decided }[] = [];
    const refused = new Map<Queued, unknown>();
    // A commit fence: changes queued behind one the store refused were not decided yet, but this
    // replica's memory may be ahead of the store until it has reloaded: refuse them.
    if (!this.healthy) {
      const err = new StoreUnavailableError('an earlier change could not be kept and the state is being reloaded from the store; nothing was changed', { cause: this.#failure ?? undefined });
      for (const q of batch) q.reject(err);
      return;
    }
    try {
      await store.write(scope, this.#known, batch.length, (missed, seqs) => {
        this.#replay(missed);
        for (const q of batch) {
          try {
            // Teardown removes the VM: how it flushes is read before it is gone.
            const before = q.cmd.type === 'put-quirks' ? undefined : this.state.vms.get(q.cmd.vmId);
            decided.push({ q, d: this.#decide(q.cmd, q.at, q.actor, before, true, seqs[decided.length]) });
          } catch (err) {
            refused.set(q, err);
          }
        }
        return decided.map((x) => x.d.change);
      });
    } catch (err) {
      for (const { d } of decided) for (const r of d.reserved) this.jobs?.cancel(r.id);
      if (decided.length > 0 || err instanceof StoreUnavailableError) this.#fail(err);
      // A change refused by itself keeps its refusal; every other one gets the store's error.
      for (const q of batch) q.reject(refused.has(q) ? refused.get(q) : err);
      return;
    }
    for (const [q, err] of refused) q.reject(err);
    for (const { q, d } of decided) {
      this.#snapshotIfDue(d.change.effects);
      q.resolve(d);
    }
  }

  #follower: NodeJS.Timeout | null = null;
  #retry: NodeJS.Timeout | null = null;
  /** How long the next round waits for events held behind a running transaction (ms). */
  #heldFor = 0;
  #unwatch: (() => void) | null = null;
  #syncing = false;
  #again = false;
  /** Where in the store's events this replica handed them on up to (null: from now on). */
  #eventsAt: EventCursor | null = null;

  /** One round of following at a time; a notification meanwhile asks for one more. */
  #sync(): void {
    if (this.#syncing) {
      this.#again = true;
      return;
    }
    this.#syncing = true;
    this.#followRound()
      .catch(() => undefined)
      .finally(() => {
        this.#syncing = false;
        if (this.#again) {
          this.#again = false;
          this.#sync();
        }
      });
  }

  async #followRound(): Promise<void> {
    const store = this.#store as SharedStateStore;
    // A replica that cannot vouch for its state hands nothing on: its events could name jobs
    // it has not taken up yet. It resumes from where it was once it has recovered.
    if (!this.healthy) return;
    await this.#catchUpAll();
    if (!this.healthy) return;
    if (this.#refreshRemote) await this.#refreshRemoteJobs();
    for (;;) {
      const { events, next, gone, more, held } = await store.eventsAfter(this.#eventsAt);
      if (gone) await this.#refreshRemoteJobs();
      // Stopped meanwhile (shutdown): nothing more is handed on, and the position stays for a restart of following.
      if (this.#follower === null) return;
      if (gone) this.events.resetAll('events made through another replica are no longer held: re-read the VM');
      this.#eventsAt = next;
      for (const e of events) await this.#published(JSON.parse(e.body) as Published);
      // Events stored behind a transaction still running: another round soon (sooner than the
      // notification of a transaction that sends none), backing off while it runs on.
      this.#heldFor = held ? Math.min(HELD_RETRY_MAX_MS, this.#heldFor * 2 || HELD_RETRY_MS) : 0;
      if (held && !more && this.#retry === null) {
        this.#retry = setTimeout(() => {
          this.#retry = null;
          this.#sync();
        }, this.#heldFor).unref();
      }
      if (!more) return;
    }
  }

  /** Set by the periodic round: read again the records of other replicas' jobs still outstanding here. */
  #refreshRemote = false;

  /**
   * Acknowledgements this replica may have missed (it could not hear while they were published):
   * the records of other replicas' jobs still outstanding here say whether they were acknowledged.
   */
  async #refreshRemoteJobs(): Promise<void> {
    this.#refreshRemote = false;
    const jobs = this.jobs;
    const ids = jobs?.remoteOutstanding() ?? [];
    if (jobs === undefined || ids.length === 0) return;
    const records = await (this.#store as SharedStateStore).jobRecords(ids);
    for (const r of records) jobs.refresh((JSON.parse(r.body) as { job: FlushJob }).job);
  }

  /** An event another replica published: a change's event for the VM's stream, or an acknowledgement. */
  async #published(event: Published): Promise<void> {
    if (event.type === 'ack') {
      // Kept by the replica that took it; this one now counts the flush as done too.
      const acked = this.jobs?.acknowledge(event.jobId, event.report ?? {});
      await acked?.saved.catch(() => undefined);
      return;
    }
    // The change behind it is applied first: a VMM reading the VM then sees it.
    await this.catchUp(event.revision, event.vmId);
    this.events.emit(event);
  }
  #lock: Promise<unknown> = Promise.resolve();

  /** Runs `fn` after every earlier exclusive section of this replica has finished. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Applies what other replicas stored, as they decided it: a VM whose effects after what this
   * replica knew were dropped for a snapshot starts from that snapshot. Adopts the flush jobs
   * their changes promised: answers here then list them in `flush.after` until acknowledged.
   */
  #replay(missed: Missed): void {
    for (const s of missed.snapshots) {
      const pins = new PinMap();
      pins.insertMany(s.pins);
      this.state.vms.set(s.vmId as VmId, decodeVm(s.record, pins));
      this.#known.set(s.vmId, s.seq);
    }
    for (const e of missed.effects) {
      // Already applied (a snapshot covers it): per VM, changes come in order.
      if (e.seq <= (this.#known.get(e.vmId) ?? 0)) continue;
      applyEffect(this.state, e);
      this.#known.set(e.vmId, e.seq);
      if (e.seq > this.#seq) this.#seq = e.seq;
    }
    for (const part of missed.jobs) this.jobs?.adopt(part.id, JSON.parse(part.header) as JobHeader, part.pairs);
    // A VM another replica tore down: its teardown covered the flushes outstanding here.
    for (const e of missed.effects) {
      if (e.record === null && e.vmId !== QUIRKS_EFFECT && !this.state.vms.has(e.vmId as VmId) && this.jobs !== undefined) {
        this.jobs.settle(this.jobs.outstanding(e.vmId as VmId).map((j) => j.id), null, e.vmId as VmId);
      }
    }
  }

  /**
   * Per VM, changes and pin operations stored since its last snapshot. When they outgrow the VM
   * (more operations than it has ranges, or many small changes) the VM is snapshotted and its
   * effects before it dropped: the store and restart follow live state, not history.
   */
  readonly #sinceSnapshot = new Map<string, { changes: number; ops: number }>();

  #snapshotIfDue(effects: readonly StoredEffect[]): void {
    const store = this.#store;
    if (store === undefined) return;
    for (const e of effects) {
      if (e.vmId === QUIRKS_EFFECT) continue;
      if (e.record === null) {
        this.#sinceSnapshot.delete(e.vmId);
        continue;
      }
      const since = this.#sinceSnapshot.get(e.vmId) ?? { changes: 0, ops: 0 };
      since.changes++;
      since.ops += e.ops === null ? 0 : e.ops.length / PIN_OP_STRIDE;
      this.#sinceSnapshot.set(e.vmId, since);
      const vm = this.state.vms.get(e.vmId as VmId);
      if (vm === undefined || (since.ops < Math.max(SNAPSHOT_MIN_OPS, vm.pins.size) && since.changes < SNAPSHOT_MAX_CHANGES)) continue;
      this.#sinceSnapshot.delete(e.vmId);
      // Ordered after every change already made: kept only if they are. A failure loses nothing
      // (the effects stay); the next change tries again.
      store.snapshot({ vmId: vm.id, seq: this.#known.get(vm.id) ?? this.#seq, record: encodeVmRecord(vm), pins: vm.pins.toArray() }).catch(() => undefined);
    }
  }

  #fail(err: unknown): void {
    this.#failure ??= err instanceof Error ? err : new Error(String(err));
    this.#startRecovery();
  }

  /** The answer waits for this: a change is acknowledged only once it is durable. */
  async #persist(stored: StoredChange): Promise<void> {
    if (this.#store === undefined) return;
    try {
      await this.#store.append([stored]);
    } catch (err) {
      // Memory is now ahead of the store: refuse changes until the state is rebuilt from it.
      this.#fail(err);
      throw err instanceof StoreUnavailableError ? err : new StoreUnavailableError('the store could not keep the change', { cause: err });
    }
  }

  /**
   * Decides `cmd` on the current state and records what the store keeps: its effects (the pin
   * maps' journals and the VMs' records), the flush jobs promised for its decisions and its audit
   * entry, under the next sequence number.
   */
  #decide(cmd: Command, at: number, actor: string, before: Vm | undefined, shared: boolean, given?: number): Decided {
    // A shared store gives the sequence number (unique across replicas); an embedded one counts.
    const seq = given ?? this.#seq + 1;
    if (seq > this.#seq) this.#seq = seq;
    const change = decideChange(this.state, cmd, at, seq);
    let result = change.result;
    const effects = change.effects;
    // A teardown (the VM deleted, or its last domain removed) flushes, with its own flush, the
    // ranges of every flush of the VM still outstanding: those are settled once it is kept.
    let covered: string[] = [];
    if (this.jobs !== undefined && (cmd.type === 'delete-vm' || (cmd.type === 'delete-domain' && this.state.vms.get(cmd.vmId)?.domains.size === 0))) {
      const outstanding = this.jobs.outstandingPairs(cmd.vmId);
      if (outstanding.ids.length > 0) {
        result = { ...result, decision: withCovered(result.decision, outstanding.pairs, outstanding.ids.length) };
        covered = outstanding.ids;
      }
    }
    for (const e of effects) this.#known.set(e.vmId, seq);
    const reserved = this.#reserve(cmd, result, before);
    const told = this.#eventsOf(cmd, result, seq, actor, reserved);
    // Replicas sharing the store hand a change's events to their own subscribers.
    const events = shared ? told.map((e) => ({ vmId: e.vmId, body: JSON.stringify(e) })) : undefined;
    return {
      result,
      seq,
      reserved,
      told,
      covered,
      change: { seq, at, command: auditOf(cmd), effects, jobs: reserved.map(jobPart), actor, rules: rulesOf(result), ...(events === undefined ? {} : { events }) }
    };
  }

  /** Promises each required flush of the command's decisions to a job (see `apply`). */
  #reserve(cmd: Command, result: CommandResult, before: Vm | undefined): Reservation[] {
    const jobs = this.jobs;
    if (jobs === undefined) return [];
    const decisions: [Vm | undefined, Decision][] =
      cmd.type === 'put-quirks' ? [...(result.vms ?? new Map<VmId, Decision>())].map(([vmId, d]) => [this.state.vms.get(vmId), d]) : [[this.state.vms.get(cmd.vmId) ?? before, result.decision]];
    const out: Reservation[] = [];
    for (const [vm, decision] of decisions) {
      const flush = decision.flush;
      if (vm === undefined || !flush.required || flush.cause === null || flushRangeCount(flush) === 0) continue;
      const { id, header } = jobs.reserve(vm.id, vm.arch, vm.policy, flush.cause, flush.pages);
      out.push({ id, vmId: vm.id, header, pairs: flushPairs(flush), pages: flush.pages });
    }
    return out;
  }

  /**
   * Must the caller flush? When the state cannot be vouched for, the answer fails closed: every
   * range requires a flush, with a reason saying why (`failClosed`).
   */
  mustFlush(vmId: VmId, op: 'map' | 'unmap', ranges: readonly FlushQueryRange[] | FlushQueryColumns): FlushQueryColumnsAnswer & { failClosed?: 'STORE_UNAVAILABLE'; after?: readonly string[] } {
    const q = Array.isArray(ranges) ? flushQueryColumns(ranges as readonly FlushQueryRange[]) : (ranges as FlushQueryColumns);
    if (this.healthy) {
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


  /**
   * Reads answer only what the store holds: while the state is being restored, 503 NOT_READY
   * (never a 404 for something the store may hold); after a store failure, until the state is
   * reloaded, 503 STORE_UNAVAILABLE (memory may hold a change that was refused).
   */
  #readable(): void {
    this.#restoring();
    if (this.#failure !== null) throw new StoreUnavailableError('a change could not be kept and the state is being reloaded from the store; retry shortly', { cause: this.#failure });
  }

  /** While the state (and the flush jobs) are being restored, nothing held can be answered for. */
  #restoring(): void {
    if (!this.#restored) throw new NotReadyError('the state is being restored from the store; retry shortly');
  }

  /**
   * Resolves once every change decided before it has been kept or refused: a read then shows
   * only what the store holds (a change decided in memory but still being committed could yet
   * be refused). Reads answer 503 when that left memory ahead of the store (`#readable`).
   */
  async settledReads(): Promise<void> {
    if (this.#commits.size > 0) await Promise.allSettled([...this.#commits]);
  }

  /** Changes decided and being committed (their promises settle once kept or refused). */
  readonly #commits = new Set<Promise<unknown>>();

  #committing<T>(commit: Promise<T>): Promise<T> {
    this.#commits.add(commit);
    const done = (): void => {
      this.#commits.delete(commit);
    };
    commit.then(done, done);
    return commit;
  }

  vm(vmId: VmId): VmView {
    this.#readable();
    return viewVm(this.state, getVm(this.state, vmId));
  }

  /** VMs in id order, after `after` (exclusive), at most `limit`. */
  listVms(after: string | undefined, limit: number): VmView[] {
    this.#readable();
    const ids = [...this.state.vms.keys()].sort();
    const start = after === undefined ? 0 : ids.findIndex((id) => id > after);
    if (start < 0) return [];
    return ids.slice(start, start + limit).map((id) => viewVm(this.state, getVm(this.state, id)));
  }

  pins(vmId: VmId, fromPage: number, limit: number): PinnedRangeView[] {
    this.#readable();
    return listPins(getVm(this.state, vmId), fromPage, limit);
  }

  quirks(): readonly Quirk[] {
    this.#readable();
    return this.state.quirks.quirks;
  }
}

function sameQuirks(a: readonly Quirk[], b: readonly Quirk[]): boolean {
  return JSON.stringify(a.map(quirkToWire)) === JSON.stringify(b.map(quirkToWire));
}

/** The rule ids a command's decisions named, once each, for the audit trail. */
function rulesOf(result: CommandResult): string[] {
  const rules = new Set(result.decision.reasons.map((r) => r.rule));
  for (const d of result.vms?.values() ?? []) for (const r of d.reasons) rules.add(r.rule);
  return [...rules];
}

/** Ranges (or pin operations) restored between two turns of the event loop. */
const RESTORE_SLICE = 65_536;

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A VM's pin map from its snapshot, built in slices (see `restore`). */
async function pinsOf(ranges: Float64Array): Promise<PinMap> {
  const pins = new PinMap();
  for (let from = 0; from < ranges.length; from += 4 * RESTORE_SLICE) {
    pins.insertMany(ranges.subarray(from, from + 4 * RESTORE_SLICE));
    if (from + 4 * RESTORE_SLICE < ranges.length) await yieldToLoop();
  }
  return pins;
}

/** What replicas publish to each other: a change's event for a VM's stream, or an acknowledgement. */
type Published = Exclude<VmEventInput, { type: 'reset' | 'flush-job' }> | { readonly type: 'ack'; readonly vmId: VmId; readonly jobId: string; readonly report?: VmmReport };

/** A change decided: its result, sequence number, promised flushes, events, and what is stored. */
interface Decided {
  readonly result: CommandResult;
  readonly seq: number;
  readonly reserved: Reservation[];
  readonly told: VmEventInput[];
  readonly change: StoredChange;
  /** Outstanding flush jobs of the VM its own flush covers (a teardown): settled once it is kept. */
  readonly covered: readonly string[];
}

/** A change waiting for the next shared transaction. */
interface Queued {
  readonly cmd: Command;
  readonly at: number;
  readonly actor: string;
  resolve(d: Decided): void;
  reject(err: unknown): void;
}

/** How soon a replica reads again events stored behind a transaction that was still running (ms). */
const HELD_RETRY_MS = 5;
const HELD_RETRY_MAX_MS = 1000;

/** Changes one shared transaction takes at most. */
const GROUP_COMMIT_MAX = 256;

/** A flush promised to a job before its change is durable. */
interface Reservation {
  readonly id: string;
  readonly vmId: VmId;
  readonly header: JobHeader;
  /** This decision's flush, (hpa, pages) pairs, and their pages. */
  readonly pairs: Float64Array;
  readonly pages: number;
}

/** A reservation as stored with its change: the job's header and this decision's ranges. */
function jobPart(r: Reservation): StoredJobPart {
  return { id: r.id, vmId: r.vmId, header: JSON.stringify(r.header), pairs: r.pairs };
}

/** Changes and pin operations after which a VM is snapshotted (see #snapshotIfDue). */
const SNAPSHOT_MIN_OPS = 4096;
const SNAPSHOT_MAX_CHANGES = 4096;

/**
 * Whether a change may add flush obligations (backpressure may refuse it). Releases and clears
 * never do: an unpin, a teardown, a removal, a DEVCTL write that clears the bit, a device
 * reporting its bit clear where it already is, a reset that restores config.
 */
function addsObligations(state: CoherencyState, cmd: Command): boolean {
  switch (cmd.type) {
    case 'unpin':
    case 'delete-vm':
    case 'delete-device':
    case 'delete-domain':
      return false;
    case 'devctl': {
      const w = cmd.write;
      return w.value === undefined ? w.nosnoopEnable === true : (w.value & DEVCTL_NOSNOOP_EN) !== 0;
    }
    case 'put-device': {
      const known = state.vms.get(cmd.vmId)?.devices.get(cmd.device.bdf);
      const clear = cmd.device.nosnoop === 'disabled' || cmd.device.nosnoop === 'hardwired-zero';
      return !(clear && known !== undefined && known.domainId === cmd.device.domainId);
    }
    case 'reset-device':
      return cmd.restoresConfig === false;
    case 'pin':
    case 'put-domain':
    case 'put-quirks':
    case 'put-vm':
      return true;
  }
}

/** A teardown's decision whose own flush also covers the VM's outstanding flushes (`pairs`, of `jobs` jobs). */
function withCovered(decision: Decision, pairs: Float64Array, jobs: number): Decision {
  const out = new DecisionBuilder();
  out.flushAll(flushPairs(decision.flush).slice(), 'teardown');
  out.flushAll(pairs, 'teardown');
  const covered = `the VM's ${jobs} outstanding flush job(s) are settled by this teardown: their ranges are flushed with its own flush, after the unmap and before the pages are released`;
  // Said in the teardown's own F5 reason: one rule, one reason.
  const at = decision.reasons.findIndex((r) => r.rule === 'F5');
  const reasons = at < 0 ? [...decision.reasons, { rule: 'F5' as const, message: covered }] : decision.reasons.map((r, i) => (i === at ? { rule: r.rule, message: `${r.message}; ${covered}` } : r));
  return { ...decision, flush: out.buildFlush(), reasons };
}
