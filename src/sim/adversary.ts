/**
 * What the simulator makes devices do to find leaks: every device that can put No-Snoop on the
 * wire reads and writes every page it can reach, the moment it can (when a page is pinned into a
 * domain it no-snoops into, or when it gains such a domain). A policy is safe only if every page
 * was flushed before that moment.
 */
import { attrMmio, attrSubset, domainsOf, type CoherencyState, type DomainId, type Vm, type VmId } from '../domain/index.js';
import type { Hardware } from './hardware.js';

export class Adversary {
  readonly #state: CoherencyState;
  readonly #hardware: Hardware;
  /** Per VM: the non-coherent domains a no-snoop-capable device is attached to. */
  readonly #emitting = new Map<VmId, ReadonlySet<DomainId>>();

  constructor(state: CoherencyState, hardware: Hardware) {
    this.#state = state;
    this.#hardware = hardware;
  }

  /**
   * Recomputes which domains of the VM a device can no-snoop into; when one was added, every page
   * mapped there meets the adversary at once (a replay must have flushed it already).
   */
  exposureChanged(vmId: VmId): void {
    const vm = this.#state.vms.get(vmId);
    if (vm === undefined) {
      this.#emitting.delete(vmId);
      return;
    }
    const next = new Set<DomainId>();
    for (const device of vm.devices.values()) {
      const hw = this.#hardware.device(vmId, device.bdf);
      if (device.domainId === null || hw === undefined) continue;
      if (vm.domains.get(device.domainId)?.enforceCacheCoherency === false && this.#hardware.emits(hw)) next.add(device.domainId);
    }
    const previous = this.#emitting.get(vmId) ?? new Set<DomainId>();
    this.#emitting.set(vmId, next);
    if (![...next].some((d) => !previous.has(d))) return;
    vm.pins.forEach((_start, pages, hpa, attr) => {
      if (!attrMmio(attr) && reaches(vm, attr, next)) this.#attack(vmId, hpa, pages);
      return undefined;
    });
  }

  /** RAM just pinned at `iovas`: what lands in a domain a device no-snoops into meets the adversary. */
  pinned(vmId: VmId, iovas: Iterable<number>): void {
    const vm = this.#state.vms.get(vmId);
    const emitting = this.#emitting.get(vmId);
    if (vm === undefined || emitting === undefined || emitting.size === 0) return;
    for (const iova of iovas) {
      const entry = vm.pins.get(iova);
      if (entry !== undefined && reaches(vm, entry.attr, emitting)) this.#attack(vmId, entry.hpa, entry.pages);
    }
  }

  /** A device reads the pages with no-snoop, the guest caches them clean, the device overwrites DRAM. */
  #attack(vmId: VmId, hpa: number, pages: number): void {
    this.#hardware.noSnoopRead(vmId, hpa, pages);
    this.#hardware.noSnoopWrite(hpa, pages);
  }
}

/** Whether a pinned range with `attr` maps into one of `domains`. */
function reaches(vm: Vm, attr: number, domains: ReadonlySet<DomainId>): boolean {
  for (const d of domainsOf(vm, attrSubset(attr))) if (domains.has(d)) return true;
  return false;
}
