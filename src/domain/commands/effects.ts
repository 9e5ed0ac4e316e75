/**
 * What a change did, as the core reports it: for each VM it touched, whether it is gone, whether
 * only its pins and counters changed, and its pin map's operations; and whether the quirk table
 * was replaced. The shell stores and publishes these; it never watches the core's structures.
 *
 * A change applied as a revision of the log numbers every VM it changed or decided about with
 * that revision: the VM's revision is then the log position of the last change to it, and the
 * core is its one writer.
 */
import type { VmId } from '../ids.js';
import { PinJournal } from '../pin-journal.js';
import type { CoherencyState, Vm } from '../state.js';
import type { Command, CommandResult } from './command.js';

/** The log position a change is applied as. */
export interface ChangeStamp {
  readonly revision: number;
}

/** What a change did to one VM. */
export interface VmEffect {
  readonly vmId: VmId;
  /** The VM as the change left it; null: the change deleted it. */
  readonly vm: Vm | null;
  /**
   * Only its pins and counters (revision, time, flagged pages) changed: an unpin, or a pin that
   * added no subset of domains. The rest of the VM is as it was.
   */
  readonly pinsOnly: boolean;
  /** Its pin map's operations in order (PinJournal's format, PIN_OP_STRIDE numbers each); null: none. */
  readonly ops: Float64Array | null;
}

export interface ChangeEffects {
  /**
   * The VMs the change named or decided about (put-quirks: each VM it decided for), then any
   * other VM whose pins changed; once each.
   */
  readonly vms: readonly VmEffect[];
  /** The quirk table was replaced (put-quirks). */
  readonly quirks: boolean;
}

export interface ChangeResult extends CommandResult {
  readonly effects: ChangeEffects;
}

/**
 * Runs `apply` (the command `cmd` on `state`) with the pin maps it may change journaled (its VM's,
 * or every VM's for a quirk change), then stamps the VMs it changed or decided about with the
 * change's revision and reports the effects. A rejected command changes nothing and reports none.
 */
export function recordChange(state: CoherencyState, cmd: Command, stamp: ChangeStamp, apply: () => CommandResult): ChangeResult {
  const journals = new Map<VmId, PinJournal>();
  const watched = cmd.type === 'put-quirks' ? [...state.vms.values()] : [state.vms.get(cmd.vmId)].filter((vm) => vm !== undefined);
  for (const vm of watched) {
    const journal = new PinJournal();
    vm.pins.recordInto(journal);
    journals.set(vm.id, journal);
  }
  // A pin that adds no subset of domains, or an unpin, changes only pins and counters.
  const pinsOnly = cmd.type === 'unpin' || cmd.type === 'pin' ? { vmId: cmd.vmId, subsets: state.vms.get(cmd.vmId)?.subsets.length ?? -1 } : null;
  let result: CommandResult;
  try {
    result = apply();
  } finally {
    for (const vm of watched) vm.pins.recordInto(null);
  }
  const decided = cmd.type === 'put-quirks' ? [...(result.vms?.keys() ?? [])] : [cmd.vmId];
  for (const vmId of decided) {
    const vm = state.vms.get(vmId);
    if (vm !== undefined) vm.revision = stamp.revision;
  }
  const touched = new Set<VmId>(decided);
  for (const [vmId, journal] of journals) if (journal.length > 0) touched.add(vmId);
  const vms: VmEffect[] = [];
  for (const vmId of touched) {
    const vm = state.vms.get(vmId);
    if (vm === undefined) {
      vms.push({ vmId, vm: null, pinsOnly: false, ops: null });
      continue;
    }
    const journal = journals.get(vmId);
    vms.push({
      vmId,
      vm,
      pinsOnly: pinsOnly !== null && pinsOnly.vmId === vmId && pinsOnly.subsets === vm.subsets.length,
      ops: journal === undefined || journal.length === 0 ? null : journal.take()
    });
  }
  return { ...result, effects: { vms, quirks: cmd.type === 'put-quirks' } };
}
