/**
 * The definitions of SPEC section 3: may a device no-snoop, is a domain exposed, must KVM treat
 * the VM as having non-coherent DMA. Everything else is built on these three.
 */
import type { DomainId, PciAddress } from './ids.js';
import type { QuirkFlag, QuirkTable } from './quirks.js';
import type { Device, NoSnoopState, Vm } from './state.js';

/**
 * A hypothetical device state, for dry runs: evaluate as if `bdf` were in `nosnoop`, with the
 * pending state and quiet flag given (absent: nothing pending, not quiet). A dry run of a change
 * passes the device as the change would leave it, so that it reads exposure as the change does.
 */
export interface NoSnoopOverride {
  readonly bdf: PciAddress;
  readonly nosnoop: NoSnoopState;
  readonly pendingNosnoop?: NoSnoopState | null;
  readonly quietUntilReported?: boolean;
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
  const bit = override !== undefined && override.bdf === governing.bdf ? override : governing;
  // Bus mastering is off until the VMM writes the clear it was told: the function itself cannot
  // DMA meanwhile, but a VF already follows the bit the hardware holds.
  if (governing === device && bit.quietUntilReported === true && bit.pendingNosnoop !== undefined && bit.pendingNosnoop !== null) return bit.pendingNosnoop;
  return bit.nosnoop;
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
