/**
 * The VMs a replica serves: those it was asked about lately (a change, a decision, a read), those
 * someone follows here (an event-stream subscriber) and those with flush jobs of its own
 * outstanding (their acknowledgements may be made through another replica).
 * A replica applies the changes other replicas make only of the VMs it serves (and of the quirk
 * list, which concerns every VM); of the others it learns nothing until it is asked about one,
 * and then catches up on that VM first (one query), as a change does inside its transaction.
 * Every replica thus applies the changes of the VMs routed to it, not every change made through
 * any replica.
 *
 * A VM stays served for SERVE_WINDOW_MS after the last request about it: a VMM asks about its VM
 * many times a second while it runs, so a VM routed here is never dropped between two of its
 * requests, and a VM whose VMM went to another replica (or away) stops costing this one within
 * half a minute. Dropping one too early costs a catch-up query; keeping one too long costs its
 * share of following.
 */
export const SERVE_WINDOW_MS = 30_000;

interface Served {
  /** When it was last asked about, or last held by a subscriber or an outstanding job (clock ms). */
  at: number;
  /** Caught up since it became served, and followed since: an answer from memory is current. */
  ready: boolean;
}

export interface ServedParts {
  readonly clock: () => number;
  /** VMs followed here regardless of requests: subscribers of their streams. */
  readonly listened: () => readonly string[];
  /** Of `vmIds`, those with flush jobs of this replica's outstanding (acknowledgements it must hear of). */
  readonly ownOutstanding: (vmIds: readonly string[]) => ReadonlySet<string>;
  /** Called for a VM no longer served: what is held of it that following kept current is dropped. */
  readonly dropped: (vmId: string) => void;
  readonly windowMs?: number;
}

export class ServedVms {
  readonly #p: ServedParts;
  readonly #windowMs: number;
  readonly #vms = new Map<string, Served>();

  constructor(parts: ServedParts) {
    this.#p = parts;
    this.#windowMs = parts.windowMs ?? SERVE_WINDOW_MS;
  }

  /**
   * A request about `vmId`: true when this replica serves it and is current on it (it may answer
   * from memory); false otherwise (it must catch up first). Either way the VM is served from now on.
   */
  ask(vmId: string): boolean {
    return this.#touch(vmId).ready;
  }

  /** Whether `vmId` is served (current on it or not). */
  has(vmId: string): boolean {
    return this.#vms.has(vmId);
  }

  /** Whether `vmId` is served and current, without asking about it. */
  ready(vmId: string): boolean {
    return this.#vms.get(vmId)?.ready === true;
  }

  /** Served from now on, without a request: a VM followed by a subscriber here. */
  hold(vmId: string): void {
    this.#touch(vmId);
  }

  /** Served as of now: a VM not served before is not current yet. */
  #touch(vmId: string): Served {
    const now = this.#p.clock();
    const served = this.#vms.get(vmId);
    if (served === undefined) {
      const added = { at: now, ready: false };
      this.#vms.set(vmId, added);
      return added;
    }
    served.at = now;
    return served;
  }

  /** Caught up on `vmIds` (each served before the catch-up began): answers from memory are current. */
  caughtUp(vmIds: Iterable<string>): void {
    for (const vm of vmIds) {
      const served = this.#vms.get(vm);
      if (served !== undefined) served.ready = true;
    }
  }

  /**
   * The VMs to follow now: those served, after dropping the ones no longer asked about, followed
   * or waited for. Subscribers of a VM not asked about yet make it served (not current until
   * the next catch-up).
   */
  following(): string[] {
    const now = this.#p.clock();
    for (const vm of this.#p.listened()) this.hold(vm);
    const idle: string[] = [];
    for (const [vm, served] of this.#vms) if (now - served.at > this.#windowMs) idle.push(vm);
    if (idle.length > 0) {
      const waited = this.#p.ownOutstanding(idle);
      for (const vm of idle) {
        if (waited.has(vm)) {
          (this.#vms.get(vm) as Served).at = now;
          continue;
        }
        this.#vms.delete(vm);
        this.#p.dropped(vm);
      }
    }
    return [...this.#vms.keys()];
  }
}
