/**
 * Following a shared store: a replica applies other replicas' changes of the VMs it serves (and
 * of the quirk list) as soon as the store notifies them (and every interval, in case a
 * notification was lost), and hands the events they published of those VMs to its own
 * subscribers: their decisions, and acknowledgements of flush jobs. A notification naming only
 * VMs it does not serve costs it nothing: it catches up on such a VM when asked about it.
 */
import type { VmId } from '../../domain/index.js';
import type { FlushJob, FlushJobs, VmmReport } from '../../jobs/flush-jobs.js';
import type { EventCursor, SharedStateStore } from '../../store/state-store.js';
import type { Health } from '../health.js';
import type { VmEventInput, VmEvents } from '../vm-events.js';

/** What replicas publish to each other: a change's event for a VM's stream, or an acknowledgement. */
export type Published = Exclude<VmEventInput, { type: 'reset' | 'flush-job' }> | { readonly type: 'ack'; readonly vmId: VmId; readonly jobId: string; readonly report?: VmmReport };

/** How soon a replica reads again events stored behind a transaction that was still running (ms). */
const HELD_RETRY_MS = 5;
const HELD_RETRY_MAX_MS = 1000;

interface FollowerParts {
  readonly store: SharedStateStore;
  readonly health: Health;
  readonly jobs: FlushJobs | undefined;
  readonly events: VmEvents;
}

interface CatchingUp {
  /** The VMs to follow now (see ServedVms.following). */
  following(): string[];
  /** Whether the replica follows `vmId` (a notification naming it is news). */
  follows(vmId: string): boolean;
  /** Applies what other replicas stored of `vmIds` and of the quirk list. */
  catchUpOn(vmIds: readonly string[]): Promise<void>;
  catchUp(minRevision: number, vmId: VmId): Promise<void>;
}

export class Follower {
  readonly #p: FollowerParts;
  readonly #replica: CatchingUp;
  #timer: NodeJS.Timeout | null = null;
  #retry: NodeJS.Timeout | null = null;
  /** How long the next round waits for events held behind a running transaction (ms). */
  #heldFor = 0;
  #unwatch: (() => void) | null = null;
  #syncing = false;
  #again = false;
  /** Where in the store's events this replica handed them on up to (null: from now on). */
  #eventsAt: EventCursor | null = null;
  /** Set by the periodic round: read again the records of other replicas' jobs still outstanding here. */
  #refreshRemote = false;

  constructor(parts: FollowerParts, replica: CatchingUp) {
    this.#p = parts;
    this.#replica = replica;
  }

  start(intervalMs: number): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => {
      this.#refreshRemote = true;
      this.#sync();
    }, intervalMs).unref();
    // A change of the quirk list names no VM (null): every replica follows it.
    this.#unwatch = this.#p.store.watch((vmIds) => {
      if (vmIds === null || vmIds.some((vm) => this.#replica.follows(vm))) this.#sync();
    });
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#retry = null;
    this.#unwatch?.();
    this.#unwatch = null;
    this.#timer = null;
  }

  /** One round of following at a time; a notification meanwhile asks for one more. */
  #sync(): void {
    if (this.#syncing) {
      this.#again = true;
      return;
    }
    this.#syncing = true;
    this.#round()
      .catch(() => undefined)
      .finally(() => {
        this.#syncing = false;
        if (this.#again) {
          this.#again = false;
          this.#sync();
        }
      });
  }

  async #round(): Promise<void> {
    const { store, health, events } = this.#p;
    // A replica that cannot vouch for its state hands nothing on: its events could name jobs
    // it has not taken up yet. It resumes from where it was once it has recovered.
    if (!health.healthy) return;
    const following = this.#replica.following();
    await this.#replica.catchUpOn(following);
    if (!health.healthy) return;
    if (this.#refreshRemote) await this.#refreshRemoteJobs();
    for (;;) {
      const { events: published, next, gone, more, held } = await store.eventsAfter(this.#eventsAt, following);
      if (gone) await this.#refreshRemoteJobs();
      // Stopped meanwhile (shutdown): nothing more is handed on, and the position stays for a restart of following.
      if (this.#timer === null) return;
      if (gone) events.resetAll('events made through another replica are no longer held: re-read the VM');
      this.#eventsAt = next;
      for (const e of published) await this.#published(JSON.parse(e.body) as Published);
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

  /**
   * Acknowledgements this replica may have missed (it could not hear while they were published):
   * the records of other replicas' jobs still outstanding here say whether they were acknowledged.
   */
  async #refreshRemoteJobs(): Promise<void> {
    this.#refreshRemote = false;
    const jobs = this.#p.jobs;
    const ids = jobs?.remoteOutstanding() ?? [];
    if (jobs === undefined || ids.length === 0) return;
    const records = await this.#p.store.jobRecords(ids);
    for (const r of records) jobs.refresh((JSON.parse(r.body) as { job: FlushJob }).job);
  }

  /** An event another replica published: a change's event for the VM's stream, or an acknowledgement. */
  async #published(event: Published): Promise<void> {
    if (event.type === 'ack') {
      // Kept by the replica that took it; this one now counts the flush as done too.
      const acked = this.#p.jobs?.acknowledge(event.jobId, event.report ?? {});
      await acked?.saved.catch(() => undefined);
      return;
    }
    // The change behind it is applied first: a VMM reading the VM then sees it.
    await this.#replica.catchUp(event.revision, event.vmId);
    this.#p.events.emit(event);
  }
}
