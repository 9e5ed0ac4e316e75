/** VM commands: create or re-policy a VM (put-vm), and tear one down (F5). */
import { DecisionBuilder } from '../decision.js';
import { DomainError } from '../errors.js';
import { exposedDomains, kvmNoncoherentDma } from '../exposure.js';
import type { VmId } from '../ids.js';
import { resolvePolicy, type Arch, type PolicyInput } from '../policy.js';
import { createVm, type CoherencyState } from '../state.js';
import type { CommandResult } from './command.js';
import { getVm, touch } from './common.js';
import { applyPolicyToSetBits } from './device-policy.js';
import { allStarts, release } from './release.js';
import { exposureTransition } from './transitions.js';

export function putVm(state: CoherencyState, cmd: { vmId: VmId; arch: Arch; policy?: PolicyInput }, now: number): CommandResult {
  const policy = resolvePolicy(cmd.arch, state.defaults, cmd.policy);
  const out = new DecisionBuilder();
  const existing = state.vms.get(cmd.vmId);
  if (existing === undefined) {
    const vm = createVm(cmd.vmId, cmd.arch, policy, now);
    state.vms.set(vm.id, vm);
    touch(vm, now);
    return { state, decision: out.build(false), created: true };
  }
  if (existing.arch !== cmd.arch) {
    throw new DomainError('ARCH_CHANGE', `VM ${cmd.vmId} is ${existing.arch}; its architecture cannot change`, { vmId: cmd.vmId });
  }
  const before = exposedDomains(existing, state.quirks);
  existing.policy = policy;
  exposureTransition(state, existing, before, out, true);
  applyPolicyToSetBits(state, existing, out, 'policy change');
  touch(existing, now);
  return { state, decision: out.build(kvmNoncoherentDma(existing)), created: false };
}

/** F5: teardown unpins every range with F3 semantics. */
export function deleteVm(state: CoherencyState, vmId: VmId): CommandResult {
  const vm = getVm(state, vmId);
  const out = new DecisionBuilder();
  const count = vm.pins.size;
  out.reason('F5', `VM teardown: ${count} pinned range(s) are unmapped, then released with unpin semantics`);
  release(vm, allStarts(vm), out, 'teardown');
  state.vms.delete(vmId);
  return { state, decision: out.build(false), revision: vm.revision + 1 };
}
