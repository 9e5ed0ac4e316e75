/**
 * The replicated commit: replicas share one PostgreSQL log. A change is decided inside the
 * store's transaction, holding the locks of the VMs it changes, after applying what the other
 * replicas stored of them; changes that arrive meanwhile join the next transaction (group
 * commit). Between changes a replica follows the others (`follower.ts`), for the VMs it serves
 * (`served.ts`): a request about any other VM catches up on it first.
 */
import { decodeVm, PinMap, type Command, type VmId } from '../../domain/index.js';
import type { FlushJob, FlushJobs, JobHeader, VmmReport } from '../../jobs/flush-jobs.js';
import { QUIRKS_EFFECT, type Missed, type SharedStateStore, type WriteScope } from '../../store/state-store.js';
import { applyEffect } from '../change.js';
import type { Decided, Decider, PendingChange } from '../decide.js';
import { StoreUnavailableError } from '../errors.js';
import type { Health } from '../health.js';
import type { InFlight } from '../in-flight.js';
import type { Ledger } from '../ledger.js';
import type { Snapshots } from '../snapshots.js';
import type { VmEvents } from '../vm-events.js';
import type { Commit } from './commit.js';
import { Follower, type Published } from './follower.js';
import { ServedVms } from './served.js';

/** Changes one shared transaction takes at most. */
const GROUP_COMMIT_MAX = 256;

/** A change waiting for the next shared transaction. */
interface Queued extends PendingChange {
  resolve(d: Decided): void;
  reject(err: unknown): void;
}

export interface ReplicatedParts {
  readonly store: SharedStateStore;
  readonly ledger: Ledger;
  readonly decider: Decider;
  readonly health: Health;
  readonly snapshots: Snapshots;
  readonly jobs: FlushJobs | undefined;
  readonly events: VmEvents;
  /** Takes up the flush jobs the store holds that this replica does not know. */
  readonly reloadJobs: ((remote: boolean) => Promise<void>) | undefined;
  readonly inFlight: InFlight;
  /** Milliseconds since the epoch (how long a VM stays served). */
  readonly clock: () => number;
}

export class ReplicatedCommit implements Commit {
  readonly #p: ReplicatedParts;
  readonly #follower: Follower;
  readonly #served: ServedVms;
  /** Changes waiting for the next shared transaction, in arrival order (group commit). */
  #queued: Queued[] = [];
  #groupCommitting = false;
  #lock: Promise<unknown> = Promise.resolve();

  constructor(parts: ReplicatedParts) {
    this.#p = parts;
    this.#served = new ServedVms({
      clock: parts.clock,
      listened: () => parts.events.listened(),
      // Its own: their acknowledgements through other replicas are to be heard. Those of jobs it
      // adopted are read from their records every round of refreshing (and the VM is served
      // again as soon as it is asked about).
      ownOutstanding: (vmIds) => {
        const jobs = parts.jobs;
        if (jobs === undefined) return new Set<string>();
        const remote = new Set(jobs.remoteOutstanding());
        return new Set(vmIds.filter((vm) => jobs.outstanding(vm as VmId).some((j) => !remote.has(j.id))));
      },
      dropped: (vmId) => parts.events.forget(vmId)
    });
    this.#follower = new Follower(parts, {
      following: () => this.#served.following(),
      follows: (vmId) => this.#served.has(vmId) || parts.events.listening(vmId),
      catchUpOn: (vmIds) => this.#catchUpOn(vmIds),
      catchUp: (minRevision, vmId) => this.#catchUp(minRevision, vmId)
    });
  }

  commit(change: PendingChange): Promise<Decided> {
    // Served from now on: its transaction applies what other replicas stored of it first.
    if (change.cmd.type !== 'put-quirks') this.#served.ask(change.cmd.vmId);
    return new Promise<Decided>((resolve, reject) => {
      this.#queued.push({ ...change, resolve, reject });
      if (!this.#groupCommitting) void this.#commitQueued();
    });
  }

  /** A request about VM `vmId`: served from now on, and caught up first unless this replica is current on it. */
  async catchUp(minRevision: number, vmId: VmId): Promise<void> {
    this.#served.ask(vmId);
    await this.#catchUp(minRevision, vmId);
  }

  serves(vmId: VmId): boolean {
    if (this.#served.ask(vmId)) return true;
    // Not current on it: the catch-up starts now, for the answers after this one.
    this.#catchUp(0, vmId).catch(() => undefined);
    return false;
  }

  /** Before listing every VM: catches up on all of them (none becomes served by it). */
  async catchUpAll(): Promise<void> {
    await this.#p.inFlight.settled();
    await this.#exclusive(async () => {
      if (!this.#p.health.healthy) return;
      try {
        const missed = await this.#p.store.since(null, this.#p.ledger.known);
        this.#replay(missed);
        await this.#refreshAdopted(missed);
      } catch (err) {
        this.#p.health.fail(err);
      }
    });
  }

  /**
   * Applies what other replicas stored of VM `vmId`, unless this replica follows it and already
   * applied a change of it at least as recent as `minRevision`. A VM caught up on after a while
   * unserved may bring flush jobs acknowledged meanwhile: their records say so.
   */
  async #catchUp(minRevision: number, vmId: VmId): Promise<void> {
    await this.#p.inFlight.settled();
    const current = (): boolean => this.#served.ready(vmId) && this.#caughtUp(vmId, minRevision);
    if (!this.#p.health.healthy || current()) return;
    await this.#exclusive(async () => {
      if (current() || !this.#p.health.healthy) return;
      const followed = this.#served.ready(vmId);
      try {
        const missed = await this.#p.store.since([vmId], this.#p.ledger.known);
        this.#replay(missed);
        if (!followed) await this.#refreshAdopted(missed);
        this.#served.caughtUp([vmId]);
      } catch (err) {
        this.#p.health.fail(err);
      }
    });
  }

  /**
   * Flush jobs just adopted with changes this replica did not follow as they were made: their
   * acknowledgements (events it did not read) are in their records.
   */
  async #refreshAdopted(missed: Missed): Promise<void> {
    const jobs = this.#p.jobs;
    if (jobs === undefined || missed.jobs.length === 0) return;
    const remote = new Set(jobs.remoteOutstanding());
    const ids = [...new Set(missed.jobs.map((j) => j.id))].filter((id) => remote.has(id));
    if (ids.length === 0) return;
    for (const r of await this.#p.store.jobRecords(ids)) jobs.refresh((JSON.parse(r.body) as { job: FlushJob }).job);
  }

  /** A job another replica promised a moment ago: catch up on its VM first, as a change does. */
  async learnJob(id: string): Promise<void> {
    if (!this.#p.health.healthy) return;
    const vmId = await this.#p.store.jobVm(id).catch((err: unknown) => {
      throw new StoreUnavailableError('the store could not be asked about the flush job; send it again', { cause: err });
    });
    if (vmId !== null) await this.catchUp(Number.MAX_SAFE_INTEGER, vmId as VmId);
  }

  /**
   * The other replicas count it done once they hear of it; until then they keep waiting for it
   * (safe), and a restart reads the record kept.
   */
  async acknowledged(vmId: VmId, jobId: string, report: VmmReport): Promise<void> {
    const published: Published = { type: 'ack', vmId, jobId, report };
    await this.#p.store.publish({ vmId, body: JSON.stringify(published) }).catch(() => undefined);
  }

  /** A reload after the first: the jobs other replicas promised meanwhile are taken up from the store. */
  async reloaded(): Promise<void> {
    await this.#p.reloadJobs?.(true);
  }

  follow(intervalMs: number): void {
    this.#follower.start(intervalMs);
  }

  stop(): void {
    this.#follower.stop();
  }

  #caughtUp(vmId: VmId, minRevision: number): boolean {
    return minRevision <= 0 || (this.#p.ledger.known.get(vmId) ?? 0) >= minRevision;
  }

  /** Applies what other replicas stored of the VMs it follows (and of the quirk list) since this replica last looked. */
  async #catchUpOn(vmIds: readonly string[]): Promise<void> {
    await this.#exclusive(async () => {
      if (!this.#p.health.healthy) return;
      try {
        this.#replay(await this.#p.store.since(vmIds, this.#p.ledger.known));
        this.#served.caughtUp(vmIds);
      } catch (err) {
        this.#p.health.fail(err);
      }
    });
  }

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
    const { store, health, decider } = this.#p;
    const scope: WriteScope = batch.some((q) => q.cmd.type === 'put-quirks') ? 'all' : batch.map((q) => (q.cmd as Exclude<Command, { type: 'put-quirks' }>).vmId);
    const decided: { q: Queued; d: Decided }[] = [];
    const refused = new Map<Queued, unknown>();
    // A commit fence: changes queued behind one the store refused were not decided yet, but this
    // replica's memory may be ahead of the store until it has reloaded: refuse them.
    if (!health.healthy) {
      const err = new StoreUnavailableError('an earlier change could not be kept and the state is being reloaded from the store; nothing was changed', { cause: health.failure ?? undefined });
      for (const q of batch) q.reject(err);
      return;
    }
    try {
      await store.write(scope, this.#p.ledger.known, batch.length, (missed, seqs) => {
        this.#replay(missed);
        if (scope !== 'all') this.#served.caughtUp(scope);
        for (const q of batch) {
          try {
            decided.push({ q, d: decider.decide(q, true, seqs[decided.length]) });
          } catch (err) {
            refused.set(q, err);
          }
        }
        return decided.map((x) => x.d.change);
      });
    } catch (err) {
      for (const { d } of decided) decider.cancel(d);
      if (decided.length > 0 || err instanceof StoreUnavailableError) health.fail(err);
      // A change refused by itself keeps its refusal; every other one gets the store's error.
      for (const q of batch) q.reject(refused.has(q) ? refused.get(q) : err);
      return;
    }
    for (const [q, err] of refused) q.reject(err);
    for (const { q, d } of decided) {
      this.#p.snapshots.kept(d.change.effects);
      q.resolve(d);
    }
  }

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
    const { ledger, jobs } = this.#p;
    const state = ledger.state;
    for (const s of missed.snapshots) {
      const pins = new PinMap();
      pins.insertMany(s.pins);
      state.vms.set(s.vmId as VmId, decodeVm(s.record, pins));
      ledger.known.set(s.vmId, s.seq);
    }
    for (const e of missed.effects) {
      // Already applied (a snapshot covers it): per VM, changes come in order.
      if (e.seq <= (ledger.known.get(e.vmId) ?? 0)) continue;
      applyEffect(state, e);
      ledger.known.set(e.vmId, e.seq);
      ledger.advance(e.seq);
    }
    for (const part of missed.jobs) jobs?.adopt(part.id, JSON.parse(part.header) as JobHeader, part.pairs);
    // A VM another replica tore down: its teardown covered the flushes outstanding here.
    for (const e of missed.effects) {
      if (e.record === null && e.vmId !== QUIRKS_EFFECT && !state.vms.has(e.vmId as VmId) && jobs !== undefined) {
        jobs.settle(jobs.outstanding(e.vmId as VmId).map((j) => j.id), null, e.vmId as VmId);
      }
    }
  }
}
