/**
 * The transitions several commands share: F2, the replay owed when a domain becomes exposed (and
 * its pessimistic shadow, counted for "bytes avoided"), and K1, KVM's view of the VM.
 */
import { formatPages } from '../address.js';
import type { DecisionBuilder } from '../decision.js';
import { exposedDomains, kvmNoncoherentDma, type NoSnoopOverride } from '../exposure.js';
import type { DomainId } from '../ids.js';
import { classifyReplay } from '../ranges.js';
import { attrFlushOnUnpin, attrPessimisticFlag, attrSubset, isFlushExempt, withFlushOnUnpin, withPessimisticFlag, type CoherencyState, type Vm } from '../state.js';

/**
 * F2: flush every pinned range mapped into `domainId` whose flushOnUnpin flag is not set yet,
 * and set the flags (unless this is a dry run). Returns the ranges and pages concerned.
 */
function replay(vm: Vm, domainId: DomainId, out: DecisionBuilder, commit: boolean, replayed?: readonly boolean[]): { ranges: number; pages: number } {
  const mapsInto = vm.subsets.map((s, i) => i === 0 || s.includes(domainId));
  // Classified once per attribute word: the ranges newly flagged are counted, flushed unless exempt.
  // A dry run flags nothing, so the ranges an earlier domain of the same change replayed
  // (`replayed`, per subset of domains) are left out here, as their flags leave them out of a write.
  const walked = vm.pins.walkByAttr((attr) => {
    const subset = attrSubset(attr);
    const c = classifyReplay(attr, mapsInto[subset] === true);
    const counted = c.flag && !attrFlushOnUnpin(attr) && replayed?.[subset] !== true;
    return { attr: counted && commit ? withFlushOnUnpin(attr) : attr, collect: counted && c.flush, counted };
  });
  if (commit) vm.flaggedPages += walked.pages;
  out.flushAll(walked.pairs, 'replay', walked.coalesced);
  return { ranges: walked.ranges, pages: walked.pages };
}

/**
 * What the pessimistic policy would replay when `domainId` becomes non-coherent: the same walk
 * as F2 over the shadow flag, counted for the "bytes avoided" figure and never flushed.
 */
export function pessimisticReplay(vm: Vm, domainId: DomainId, out: DecisionBuilder): void {
  const mapsInto = vm.subsets.map((s, i) => i === 0 || s.includes(domainId));
  // One pass over the map's arrays, planned once per attribute word (see replay).
  const walked = vm.pins.walkByAttr((attr) => {
    if (attrPessimisticFlag(attr) || mapsInto[attrSubset(attr)] !== true) return { attr, collect: false, counted: false };
    return { attr: withPessimisticFlag(attr), collect: false, counted: !isFlushExempt(attr) };
  });
  if (walked.pages > 0) out.pessimistic(walked.pages);
}

/** F2 for every domain exposed now that was not exposed in `before`. */
export function exposureTransition(
  state: CoherencyState,
  vm: Vm,
  before: ReadonlySet<DomainId>,
  out: DecisionBuilder,
  commit: boolean,
  override?: NoSnoopOverride
): void {
  const after = exposedDomains(vm, state.quirks, override);
  const replayed = commit ? undefined : vm.subsets.map(() => false);
  for (const domainId of after) {
    if (before.has(domainId)) continue;
    const { ranges, pages } = replay(vm, domainId, out, commit, replayed);
    if (replayed !== undefined) {
      for (let i = 0; i < vm.subsets.length; i++) if (i === 0 || vm.subsets[i]?.includes(domainId) === true) replayed[i] = true;
    }
    out.reason(
      'F2',
      ranges === 0
        ? `domain ${domainId} becomes exposed; no pinned range needs a replay flush`
        : `domain ${domainId} becomes exposed: flush ${ranges} pinned range(s), ${formatPages(pages)} bytes, before the change takes effect; flushOnUnpin set`
    );
  }
}

/** K1: says so when the VM's need for non-coherent DMA handling in KVM changes. */
export function kvmTransition(vm: Vm, before: boolean, out: DecisionBuilder): boolean {
  const after = kvmNoncoherentDma(vm);
  if (after !== before) {
    const what =
      vm.arch === 'x86_64'
        ? 'KVM must treat the VM as having non-coherent DMA (honour guest WBINVD and PAT)'
        : "KVM must treat the VM as having non-coherent DMA (the guest's memory attributes and its cache maintenance by VA must reach the hardware)";
    out.reason('K1', after ? `a device now sits in a non-coherent domain: ${what}` : 'no device sits in a non-coherent domain any more: KVM may treat the VM as coherent');
  }
  return after;
}
