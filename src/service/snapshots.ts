/**
 * When a VM is snapshotted. Per VM, changes and pin operations stored since its last snapshot
 * are counted; when they outgrow the VM (more operations than it has ranges, or many small
 * changes) the VM is snapshotted and its effects before it dropped: the store and restart
 * follow live state, not history.
 */
import { encodeVmRecord, PIN_OP_STRIDE, type VmId } from '../domain/index.js';
import { QUIRKS_EFFECT, type StateStore, type StoredEffect } from '../store/state-store.js';
import type { Ledger } from './ledger.js';

/** Changes and pin operations after which a VM is snapshotted. */
const SNAPSHOT_MIN_OPS = 4096;
const SNAPSHOT_MAX_CHANGES = 4096;

export class Snapshots {
  readonly #since = new Map<string, { changes: number; ops: number }>();
  readonly #store: StateStore;
  readonly #ledger: Ledger;

  constructor(store: StateStore, ledger: Ledger) {
    this.#store = store;
    this.#ledger = ledger;
  }

  /** Counts a kept change's effects, and snapshots the VMs they made due. */
  kept(effects: readonly StoredEffect[]): void {
    for (const e of effects) {
      if (e.vmId === QUIRKS_EFFECT) continue;
      if (e.record === null) {
        this.#since.delete(e.vmId);
        continue;
      }
      const since = this.#since.get(e.vmId) ?? { changes: 0, ops: 0 };
      since.changes++;
      since.ops += e.ops === null ? 0 : e.ops.length / PIN_OP_STRIDE;
      this.#since.set(e.vmId, since);
      const vm = this.#ledger.state.vms.get(e.vmId as VmId);
      if (vm === undefined || (since.ops < Math.max(SNAPSHOT_MIN_OPS, vm.pins.size) && since.changes < SNAPSHOT_MAX_CHANGES)) continue;
      this.#since.delete(e.vmId);
      // Ordered after every change already made: kept only if they are. A failure loses nothing
      // (the effects stay); the next change tries again.
      this.#store.snapshot({ vmId: vm.id, seq: this.#ledger.known.get(vm.id) ?? this.#ledger.seq, record: encodeVmRecord(vm), pins: vm.pins.toArray() }).catch(() => undefined);
    }
  }

  /** After a restore: the store's snapshots are the new starting points. */
  clear(): void {
    this.#since.clear();
  }
}
