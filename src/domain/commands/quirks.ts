/** The quirk command: a new quirk table may expose domains of any VM (F2) or deny bits left set. */
import { DecisionBuilder, type Decision } from '../decision.js';
import { exposedDomains, kvmNoncoherentDma } from '../exposure.js';
import type { DomainId, VmId } from '../ids.js';
import { QuirkTable, type Quirk } from '../quirks.js';
import type { CoherencyState } from '../state.js';
import type { CommandResult } from './command.js';
import { touch } from './common.js';
import { applyPolicyToSetBits } from './device-policy.js';
import { exposureTransition } from './transitions.js';

/** Replaces the quirk table; every VM whose domains become exposed gets its F2 replay. */
export function putQuirks(state: CoherencyState, quirks: readonly Quirk[], now: number): CommandResult {
  const before = new Map<VmId, Set<DomainId>>();
  for (const vm of state.vms.values()) before.set(vm.id, exposedDomains(vm, state.quirks));
  state.quirks = new QuirkTable(quirks);
  const vms = new Map<VmId, Decision>();
  for (const vm of state.vms.values()) {
    const out = new DecisionBuilder();
    exposureTransition(state, vm, before.get(vm.id) ?? new Set(), out, true);
    applyPolicyToSetBits(state, vm, out, 'quirk change');
    if (out.reasons.length > 0) {
      touch(vm, now);
      vms.set(vm.id, out.build(kvmNoncoherentDma(vm)));
    }
  }
  const out = new DecisionBuilder();
  return { state, decision: out.build(false), vms, quirks: state.quirks.quirks };
}
