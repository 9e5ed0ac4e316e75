/**
 * The ordering rule of the VMM protocol: which changes must wait for the VM's outstanding
 * replays. One rule, read by the service (`flush.after`) and by the simulation's VMM alike.
 */
import type { Command } from './commands/command.js';
import type { Decision } from './decision.js';
import { DEVCTL_NOSNOOP_EN } from './devctl.js';
import { exposedDomains, type NoSnoopOverride } from './exposure.js';
import type { QuirkTable } from './quirks.js';
import type { Vm } from './state.js';

/**
 * Ordering (the VMM protocol): whether the change a decision answers is safe only once the VM's
 * outstanding replays (F2 flushes their VMMs have not acknowledged yet) are done. One rule, from
 * the exposure the change leaves (`vm` is the VM after it), whatever the bits it writes: a change
 * that leaves a domain of the VM exposed (a device allowed to no-snoop into it, a live device
 * moved into it whatever value it is then told to write, a reset back at the default 1, a
 * pessimistic policy, a quirk) lets No-Snoop DMA reach what those replays cover, so every replay
 * still outstanding must come first. Two changes let no device emit and never wait: a pin or
 * unpin (mapping a page exposes no other, and its own flush comes first), and a DEVCTL write
 * that leaves the bit clear. A DEVCTL dry run (`cmd.dryRun`) changes nothing: its device is taken
 * as holding the value the write would leave. Until those replays are done, no-snoop DMA could
 * read a line still dirty in a CPU cache. The service names them in `flush.after`; the
 * simulation's VMM waits for them.
 */
export function waitsForReplays(vm: Vm, quirks: QuirkTable, decision: Decision, cmd?: Command): boolean {
  if (cmd?.type === 'pin' || cmd?.type === 'unpin') return false;
  let override: NoSnoopOverride | undefined;
  if (cmd?.type === 'devctl' && decision.devctl !== undefined) {
    if ((decision.devctl.hardwareValue & DEVCTL_NOSNOOP_EN) === 0) return false;
    const device = vm.devices.get(cmd.bdf);
    if (cmd.dryRun === true && device !== undefined && device.nosnoop !== 'hardwired-zero') override = { bdf: cmd.bdf, nosnoop: 'enabled' };
  }
  return exposedDomains(vm, quirks, override).size > 0;
}
