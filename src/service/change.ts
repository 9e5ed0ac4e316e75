/**
 * One change decided on the state, and what the store keeps of it: each touched VM's record and
 * pin operations (the effects, as the core reports them), under the sequence number the commit
 * gave it. Restore and replicas apply stored effects as they were decided (nothing is decided again).
 */
import {
  applyCommand,
  applyVmDelta,
  decodeVm,
  encodeVmDelta,
  encodeVmRecord,
  isVmDelta,
  parseQuirkFile,
  PinMap,
  QuirkTable,
  quirkToWire,
  type CoherencyState,
  type Command,
  type CommandResult,
  type Quirk,
  type VmId
} from '../domain/index.js';
import { QUIRKS_EFFECT, type EffectRow, type StoredEffect } from '../store/state-store.js';

/**
 * Decides `cmd` at time `at` as change `seq` (the core numbers the VMs it changes with it): its
 * result, and the effects the store keeps. A change that only pinned or unpinned keeps a delta
 * of its VM's record instead of the whole.
 */
export function decideChange(state: CoherencyState, cmd: Command, at: number, seq: number): { readonly result: CommandResult; readonly effects: StoredEffect[] } {
  const result = applyCommand(state, cmd, at, { revision: seq });
  const effects: StoredEffect[] = result.effects.vms.map(({ vmId, vm, pinsOnly, ops }) => ({
    vmId,
    record: vm === null ? null : pinsOnly ? encodeVmDelta(vm) : encodeVmRecord(vm),
    ops
  }));
  if (result.effects.quirks) effects.push({ vmId: QUIRKS_EFFECT, record: quirkFileJson(state.quirks.quirks), ops: null });
  return { result, effects };
}

/** Applies a stored effect to the state, as it was decided. */
export function applyEffect(state: CoherencyState, e: EffectRow): void {
  if (e.vmId === QUIRKS_EFFECT) {
    state.quirks = new QuirkTable(parseQuirkFile(JSON.parse(e.record ?? '{"quirks":[]}')));
    return;
  }
  const vmId = e.vmId as VmId;
  if (e.record === null) {
    state.vms.delete(vmId);
    return;
  }
  if (isVmDelta(e.record)) {
    const vm = state.vms.get(vmId);
    if (vm === undefined) throw new Error(`stored effect ${e.seq} changes VM ${vmId}, which the store does not hold`);
    if (e.ops !== null) vm.pins.apply(e.ops);
    applyVmDelta(vm, e.record);
    return;
  }
  const pins = state.vms.get(vmId)?.pins ?? new PinMap();
  if (e.ops !== null) pins.apply(e.ops);
  state.vms.set(vmId, decodeVm(e.record, pins));
}

export function quirkFileJson(quirks: readonly Quirk[]): string {
  return JSON.stringify({ quirks: quirks.map(quirkToWire) });
}
