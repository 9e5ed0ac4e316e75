/**
 * The definitions of SPEC section 3: may a device no-snoop, is a domain exposed, must KVM treat
 * the VM as having non-coherent DMA. Everything else is built on these three.
 */
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

/** The bit that governs the device: a VF's own bit is reserved, so its PF's counts (if the PF is in this VM). */
export function effectiveNoSnoop(vm: Vm, device: Device, override?: NoSnoopOverride): NoSnoopState {
  let governing = device;
  if (device.function === 'vf' && device.physfn !== null) {
    governing = vm.devices.get(device.physfn) ?? device;
  }
  if (override !== undefined && override.bdf === governing.bdf) return override.nosnoop;
  return governing.nosnoop;
}

/**
 * A device may no-snoop if it carries ignores-nosnoop-enable, or its effective bit is enabled
 * or unknown, or it is not PCI.
 */
export function mayNoSnoop(vm: Vm, device: Device, quirks: QuirkTable, override?: NoSnoopOverride): boolean {
  if (!device.pci) return true;
  if (deviceQuirks(quirks, device).has('ignores-nosnoop-enable')) return true;
  const state = effectiveNoSnoop(vm, device, override);
  return state === 'enabled' || state === 'unknown';
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
