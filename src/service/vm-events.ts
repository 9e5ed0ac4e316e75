/**
 * Per-VM event log for GET /v1/vms/{vmId}/events (Server-Sent Events): every change to a VM
 * with its decision, its flush jobs as they become pending and are acknowledged, policy changes
 * and its deletion. Each VM keeps its most recent events (at most 256, listing at most 65,536
 * flush ranges between them); a subscriber resuming from an id still held gets every event
 * after it, and one resuming from an id no longer held (or from an earlier start of the service)
 * is told to re-read the VM (`reset`), as a watch answers "gone" for a compacted revision.
 *
 * Event ids are `<epoch>.<n>`: the service start's epoch (its start time and a random part, so
 * that two replicas started in the same millisecond never share one) and a counter, so that an id
 * from an earlier start, or from another replica, is never taken for one of this start.
 */
import { randomInt } from 'node:crypto';
import { flushRangeCount, type Decision, type VmId } from '../domain/index.js';
import type { FlushJob } from '../jobs/flush-jobs.js';

export type VmEvent =
  | { readonly id: string; readonly type: 'decision'; readonly vmId: VmId; readonly revision: number; readonly command: string; readonly actor: string; readonly decision: Decision; readonly jobId?: string; readonly after?: readonly string[] }
  | { readonly id: string; readonly type: 'policy'; readonly vmId: VmId; readonly revision: number; readonly actor: string; readonly decision: Decision; readonly jobId?: string; readonly after?: readonly string[] }
  | { readonly id: string; readonly type: 'deleted'; readonly vmId: VmId; readonly revision: number; readonly actor: string; readonly decision: Decision; readonly jobId?: string }
  | { readonly id: string; readonly type: 'flush-job'; readonly vmId: VmId; readonly job: FlushJob }
  | { readonly id: string; readonly type: 'reset'; readonly vmId: VmId; readonly reason: string };

/** An event as emitted (its id is given by the log). */
export type VmEventInput = VmEvent extends infer E ? (E extends { id: string } ? Omit<E, 'id'> : never) : never;

export type Listener = (event: VmEvent) => void;

interface Log {
  readonly events: VmEvent[];
  /** The ranges the held events list, with one for each event (see `weight`). */
  weight: number;
  readonly listeners: Set<Listener>;
  /** The counter of the last event dropped from the ring (0: none). */
  dropped: number;
}

export class VmEvents {
  readonly #epoch: string;
  #next = 0;
  readonly #logs = new Map<string, Log>();
  readonly #keep: number;
  /** The counter when a log was last forgotten (a deleted VM's). */
  #forgotten = 0;

  readonly #keepRanges: number;

  constructor(options: { keep?: number; keepRanges?: number; epoch?: number | string } = {}) {
    this.#keep = options.keep ?? 256;
    this.#keepRanges = options.keepRanges ?? 65_536;
    this.#epoch = String(options.epoch ?? `${Date.now()}${randomInt(1_000_000).toString().padStart(6, '0')}`);
  }

  #log(vmId: string): Log {
    let log = this.#logs.get(vmId);
    if (log === undefined) {
      // A log made afresh holds nothing from before the last log forgotten.
      log = { events: [], weight: 0, listeners: new Set(), dropped: this.#forgotten };
      this.#logs.set(vmId, log);
    }
    return log;
  }

  /** Records an event of `vmId` and hands it to its subscribers. */
  emit(event: VmEventInput): void {
    const full = { ...event, id: `${this.#epoch}.${++this.#next}` } as VmEvent;
    const log = this.#log(event.vmId);
    log.events.push(full);
    log.weight += weight(full);
    // At most `keep` events and `keepRanges` listed flush ranges: a VM pinning batches of 10,000
    // ranges does not hold millions of them for subscribers that may never come.
    let drop = 0;
    while (log.events.length - drop > 1 && (log.events.length - drop > this.#keep || log.weight > this.#keepRanges)) {
      log.weight -= weight(log.events[drop] as VmEvent);
      drop++;
    }
    if (drop > 0) {
      const gone = log.events.splice(0, drop);
      log.dropped = counter((gone[gone.length - 1] as VmEvent).id);
    }
    for (const listener of log.listeners) listener(full);
    // A deleted VM's log goes once nobody follows it; a VM made again starts a new one.
    if (event.type === 'deleted' && log.listeners.size === 0) {
      this.#logs.delete(event.vmId);
      this.#forgotten = this.#next;
    }
  }

  /** Tells every subscriber to re-read its VM: events it should have had are lost (`reason`). */
  resetAll(reason: string): void {
    for (const [vmId, log] of this.#logs) {
      if (log.listeners.size > 0) this.emit({ type: 'reset', vmId: vmId as VmId, reason });
    }
  }

  /** Whether someone follows `vmId` here. */
  listening(vmId: string): boolean {
    return (this.#logs.get(vmId)?.listeners.size ?? 0) > 0;
  }

  /** The VMs someone follows here (a subscriber of their stream). */
  listened(): string[] {
    const vms: string[] = [];
    for (const [vmId, log] of this.#logs) if (log.listeners.size > 0) vms.push(vmId);
    return vms;
  }

  /**
   * This replica stops following the changes of `vmId` made elsewhere (nobody follows its
   * stream here): its events held are forgotten, and a subscriber resuming from one of them
   * later is told to re-read the VM, since events may be missing in between.
   */
  forget(vmId: string): void {
    const log = this.#logs.get(vmId);
    if (log === undefined || log.listeners.size > 0) return;
    this.#logs.delete(vmId);
    // Above every id given so far: a log made afresh holds none of them.
    this.#forgotten = ++this.#next;
  }

  /**
   * Follows `vmId`: first the events after `lastId` still held (or a `reset` when `lastId` is
   * no longer held), then every new one, until the returned function is called.
   */
  subscribe(vmId: VmId, lastId: string | undefined, listener: Listener): () => void {
    const log = this.#log(vmId);
    if (lastId !== undefined) {
      const [epoch, n] = lastId.split('.');
      const last = Number(n);
      if (epoch === this.#epoch && Number.isSafeInteger(last) && last >= log.dropped && last <= this.#next) {
        for (const e of log.events) if (counter(e.id) > last) listener(e);
      } else {
        listener({ id: `${this.#epoch}.${this.#next}`, type: 'reset', vmId, reason: `events after ${lastId} are no longer held: re-read the VM (GET /v1/vms/${vmId})` });
      }
    }
    log.listeners.add(listener);
    return () => {
      log.listeners.delete(listener);
      if (log.listeners.size === 0 && log.events.length === 0) this.#logs.delete(vmId);
    };
  }
}

function counter(id: string): number {
  return Number(id.slice(id.indexOf('.') + 1));
}

/** What an event holds on to: one, plus the flush ranges its decision lists. */
function weight(event: VmEvent): number {
  return 1 + ('decision' in event ? flushRangeCount(event.decision.flush) : 0);
}
