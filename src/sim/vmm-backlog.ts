/**
 * What the simulated VMM owes and has not done yet: replays it was answered for a guest's DEVCTL
 * write (performed later, as the VMM protocol lets it) and DEVCTL writes waiting for those
 * replays. A write waits for every replay it needs and for earlier writes to the same device, so
 * each device's writes stay in order.
 */
import type { Decision, PciAddress, VmId } from '../domain/index.js';
import { deviceKey } from './hardware.js';

/** A replay the VMM was answered and has not performed yet. */
export interface LateFlush {
  readonly id: number;
  readonly vm: VmId;
  /** The event from which the VMM gets to it. */
  readonly due: number;
  readonly flush: Decision['flush'];
}

/** A DEVCTL write the VMM owes a device, waiting for replays (`needs`) or for earlier writes to it. */
export interface OwedWrite {
  readonly vm: VmId;
  readonly bdf: PciAddress;
  readonly value: number;
  readonly needs: readonly number[];
}

export interface VmmActions {
  /** Performs a replay's flush. */
  readonly flush: (late: LateFlush) => void;
  /** Makes a DEVCTL write. */
  readonly write: (owed: OwedWrite) => void;
}

export class VmmBacklog {
  readonly #actions: VmmActions;
  /** Replays answered and not performed yet, oldest first. */
  #late: LateFlush[] = [];
  /** Writes owed, oldest first. */
  #owed: OwedWrite[] = [];

  constructor(actions: VmmActions) {
    this.#actions = actions;
  }

  defer(late: LateFlush): void {
    this.#late.push(late);
  }

  /** Between two events the VMM gets to one replay it owes: the newest of those due. */
  performDue(event: number): void {
    const late = this.#late.findLast((l) => l.due <= event);
    if (late !== undefined) this.#perform(late);
  }

  /** At the end of the trace the VMM performs every replay it still owes, newest first. */
  drain(): void {
    while (this.#late.length > 0) this.#perform(this.#late.pop() as LateFlush);
  }

  /** The VMM is gone with its VM: what it owed is moot (the teardown flushes what it must). */
  forget(vm: VmId): void {
    this.#late = this.#late.filter((l) => l.vm !== vm);
    this.#owed = this.#owed.filter((w) => w.vm !== vm);
  }

  /** The ids of the VM's replays outstanding. */
  outstanding(vm: VmId): number[] {
    return this.#late.filter((l) => l.vm === vm).map((l) => l.id);
  }

  /** Performs the outstanding replays among `ids` now. */
  performNow(ids: readonly number[]): void {
    for (const l of this.#late.filter((x) => ids.includes(x.id))) this.#perform(l);
  }

  /** Owes a DEVCTL write: done now when nothing it waits for is outstanding and no earlier write to the device is owed. */
  owe(vm: VmId, bdf: PciAddress, value: number, needs: readonly number[]): void {
    this.#owed.push({ vm, bdf, value, needs });
    this.#writeOwed();
  }

  /** The VMM performs a replay it owed, then the writes that waited for it. */
  #perform(late: LateFlush): void {
    this.#late = this.#late.filter((l) => l !== late);
    this.#actions.flush(late);
    this.#writeOwed();
  }

  /** Writes every owed value whose replays are done, each device's in order. */
  #writeOwed(): void {
    const blocked = new Set<string>();
    for (const w of [...this.#owed]) {
      const k = deviceKey(w.vm, w.bdf);
      // A write made meanwhile (a device report below may owe and write again) is not made twice.
      if (blocked.has(k) || !this.#owed.includes(w)) continue;
      if (w.needs.some((id) => this.#late.some((l) => l.id === id))) {
        blocked.add(k);
        continue;
      }
      this.#owed = this.#owed.filter((x) => x !== w);
      this.#actions.write(w);
    }
  }
}
