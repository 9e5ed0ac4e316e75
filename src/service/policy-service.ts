/**
 * The shell around the decision core: owns the state, stamps commands with the time, and
 * answers the read-only questions. One writer at a time is guaranteed by JavaScript itself:
 * every command runs to completion synchronously.
 */
import {
  applyCommand,
  createState,
  decidedCommand,
  parseQuirkFile,
  quirkToWire,
  DecisionBuilder,
  DEVCTL_NOSNOOP_EN,
  DEVCTL_RESET_DEFAULT,
  getVm,
  listPins,
  mustFlush,
  viewVm,
  type CoherencyState,
  type Command,
  type CommandResult,
  type FlushQueryAnswer,
  type FlushQueryRange,
  type PinnedRangeView,
  type PolicyDefaults,
  type Quirk,
  type Decision,
  type Vm,
  type VmId,
  type VmView
} from '../domain/index.js';
import type { FlushJobs } from '../jobs/flush-jobs.js';
import { isShared, StoreUnavailableError, type AuditQuery, type StateStore, type StoredCommand } from '../store/state-store.js';

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
}

/** A command's result plus the flush jobs its decisions joined. */
export interface Applied extends CommandResult {
  /** Set when the answer failed closed (the state could not be vouched for). */
  readonly failClosed?: 'STORE_UNAVAILABLE';
  /** The job carrying `decision.flush`, when a flush is required. */
  readonly jobId?: string;
  /** put-quirks: the job of each VM decision that requires a flush. */
  readonly vmJobIds?: ReadonlyMap<VmId, string>;
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
  /** Last stored command. */
  #seq = 0;
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
   * Rebuilds the state by replaying every stored command with the time it was applied at.
   * Returns the number of commands replayed.
   */
  async restore(): Promise<number> {
    if (this.#store === undefined) return 0;
    // The log starts from the quirk list in force when it began (the first start's), whatever
    // the configured list says now: a restart re-decides nothing.
    const first = await this.#store.meta('quirks', JSON.stringify({ quirks: this.#quirks.map(quirkToWire) }));
    const stored = await this.#store.load();
    // Replay into a fresh state, swapped in only when complete.
    const state = createState(this.#defaults, parseQuirkFile(JSON.parse(first)));
    let seq = 0;
    for (const c of stored) {
      if (c.seq !== seq + 1) throw new StoreUnavailableError(`stored commands jump from ${seq} to ${c.seq}`);
      stamp(state, c.command, applyCommand(state, c.command, c.at), c.seq);
      seq = c.seq;
    }
    this.#state = state;
    this.#seq = seq;
    this.#restored = true;
    return stored.length;
  }

  /**
   * The configured quirk list, and whether it differs from the list in force (kept by the store).
   * A differing list is never applied by itself: an operator applies it with PUT /v1/quirks.
   */
  configuredQuirks(): { readonly quirks: readonly Quirk[]; readonly inForce: boolean } {
    return { quirks: this.#quirks, inForce: sameQuirks(this.state.quirks.quirks, this.#quirks) };
  }

  /**
   * After a store failure memory may hold a change that is not durable. Until the state is
   * rebuilt from the store, changes are refused and decisions fail closed; this retries the
   * rebuild every second, and the service recovers by itself when the store returns.
   */
  #startRecovery(): void {
    if (this.#recovery !== null || this.#store === undefined) return;
    const attempt = (): void => {
      this.restore().then(
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
    return { state: this.state, decision: out.build(true, { decision: 'deny', hardwareValue: cleared, guestValue: cleared }), failClosed: 'STORE_UNAVAILABLE' };
  }

  /** Stops background recovery and following (on shutdown). */
  stop(): void {
    if (this.#recovery !== null) clearTimeout(this.#recovery);
    if (this.#follower !== null) clearInterval(this.#follower);
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
    if (!dryRun) this.jobs?.assertCapacity();
    // What is stored is what was decided: the policy resolved now, not the defaults of a later start.
    if (!dryRun) cmd = decidedCommand(this.state, cmd);
    // Teardown removes the VM: remember how it flushes before it is gone.
    const before = cmd.type === 'put-quirks' ? undefined : this.state.vms.get(cmd.vmId);
    const at = this.#clock();
    if (dryRun) return applyCommand(this.state, cmd, at);
    const store = this.#store;
    let result: CommandResult;
    let seq: number;
    if (store !== undefined && isShared(store)) {
      // Replicas share the log: decide inside the store's transaction, after applying what
      // the others stored meanwhile.
      ({ result, seq } = await this.#exclusive(async () => {
        let decided: { result: CommandResult; seq: number } | undefined;
        try {
          await store.write(this.#seq, (missed) => {
            this.#replay(missed);
            const r = applyCommand(this.state, cmd, at);
            decided = { result: r, seq: this.#seq + 1 };
            this.#seq = decided.seq;
            stamp(this.state, cmd, r, decided.seq);
            return { seq: decided.seq, at, command: cmd, actor, rules: rulesOf(r) };
          });
        } catch (err) {
          if (decided !== undefined || err instanceof StoreUnavailableError) this.#fail(err);
          throw err;
        }
        return decided as { result: CommandResult; seq: number };
      }));
    } else {
      result = applyCommand(this.state, cmd, at);
      seq = ++this.#seq;
      stamp(this.state, cmd, result, seq);
      await this.#persist({ seq, at, command: cmd, actor, rules: rulesOf(result) });
    }
    if (cmd.type === 'put-quirks') {
      const vmJobIds = new Map<VmId, string>();
      for (const [vmId, decision] of result.vms ?? []) {
        const vm = getVm(this.state, vmId);
        this.#onDecision(vm, decision);
        const jobId = this.#submit(vm, decision);
        if (jobId !== undefined) vmJobIds.set(vmId, jobId);
      }
      return { ...result, revision: seq, vmJobIds };
    }
    const vm = this.state.vms.get(cmd.vmId) ?? before;
    if (vm === undefined) return { ...result, revision: seq };
    this.#onDecision(vm, result.decision);
    const jobId = this.#submit(vm, result.decision);
    return { ...result, revision: seq, ...(jobId === undefined ? {} : { jobId }) };
  }

  /** The audit trail: stored changes, oldest first. Empty without a store. */
  audit(query: AuditQuery): Promise<StoredCommand[]> {
    return this.#store?.audit(query) ?? Promise.resolve([]);
  }

  /**
   * Read-your-writes across replicas: before answering, apply what other replicas stored, until
   * this replica is at least at `minRevision`. A replica that cannot reach the store fails closed.
   */
  async catchUp(minRevision: number): Promise<void> {
    const store = this.#store;
    if (store === undefined || !isShared(store) || this.#seq >= minRevision || !this.healthy) return;
    await this.#exclusive(async () => {
      if (this.#seq >= minRevision) return;
      try {
        this.#replay(await store.since(this.#seq));
      } catch (err) {
        this.#fail(err);
      }
    });
  }

  /** Follows a shared store: picks up other replicas' changes every `intervalMs`. */
  follow(intervalMs = 500): void {
    if (this.#store === undefined || !isShared(this.#store) || this.#follower !== null) return;
    this.#follower = setInterval(() => void this.catchUp(Number.MAX_SAFE_INTEGER), intervalMs).unref();
  }

  #follower: NodeJS.Timeout | null = null;
  #lock: Promise<unknown> = Promise.resolve();

  /** Runs `fn` after every earlier exclusive section of this replica has finished. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  #replay(commands: readonly StoredCommand[]): void {
    for (const c of commands) {
      if (c.seq !== this.#seq + 1) throw new StoreUnavailableError(`stored commands jump from ${this.#seq} to ${c.seq}`);
      stamp(this.state, c.command, applyCommand(this.state, c.command, c.at), c.seq);
      this.#seq = c.seq;
    }
  }

  #fail(err: unknown): void {
    this.#failure ??= err instanceof Error ? err : new Error(String(err));
    this.#startRecovery();
  }

  /** The answer waits for this: a change is acknowledged only once it is durable. */
  async #persist(stored: StoredCommand): Promise<void> {
    if (this.#store === undefined) return;
    try {
      await this.#store.append([stored]);
    } catch (err) {
      // Memory is now ahead of the store: refuse changes until the state is rebuilt from it.
      this.#fail(err);
      throw err instanceof StoreUnavailableError ? err : new StoreUnavailableError('the store could not keep the change', { cause: err });
    }
  }

  #submit(vm: Vm, decision: Decision): string | undefined {
    const flush = decision.flush;
    if (this.jobs === undefined || !flush.required || flush.cause === null) return undefined;
    return this.jobs.submit(vm.id, vm.arch, vm.policy, flush.cause, flush.ranges);
  }

  /**
   * Must the caller flush? When the state cannot be vouched for, the answer fails closed: every
   * range requires a flush, with a reason saying why (`failClosed`).
   */
  mustFlush(vmId: VmId, op: 'map' | 'unmap', ranges: readonly FlushQueryRange[]): FlushQueryAnswer & { failClosed?: 'STORE_UNAVAILABLE' } {
    if (this.healthy) return mustFlush(this.state, vmId, op, ranges);
    const out = new DecisionBuilder();
    for (const r of ranges) if (r.hpa !== undefined) out.flush(r.hpa, r.pages, op === 'map' ? 'pin' : 'unpin');
    const rule = op === 'map' ? 'F1' : 'F3';
    out.reason(rule, 'fail closed: the state store is unavailable or the state is not loaded, so every range is treated as needing a flush');
    const decision = out.build(true);
    return {
      decision: { ...decision, flush: { ...decision.flush, required: ranges.length > 0 } },
      results: ranges.map((r) => ({ iova: r.iova, pages: r.pages, required: true, rule })),
      failClosed: 'STORE_UNAVAILABLE'
    };
  }

  vm(vmId: VmId): VmView {
    return viewVm(this.state, getVm(this.state, vmId));
  }

  /** VMs in id order, after `after` (exclusive), at most `limit`. */
  listVms(after: string | undefined, limit: number): VmView[] {
    const ids = [...this.state.vms.keys()].sort();
    const start = after === undefined ? 0 : ids.findIndex((id) => id > after);
    if (start < 0) return [];
    return ids.slice(start, start + limit).map((id) => viewVm(this.state, getVm(this.state, id)));
  }

  pins(vmId: VmId, fromPage: number, limit: number): PinnedRangeView[] {
    return listPins(getVm(this.state, vmId), fromPage, limit);
  }

  quirks(): readonly Quirk[] {
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

/** A VM's revision is the global sequence number of the last command that changed it. */
function stamp(state: CoherencyState, cmd: Command, result: CommandResult, seq: number): void {
  if (cmd.type === 'put-quirks') {
    for (const vmId of result.vms?.keys() ?? []) {
      const vm = state.vms.get(vmId);
      if (vm !== undefined) vm.revision = seq;
    }
    return;
  }
  const vm = state.vms.get(cmd.vmId);
  if (vm !== undefined) vm.revision = seq;
}
