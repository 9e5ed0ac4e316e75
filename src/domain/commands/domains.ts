/**
 * IOMMU domain commands. A domain that stops enforcing coherency may expose pinned ranges (F2);
 * removing the last domain unmaps everything (F5).
 */
import { DecisionBuilder } from '../decision.js';
import { DomainError } from '../errors.js';
import { exposedDomains, kvmNoncoherentDma } from '../exposure.js';
import type { DomainId, VmId } from '../ids.js';
import { attrSubset, type CoherencyState } from '../state.js';
import type { CommandResult } from './command.js';
import { getVm, touch } from './common.js';
import { applyPolicyToSetBits } from './device-policy.js';
import { allStarts, release } from './release.js';
import { exposureTransition, kvmTransition, pessimisticReplay } from './transitions.js';

export function putDomain(
  state: CoherencyState,
  cmd: { vmId: VmId; domainId: DomainId; enforceCacheCoherency: boolean; iommu?: string | null },
  now: number
): CommandResult {
  const vm = getVm(state, cmd.vmId);
  const out = new DecisionBuilder();
  const existing = vm.domains.get(cmd.domainId);
  const iommu = cmd.iommu ?? null;
  if (existing !== undefined && existing.enforceCacheCoherency === cmd.enforceCacheCoherency && existing.iommu === iommu) {
    return { state, decision: out.build(kvmNoncoherentDma(vm)), created: false };
  }
  const before = exposedDomains(vm, state.quirks);
  const kvmBefore = kvmNoncoherentDma(vm);
  vm.domains.set(cmd.domainId, { id: cmd.domainId, enforceCacheCoherency: cmd.enforceCacheCoherency, iommu });
  if (!cmd.enforceCacheCoherency) pessimisticReplay(vm, cmd.domainId, out);
  if (cmd.enforceCacheCoherency) {
    out.reason('C1', `domain ${cmd.domainId} enforces cache coherency: nothing is flushed for it, existing flushOnUnpin flags stay`);
  }
  exposureTransition(state, vm, before, out, true);
  if (existing !== undefined) applyPolicyToSetBits(state, vm, out, `domain ${cmd.domainId} changed`);
  const kvm = kvmTransition(vm, kvmBefore, out);
  touch(vm, now);
  return { state, decision: out.build(kvm), created: existing === undefined };
}

/**
 * Removing the last domain unmaps everything (VFIO type1): F5. Removing one of several unpins
 * nothing, except pins that named only removed domains.
 */
export function deleteDomain(state: CoherencyState, cmd: { vmId: VmId; domainId: DomainId }, now: number): CommandResult {
  const vm = getVm(state, cmd.vmId);
  if (!vm.domains.has(cmd.domainId)) {
    throw new DomainError('UNKNOWN_DOMAIN', `domain ${cmd.domainId} does not exist in VM ${vm.id}`, { vmId: vm.id, domainId: cmd.domainId });
  }
  const attached = [...vm.devices.values()].filter((d) => d.domainId === cmd.domainId).map((d) => d.bdf);
  if (attached.length > 0) {
    throw new DomainError('DOMAIN_HAS_DEVICES', `domain ${cmd.domainId} still has devices attached: ${attached.join(', ')}`, {
      vmId: vm.id,
      domainId: cmd.domainId,
      devices: attached
    });
  }
  const out = new DecisionBuilder();
  const kvmBefore = kvmNoncoherentDma(vm);
  if (vm.domains.size === 1) {
    out.reason('F5', `domain ${cmd.domainId} is the VM's last domain: all ${vm.pins.size} pinned range(s) are unmapped and released`);
    release(vm, allStarts(vm), out, 'teardown');
  } else {
    const emptied = new Set<number>();
    vm.subsets.forEach((list, i) => {
      if (i === 0 || !list.includes(cmd.domainId)) return;
      const rest = list.filter((d) => d !== cmd.domainId);
      vm.subsets[i] = rest;
      if (rest.length === 0) emptied.add(i);
    });
    if (emptied.size > 0) {
      const orphans: number[] = [];
      vm.pins.forEach((start, _n, _h, attr) => {
        if (emptied.has(attrSubset(attr))) orphans.push(start);
        return undefined;
      });
      if (orphans.length > 0) {
        out.reason('F5', `${orphans.length} pinned range(s) mapped only into domain ${cmd.domainId} are unmapped and released`);
        release(vm, orphans, out, 'teardown');
      }
    }
  }
  vm.domains.delete(cmd.domainId);
  const kvm = kvmTransition(vm, kvmBefore, out);
  touch(vm, now);
  return { state, decision: out.build(kvm) };
}
