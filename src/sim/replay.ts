/**
 * Replays a trace through the decision core under one policy mode, playing the VMM (vmm-player:
 * it performs every flush a decision demands, out of order where the VMM protocol lets it, and
 * writes every `hardwareValue` to the device) and the adversary (adversary: every device that can
 * put No-Snoop on the wire reads and writes every page it can reach, the moment it can), against
 * the hardware (hardware: the devices' real bits and the cache model).
 *
 * The result (replay-report) counts what the mode flushed and what it would cost, and every
 * hazard the model saw: a leak (a no-snoop read of a page the host zeroed through the cache and
 * nobody flushed) or a stale line (a page going back to the host with a clean line over newer
 * DRAM). A safe policy has none.
 */
import { createState, DEFAULT_POLICY, type PolicyDefaults, type PolicyMode, type Quirk } from '../domain/index.js';
import { Adversary } from './adversary.js';
import { Hardware } from './hardware.js';
import { ReplayReport, type ModeResult } from './replay-report.js';
import type { Trace } from './trace.js';
import { VmmPlayer } from './vmm-player.js';

export type { ModeResult, ViolationSample } from './replay-report.js';

export interface ReplayOptions {
  readonly quirks: readonly Quirk[];
  /** The server's policy defaults (each mode replaces `mode`); absent: the built-in defaults. */
  readonly defaults?: PolicyDefaults;
  /** Skip the n-th demanded flush (0-based), to show that the model notices. */
  readonly dropFlush?: number;
  /** How the VMM acts: 'protocol' (the default) as the VMM protocol lets it; 'ignore-after' does not wait for `flush.after`. */
  readonly vmm?: 'protocol' | 'ignore-after';
}

/** Replays `trace` under `mode` with a fresh state. Deterministic: no clocks, no randomness. */
export function replay(trace: Trace, mode: PolicyMode, options: ReplayOptions): ModeResult {
  const state = createState({ ...(options.defaults ?? DEFAULT_POLICY), mode }, options.quirks);
  const report = new ReplayReport();
  const hardware = new Hardware(state, report);
  const adversary = new Adversary(state, hardware);
  const player = new VmmPlayer({ state, mode, report, hardware, adversary, dropFlush: options.dropFlush ?? -1, honoursAfter: options.vmm !== 'ignore-after' });
  player.run(trace.events);
  return report.result(mode, trace.events.length);
}
