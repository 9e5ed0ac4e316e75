/**
 * The definitions of SPEC section 3: may a device no-snoop, is a domain exposed, must KVM treat
 * the VM as having non-coherent DMA. Everything else is built on these three.
 */
import type { Command } from './commands.js';
import type { Decision } from './decision.js';
import { DEVCTL_NOSNOOP_EN } from './devctl.js';
import type { DomainId, PciAddress } from './ids.js';
import type { QuirkFlag, QuirkTable } from './quirks.js';
import type { Device, NoSnoopState, Vm } from './state.js';

/** A hypothetical device state, for dry runs: evaluate as if `bdf` were in `nosnoop`. */
export interface NoSnoopOverride {
  readonly bdf: PciAddress;
  readonly nosnoop: NoSnoopState;
}

export function deviceQuirks(quirks: QuirkTable, device: Device): ReadonlySet<QuirkFlag> {
  return quirks.flagsFor(device.vendorId, device.deviceId);
}

/**
 * The function whose Enable No Snoop bit governs `device`: itself for a PF; for a VF (whose own
 * bit is reserved) its PF, but only when that PF is assigned to this VM. A VF whose PF is
 * elsewhere (another VM, the host, or gone) has no governing function the service can see: null.
 */
export function governingFunction(vm: Vm, device: Device): Device | null {
  if (device.function !== 'vf') return device;
  if (device.physfn === null) return null;
  const pf = vm.devices.get(device.physfn);
  return pf === undefined || pf.function === 'vf' ? null : pf;
}

/** The VFs of this VM that `pf`'s bit governs. */
export function governedVfs(vm: Vm, pf: Device): Device[] {
  const vfs: Device[] = [];
  if (pf.function === 'vf') return vfs;
  for (const d of vm.devices.values()) if (d.function === 'vf' && d.physfn === pf.bdf) vfs.push(d);
  return vfs;
}

/**
 * The state of the bit that governs the device. A VF follows its PF only when the PF is in this
 * VM; otherwise its bit may be anything the PF's owner set: `unknown`, whatever the VF reported.
 */
export function effectiveNoSnoop(vm: Vm, device: Device, override?: NoSnoopOverride): NoSnoopState {
  const governing = governingFunction(vm, device);
  if (governing === null) return 'unknown';
  if (override !== undefined && override.bdf === governing.bdf) return override.nosnoop;
  // Bus mastering is off until the VMM writes the clear it was told: the function itself cannot
  // DMA meanwhile, but a VF already follows the bit the hardware holds.
  if (governing === device && device.quietUntilReported && device.pendingNosnoop !== null) return device.pendingNosnoop;
  return governing.nosnoop;
}

/** Whether a state lets the function put No-Snoop on the wire. */
export function stateMayNoSnoop(state: NoSnoopState): boolean {
  return state === 'enabled' || state === 'unknown';
}

/**
 * A device may no-snoop if it is not PCI, or it or the function governing it carries
 * ignores-nosnoop-enable (a PF's quirk says its bit, which is also its VFs' bit, means nothing),
 * or its effective bit is enabled or unknown.
 */
export function mayNoSnoop(vm: Vm, device: Device, quirks: QuirkTable, override?: NoSnoopOverride): boolean {
  if (!device.pci) return true;
  if (deviceQuirks(quirks, device).has('ignores-nosnoop-enable')) return true;
  if (device.function === 'vf' && device.physfn !== null) {
    const pf = vm.devices.get(device.physfn);
    if (pf !== undefined && deviceQuirks(quirks, pf).has('ignores-nosnoop-enable')) return true;
  }
  return stateMayNoSnoop(effectiveNoSnoop(vm, device, override));
}

/**
 * Exposed domains: not coherent (C1), and the policy is pessimistic or an attached device may
 * no-snoop.
 */
export function exposedDomains(vm: Vm, quirks: QuirkTable, override?: NoSnoopOverride): Set<DomainId> {
  const exposed = new Set<DomainId>();
  const pessimistic = vm.policy.mode === 'pessimistic';
  for (const domain of vm.domains.values()) {
    if (!domain.enforceCacheCoherency && pessimistic) exposed.add(domain.id);
  }
  if (pessimistic) return exposed;
  for (const device of vm.devices.values()) {
    if (device.domainId === null || exposed.has(device.domainId)) continue;
    const domain = vm.domains.get(device.domainId);
    if (domain === undefined || domain.enforceCacheCoherency) continue;
    if (mayNoSnoop(vm, device, quirks, override)) exposed.add(domain.id);
  }
  return exposed;
}

/** K1: any device attached to a non-coherent domain. */
export function kvmNoncoherentDma(vm: Vm): boolean {
  for (const device of vm.devices.values()) {
    if (device.domainId === null) continue;
    const domain = vm.domains.get(device.domainId);
    if (domain !== undefined && !domain.enforceCacheCoherency) return true;
  }
  return false;
}

/**
 * Ordering (the VMM protocol): whether the change a decision answers is safe only once the VM's
 * outstanding replays (F2 flushes its VMM has not acknowledged yet) are done, since it lets a
 * device no-snoop: a DEVCTL value with Enable No Snoop set (one that clears it never is), or,
 * for any other change, a domain of the VM exposed after it (conservative: the change may attach
 * or re-enable a device). Given the command (`cmd`): a pin or unpin never is (mapping a page
 * exposes no other, and its own flush comes first); a reset that does not restore config counts
 * as any other change whatever value it then writes, since it leaves the bit at its default 1.
 * Until those replays are done, no-snoop DMA could read a line still dirty in a CPU cache. The
 * service names them in `flush.after`; the simulation's VMM waits for them.
 */
export function waitsForReplays(vm: Vm, quirks: QuirkTable, decision: Decision, cmd?: Command): boolean {
  if (cmd?.type === 'pin' || cmd?.type === 'unpin') return false;
  const resets = cmd?.type === 'reset-device' && cmd.restoresConfig === false;
  if (decision.devctl !== undefined && !resets) return (decision.devctl.hardwareValue & DEVCTL_NOSNOOP_EN) !== 0;
  return exposedDomains(vm, quirks).size > 0;
}
