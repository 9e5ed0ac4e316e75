/**
 * Checks on the decision core's own state, for the models that drive it: its bookkeeping of
 * flagged ranges, and a canonical text of the whole state.
 */
import { attrFlushOnUnpin, attrSubset, domainsOf, exposedDomains, type CoherencyState } from '../../src/domain/index.js';

/** Every pinned range mapped into an exposed domain carries flushOnUnpin; flaggedPages adds up. */
export function checkFlagInvariant(state: CoherencyState): void {
  for (const vm of state.vms.values()) {
    const exposed = exposedDomains(vm, state.quirks);
    let flagged = 0;
    vm.pins.forEach((start, pages, _hpa, attr) => {
      if (attrFlushOnUnpin(attr)) flagged += pages;
      else if (domainsOf(vm, attrSubset(attr)).some((d) => exposed.has(d))) {
        throw new Error(`VM ${vm.id}: range at page ${start} maps into an exposed domain without flushOnUnpin`);
      }
      return undefined;
    });
    if (flagged !== vm.flaggedPages) throw new Error(`VM ${vm.id}: flaggedPages ${vm.flaggedPages} != ${flagged}`);
  }
}

/** A canonical text of the whole state, to prove that a rejected command changed nothing. */
export function digest(state: CoherencyState): string {
  const vms = [...state.vms.values()].map((vm) => {
    const pins: number[] = [];
    vm.pins.forEach((s, p, h, a) => {
      pins.push(s, p, h, a);
      return undefined;
    });
    return {
      id: vm.id,
      policy: vm.policy,
      domains: [...vm.domains.values()],
      devices: [...vm.devices.values()],
      subsets: vm.subsets,
      pins,
      flaggedPages: vm.flaggedPages,
      revision: vm.revision
    };
  });
  return JSON.stringify({ vms, quirks: state.quirks.quirks });
}
