/**
 * Pin commands: F1 (with C1, F4) maps a batch of ranges, F3 releases whole ranges. mapRanges is
 * also the map query's dry run, so a preview and the pin it previews classify alike.
 */
import { formatPages } from '../address.js';
import { DecisionBuilder } from '../decision.js';
import { exposedDomains, kvmNoncoherentDma } from '../exposure.js';
import type { VmId } from '../ids.js';
import { classifyPin, Exposure } from '../ranges.js';
import type { RuleId } from '../rules.js';
import { internSubset, isFlushExempt, packAttr, type CoherencyState, type Vm } from '../state.js';
import type { CommandResult, PinInput, RangeInput } from './command.js';
import { getVm, touch } from './common.js';
import { unpinVictims, validatePins } from './pin-checks.js';
import { release } from './release.js';

/** Per range of a pin or a map query: whether it is flushed, and the rule that decided it. */
export interface RangeOutcome {
  required: boolean;
  rule: RuleId;
}

/**
 * F1 (C1, F4) over a batch already validated: classifies every range with the one classifier,
 * adds the flushes to `out`, and (when `commit`) inserts the ranges. Without `commit` nothing
 * changes: this is the map query's dry run. `results`, when given, receives one outcome per range.
 */
export function mapRanges(vm: Vm, exposure: Exposure, ranges: readonly PinInput[], out: DecisionBuilder, commit: boolean, results?: RangeOutcome[]): void {
  let flushed = 0;
  let flushedPages = 0;
  let unlisted = 0;
  let exempt = 0;
  let coherent = 0;
  let quiet = 0;
  for (const r of ranges) {
    const domains = r.domains === undefined || r.domains === null || r.domains.length === 0 ? null : r.domains;
    const subset = commit ? internSubset(vm, domains) : 0;
    const verdict = commit ? exposure.ofSubset(subset) : exposure.ofDomains(domains);
    const c = classifyPin(verdict, packAttr(r.memType ?? 'WB', r.mmio ?? false, false, 0));
    // Pessimistic flags every range mapped into any non-coherent domain.
    const shadow = verdict !== 'coherent';
    const attr = packAttr(r.memType ?? 'WB', r.mmio ?? false, c.flag, subset, shadow);
    if (shadow && !isFlushExempt(attr)) out.pessimistic(r.pages);
    if (c.flush) {
      if (Number.isNaN(r.hpa)) {
        out.unlisted('pin');
        unlisted++;
      } else {
        out.flush(r.hpa, r.pages, 'pin');
        flushed++;
        flushedPages += r.pages;
      }
    } else if (c.rule === 'F4') exempt++;
    else if (c.rule === 'C1') coherent++;
    else quiet++;
    results?.push({ required: c.flush, rule: c.rule });
    if (!commit) continue;
    if (c.flag) vm.flaggedPages += r.pages;
    vm.pins.insert(r.iova, r.pages, r.hpa, attr);
  }
  if (flushed > 0) {
    const names = [...exposure.exposed].join(', ');
    out.reason('F1', `flush ${flushed} range(s), ${formatPages(flushedPages)} bytes, before mapping: they map into exposed domain(s) ${names}; flushOnUnpin set`);
  }
  if (unlisted > 0) {
    out.reason('F1', `flush ${unlisted} range(s) before mapping: they map into exposed domain(s) ${[...exposure.exposed].join(', ')}; give hpa to have their host ranges listed`);
  }
  if (exempt > 0) {
    out.reason('F4', `${exempt} mmio range(s) mapped UC, UC- or WC on the host are not flushed; flushOnUnpin set`);
  }
  if (coherent > 0) {
    out.reason('C1', `${coherent} range(s) map only into coherent domains: no flush`);
  }
  if (quiet > 0) {
    out.reason('F1', `${quiet} range(s) need no flush: their non-coherent domains are not exposed (no attached device may no-snoop)`);
  }
}

/** F1 (and C1, F4): pins a batch of ranges, all or nothing. */
export function pin(state: CoherencyState, cmd: { vmId: VmId; ranges: readonly PinInput[] }, now: number): CommandResult {
  const vm = getVm(state, cmd.vmId);
  validatePins(vm, cmd.ranges);
  const out = new DecisionBuilder();
  mapRanges(vm, new Exposure(vm, exposedDomains(vm, state.quirks)), cmd.ranges, out, true);
  touch(vm, now);
  return { state, decision: out.build(kvmNoncoherentDma(vm)) };
}

/** F3: unpins whole pinned ranges; a range that would be cut in two is refused (UNPIN_BISECTS). */
export function unpin(state: CoherencyState, cmd: { vmId: VmId; ranges: readonly RangeInput[] }, now: number): CommandResult {
  const vm = getVm(state, cmd.vmId);
  const victims = new Set<number>();
  const found: number[] = [];
  for (const r of cmd.ranges) {
    const hits = unpinVictims(vm, r.iova, r.pages, found);
    for (let h = 0; h < hits; h++) victims.add(found[4 * h] as number);
  }
  const out = new DecisionBuilder();
  release(vm, [...victims], out, 'unpin');
  touch(vm, now);
  return { state, decision: out.build(kvmNoncoherentDma(vm)) };
}
