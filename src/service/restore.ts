/**
 * Rebuilds the state from the store: each VM's snapshot, then the effects stored after it, as
 * they were decided (nothing is decided again). A store written by 0.1.0 (commands to replay)
 * is migrated first.
 */
import { createState, decodeVm, parseQuirkFile, PIN_OP_STRIDE, PinMap, quirkToWire, encodeVmRecord, type CoherencyState, type PolicyDefaults, type Quirk, type VmId } from '../domain/index.js';
import type { StateStore } from '../store/state-store.js';
import { applyEffect, decideChange, quirkFileJson } from './change.js';

export interface Restored {
  readonly state: CoherencyState;
  /** The last change the store holds. */
  readonly seq: number;
  /** Per VM (and the quirk list), the last change applied. */
  readonly known: Map<string, number>;
  /** Effects applied after the snapshots. */
  readonly effects: number;
}

/** Ranges (or pin operations) restored between two turns of the event loop. */
const RESTORE_SLICE = 65_536;

/**
 * The state the store holds. The log starts from the quirk list in force when it began (the
 * first start's, `configured` only then), whatever the configured list says now: a restart
 * re-decides nothing. Built into a fresh state in slices that leave the event loop free
 * (liveness probes answer throughout a restore of millions of ranges).
 */
export async function restoreState(store: StateStore, defaults: PolicyDefaults, configured: readonly Quirk[]): Promise<Restored> {
  const first = await store.meta('quirks', JSON.stringify({ quirks: configured.map(quirkToWire) }));
  const initial = parseQuirkFile(JSON.parse(first));
  await migrate(store, defaults, initial);
  const loaded = await store.load();
  const state = createState(defaults, initial);
  const known = new Map<string, number>();
  for (const s of loaded.snapshots) {
    state.vms.set(s.vmId as VmId, decodeVm(s.record, await pinsOf(s.pins)));
    known.set(s.vmId, s.seq);
  }
  let applied = 0;
  for (const e of loaded.effects) {
    applyEffect(state, e);
    known.set(e.vmId, e.seq);
    applied += e.ops === null ? 1 : e.ops.length / PIN_OP_STRIDE;
    if (applied >= RESTORE_SLICE) {
      applied = 0;
      await yieldToLoop();
    }
  }
  return { state, seq: loaded.seq, known, effects: loaded.effects.length };
}

/** A 0.1.0 store holds commands: replay them once through the core and keep what they decided. */
async function migrate(store: StateStore, defaults: PolicyDefaults, initial: readonly Quirk[]): Promise<void> {
  const legacy = await store.legacy();
  if (legacy === null) return;
  const state = createState(defaults, initial);
  let seq = 0;
  for (const c of legacy) {
    decideChange(state, c.command, c.at, c.seq);
    seq = c.seq;
    if (seq % 1000 === 0) await yieldToLoop();
  }
  const snapshots = [...state.vms.values()].map((vm) => ({ vmId: vm.id, seq, record: encodeVmRecord(vm), pins: vm.pins.toArray() }));
  await store.migrated(snapshots, quirkFileJson(state.quirks.quirks), seq);
}

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A VM's pin map from its snapshot, built in slices. */
async function pinsOf(ranges: Float64Array): Promise<PinMap> {
  const pins = new PinMap();
  for (let from = 0; from < ranges.length; from += 4 * RESTORE_SLICE) {
    pins.insertMany(ranges.subarray(from, from + 4 * RESTORE_SLICE));
    if (from + 4 * RESTORE_SLICE < ranges.length) await yieldToLoop();
  }
  return pins;
}
