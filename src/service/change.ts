/**
 * One change decided on the state, and what the store keeps of it: each touched VM's record and
 * pin operations (the effects), under the sequence number the commit gave it. Restore and
 * replicas apply stored effects as they were decided (nothing is decided again).
 */
import {
  applyCommand,
  applyVmDelta,
  decodeVm,
  encodeVmDelta,
  encodeVmRecord,
  isVmDelta,
  parseQuirkFile,
  PinJournal,
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

/** Decides `cmd` at time `at` as change `seq`: its result, and the effects the store keeps. */
export function decideChange(state: CoherencyState, cmd: Command, at: number, seq: number): { readonly result: CommandResult; readonly effects: StoredEffect[] } {
  const watched = watch(state, cmd);
  // A pin that adds no subset of domains, or an unpin, changes only pins and counters.
  const pinsOnly = cmd.type === 'unpin' || cmd.type === 'pin' ? { vmId: cmd.vmId, subsets: state.vms.get(cmd.vmId)?.subsets.length ?? -1 } : null;
  let result: CommandResult;
  try {
    result = applyCommand(state, cmd, at);
  } finally {
    unwatch(state, watched);
  }
  stamp(state, cmd, result, seq);
  return { result, effects: effectsOf(state, cmd, result, watched, pinsOnly) };
}

/** Journals the pin maps a command may change: its VM's, or every VM's for a quirk change. */
function watch(state: CoherencyState, cmd: Command): Map<string, PinJournal> {
  const watched = new Map<string, PinJournal>();
  const vms = cmd.type === 'put-quirks' ? [...state.vms.values()] : [state.vms.get(cmd.vmId)].filter((vm) => vm !== undefined);
  for (const vm of vms) {
    vm.pins.journal = new PinJournal();
    watched.set(vm.id, vm.pins.journal);
  }
  return watched;
}

/** Detaches the journals (their operations stay in them until taken). */
function unwatch(state: CoherencyState, watched: Map<string, PinJournal>): void {
  for (const vmId of watched.keys()) {
    const vm = state.vms.get(vmId as VmId);
    if (vm !== undefined) vm.pins.journal = null;
  }
}

/**
 * What a change did, as the store keeps it: each touched VM's record and pin operations. A
 * change that only pinned or unpinned (`pinsOnly`: its VM and the VM's subsets of domains before
 * it, unchanged) keeps a delta of the record instead of the whole.
 */
function effectsOf(
  state: CoherencyState,
  cmd: Command,
  result: CommandResult,
  watched: Map<string, PinJournal>,
  pinsOnly: { readonly vmId: VmId; readonly subsets: number } | null
): StoredEffect[] {
  const effects: StoredEffect[] = [];
  const touched = new Set<string>(cmd.type === 'put-quirks' ? [...(result.vms?.keys() ?? [])] : [cmd.vmId]);
  for (const [vmId, journal] of watched) if (journal.length > 0) touched.add(vmId);
  for (const vmId of touched) {
    const vm = state.vms.get(vmId as VmId);
    const journal = watched.get(vmId);
    if (vm === undefined) {
      effects.push({ vmId, record: null, ops: null });
      continue;
    }
    const delta = pinsOnly !== null && pinsOnly.vmId === vmId && pinsOnly.subsets === vm.subsets.length;
    effects.push({ vmId, record: delta ? encodeVmDelta(vm) : encodeVmRecord(vm), ops: journal === undefined || journal.length === 0 ? null : journal.take() });
  }
  if (cmd.type === 'put-quirks') effects.push({ vmId: QUIRKS_EFFECT, record: quirkFileJson(state.quirks.quirks), ops: null });
  return effects;
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

