/**
 * F3: releasing pinned ranges, shared by unpin and by teardown (F5: a VM deleted, a domain
 * removed under its pins).
 */
import { formatPages } from '../address.js';
import type { DecisionBuilder, FlushCause } from '../decision.js';
import { classifyRelease } from '../ranges.js';
import { attrFlushOnUnpin, attrPessimisticFlag, isFlushExempt, type Vm } from '../state.js';

/**
 * F3: releases the pinned ranges that start at `starts`, flushing those whose flushOnUnpin flag
 * is set, except F4-exempt mmio. Used by unpin (F3) and teardown (F5).
 */
export function release(vm: Vm, starts: readonly number[], out: DecisionBuilder, cause: FlushCause): void {
  let flushed = 0;
  let flushedPages = 0;
  let clean = 0;
  let exempt = 0;
  for (const start of starts) {
    const r = vm.pins.get(start);
    if (r === undefined) continue;
    if (attrPessimisticFlag(r.attr) && !isFlushExempt(r.attr)) out.pessimistic(r.pages);
    if (attrFlushOnUnpin(r.attr)) vm.flaggedPages -= r.pages;
    const c = classifyRelease(r.attr);
    if (c.flush) {
      out.flush(r.hpa, r.pages, cause);
      flushed++;
      flushedPages += r.pages;
    } else if (c.rule === 'F4') {
      exempt++;
    } else {
      clean++;
    }
    vm.pins.remove(start);
  }
  if (flushed > 0) {
    out.reason('F3', `unmap, then flush ${flushed} range(s), ${formatPages(flushedPages)} bytes, before the pages are released: flushOnUnpin is set`);
  }
  if (clean > 0) {
    out.reason('F3', `${clean} range(s) released without a flush: never mapped into an exposed domain`);
  }
  if (exempt > 0) {
    out.reason('F4', `${exempt} mmio range(s) mapped UC, UC- or WC on the host are released without a flush`);
  }
}

/** The first page of every pinned range of `vm`, in IOVA order. */
export function allStarts(vm: Vm): number[] {
  const starts: number[] = [];
  vm.pins.forEach((start) => {
    starts.push(start);
    return undefined;
  });
  return starts;
}
