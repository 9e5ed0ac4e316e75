/**
 * Read-only questions: "must I flush if I map or unmap these ranges?" and "what does this VM look
 * like?". Nothing here changes state.
 */
import { DecisionBuilder, type Decision } from './decision.js';
import { DomainError } from './errors.js';
import { deviceQuirks, effectiveNoSnoop, exposedDomains, kvmNoncoherentDma, mayNoSnoop } from './exposure.js';
import type { DomainId, PciAddress, VmId } from './ids.js';
import type { Arch, Policy } from './policy.js';
import type { QuirkFlag } from './quirks.js';
import type { RuleId } from './rules.js';
import { ascendingOrder } from './radix.js';
import { classifyRelease, classifyReplay, Exposure } from './ranges.js';
import { attrFlushOnUnpin, attrMemType, attrMmio, attrSubset, type CoherencyState, type Device, type IommuDomain, type MemType, type NoSnoopState, type Vm } from './state.js';
import type { PinInput } from './commands/command.js';
import { getVm } from './commands/common.js';
import { checkRange, pinOverlap, unpinVictims, validatePins } from './commands/pin-checks.js';
import { mapRanges, type RangeOutcome } from './commands/pins.js';

export interface FlushQueryRange {
  readonly iova: number;
  readonly pages: number;
  /** Host address, when the caller knows it (map of a range not pinned yet). */
  readonly hpa?: number;
  readonly memType?: MemType;
  readonly mmio?: boolean;
  readonly domains?: readonly DomainId[] | null;
}

export interface FlushQueryResult {
  readonly iova: number;
  readonly pages: number;
  readonly required: boolean;
  readonly rule: RuleId;
}

export interface FlushQueryAnswer {
  readonly decision: Decision;
  /** One answer per requested range, in request order. */
  readonly results: readonly FlushQueryResult[];
}

/**
 * A flush question's ranges as columns: page numbers in typed arrays, so that a batch of 10,000
 * ranges travels from body to answer without an object per range.
 */
export interface FlushQueryColumns {
  readonly iova: Float64Array;
  readonly pages: Float64Array;
  /** The ranges as given, for what else they carry (hpa, memType, mmio, domains); null: none carries more. */
  readonly given: readonly FlushQueryRange[] | null;
}

/** The answer as columns: results[i] is (iova[i], pages[i], required[i] === 1, rules[i]). */
export interface FlushQueryColumnsAnswer {
  readonly decision: Decision;
  readonly required: Uint8Array;
  readonly rules: readonly RuleId[];
}

/** What each rule means for a flush question, in the answer's reasons. */
const EXPLAIN: Partial<Record<RuleId, string>> = {
  F1: 'as a pin would: flush before mapping iff it maps into an exposed domain',
  F2: 'already pinned: a replay flush is due iff not yet flagged and mapped into an exposed domain',
  F3: 'unmap, then flush before release iff flushOnUnpin is set',
  F4: 'mmio mapped UC, UC- or WC on the host: never flushed',
  C1: 'maps only into coherent domains: no flush'
};

/** `ranges` as columns. */
export function flushQueryColumns(ranges: readonly FlushQueryRange[]): FlushQueryColumns {
  const iova = new Float64Array(ranges.length);
  const pages = new Float64Array(ranges.length);
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i] as FlushQueryRange;
    iova[i] = r.iova;
    pages[i] = r.pages;
  }
  return { iova, pages, given: ranges };
}

/**
 * Must the caller flush before mapping (`map`) or after unmapping, before release (`unmap`) the
 * given IOVA ranges? The answer is a dry run of the change, classified by the same code
 * (ranges.ts, and the pin and unpin checks of commands/pin-checks.ts): same verdict, same flush
 * ranges, same errors, nothing changed.
 * - map: ranges not pinned are previewed as a pin of them (F1, C1, F4; its errors: no domain,
 *   unknown domain, overlaps within the batch). A range wholly pinned already answers as a
 *   replay into `domains` (or its own domains) would (F2); one partly pinned is refused as the
 *   pin would refuse it (PIN_OVERLAP). Without `hpa` a required flush is reported, its host
 *   range left to the caller.
 * - unmap: as unpin would (F3, F4; UNKNOWN_RANGE, UNPIN_BISECTS).
 */
export function mustFlush(state: CoherencyState, vmId: VmId, op: 'map' | 'unmap', ranges: readonly FlushQueryRange[]): FlushQueryAnswer {
  const answer = mustFlushColumns(state, vmId, op, flushQueryColumns(ranges));
  return { decision: answer.decision, results: resultsOf(ranges, answer) };
}

/** The columns of an answer as one result object per range. */
export function resultsOf(ranges: readonly { readonly iova: number; readonly pages: number }[], answer: FlushQueryColumnsAnswer): FlushQueryResult[] {
  return ranges.map((r, i) => ({ iova: r.iova, pages: r.pages, required: answer.required[i] === 1, rule: answer.rules[i] as RuleId }));
}

/** `mustFlush` over columns: the one implementation, without an object per range. */
export function mustFlushColumns(state: CoherencyState, vmId: VmId, op: 'map' | 'unmap', q: FlushQueryColumns): FlushQueryColumnsAnswer {
  const vm = getVm(state, vmId);
  const out = new DecisionBuilder();
  const count = q.iova.length;
  const required = new Uint8Array(count);
  const rules = new Array<RuleId>(count);
  if (op === 'unmap') {
    // Looked up in ascending IOVA order (each leaf of the pin map read once), answered in request
    // order. A refusal is found again in request order, so the first refused range is named.
    const order = count < IN_ORDER_MIN ? null : ascendingOrder(q.iova);
    try {
      unmapQuery(vm, q, order, out, required, rules);
    } catch (err) {
      if (order === null) throw err;
      unmapQuery(vm, q, null, new DecisionBuilder(), required, rules);
      throw err;
    }
    explain(out, required, rules);
    return { decision: out.build(kvmNoncoherentDma(vm)), required, rules };
  }
  const exposure = new Exposure(vm, exposedDomains(vm, state.quirks));
  // Pinned ranges answer as replays; those not pinned at all (1 in `unpinned`) are previewed
  // below as one pin batch, with the pin's own checks. Looked up in IOVA order as for unmap.
  const unpinned = new Uint8Array(count);
  const order = count < IN_ORDER_MIN ? null : ascendingOrder(q.iova);
  try {
    replayQuery(vm, exposure, q, order, out, required, rules, unpinned);
  } catch (err) {
    if (order === null) throw err;
    replayQuery(vm, exposure, q, null, new DecisionBuilder(), required, rules, unpinned);
    throw err;
  }
  const fresh: PinInput[] = [];
  const freshAt: number[] = [];
  for (let i = 0; i < count; i++) {
    if (unpinned[i] === 0) continue;
    const r = q.given?.[i];
    fresh.push({ iova: q.iova[i] as number, pages: q.pages[i] as number, hpa: r?.hpa ?? Number.NaN, memType: r?.memType ?? 'WB', mmio: r?.mmio ?? false, domains: r?.domains ?? null });
    freshAt.push(i);
  }
  const previews: RangeOutcome[] = [];
  if (fresh.length > 0) {
    validatePins(vm, fresh);
    mapRanges(vm, exposure, fresh, new DecisionBuilder(), false, previews);
    for (let k = 0; k < fresh.length; k++) {
      const p = previews[k] as RangeOutcome;
      const r = fresh[k] as PinInput;
      if (p.required) {
        if (Number.isNaN(r.hpa)) out.unlisted('pin');
        else out.flush(r.hpa, r.pages, 'pin');
      }
      const at = freshAt[k] as number;
      required[at] = p.required ? 1 : 0;
      rules[at] = p.rule;
    }
  }
  explain(out, required, rules);
  return { decision: out.build(kvmNoncoherentDma(vm)), required, rules };
}

/** Batches at least this large are looked up in IOVA order. */
const IN_ORDER_MIN = 64;

/** The unmap answers of `q`, asked in `order` (null: request order); throws what the unpin would. */
function unmapQuery(vm: Vm, q: FlushQueryColumns, order: Uint32Array | null, out: DecisionBuilder, required: Uint8Array, rules: RuleId[]): void {
  const found: number[] = [];
  const overlaps = order === null ? undefined : vm.pins.overlapsInOrder();
  const count = q.iova.length;
  for (let k = 0; k < count; k++) {
    const i = order === null ? k : (order[k] as number);
    let rule: RuleId = 'F3';
    let flush = 0;
    const hits = unpinVictims(vm, q.iova[i] as number, q.pages[i] as number, found, overlaps);
    for (let h = 0; h < hits; h++) {
      const c = classifyRelease(found[4 * h + 3] as number);
      if (c.flush) {
        out.flush(found[4 * h + 2] as number, found[4 * h + 1] as number, 'unpin');
        flush = 1;
      } else if (c.rule === 'F4' && flush === 0) rule = 'F4';
      if (flush === 1) rule = 'F3';
    }
    required[i] = flush;
    rules[i] = rule;
  }
}

/**
 * The map answers of the pinned ranges of `q`, asked in `order` (null: request order), as the
 * replay into their domains would answer; ranges not pinned at all are marked in `unpinned`.
 * Throws what the pin would for a range partly pinned, and for an unknown domain.
 */
function replayQuery(vm: Vm, exposure: Exposure, q: FlushQueryColumns, order: Uint32Array | null, out: DecisionBuilder, required: Uint8Array, rules: RuleId[], unpinned: Uint8Array): void {
  const found: number[] = [];
  const overlaps = order === null ? null : vm.pins.overlapsInOrder();
  const count = q.iova.length;
  for (let k = 0; k < count; k++) {
    const i = order === null ? k : (order[k] as number);
    const iova = q.iova[i] as number;
    const pages = q.pages[i] as number;
    checkRange(iova, pages, 'iova');
    const hits = overlaps === null ? vm.pins.collectOverlaps(iova, iova + pages, found) : overlaps(iova, iova + pages, found);
    if (hits === 0) {
      unpinned[i] = 1;
      continue;
    }
    let covered = 0;
    for (let h = 0; h < hits; h++) {
      const start = found[4 * h] as number;
      covered += Math.min(start + (found[4 * h + 1] as number), iova + pages) - Math.max(start, iova);
    }
    if (covered < pages) throw pinOverlap(vm, { iova, pages }, found[0] as number, found[1] as number);
    const domains = q.given?.[i]?.domains;
    const explicit = domains === undefined || domains === null || domains.length === 0 ? null : domains;
    for (const d of explicit ?? []) {
      if (!vm.domains.has(d)) throw new DomainError('UNKNOWN_DOMAIN', `domain ${d} does not exist in VM ${vm.id}`, { vmId: vm.id, domainId: d });
    }
    let flush = 0;
    let rule: RuleId = 'F2';
    for (let h = 0; h < hits; h++) {
      const start = found[4 * h] as number;
      const attr = found[4 * h + 3] as number;
      const verdict = explicit === null ? exposure.ofSubset(attrSubset(attr)) : exposure.ofDomains(explicit);
      const c = classifyReplay(attr, verdict === 'exposed');
      if (c.flush) {
        const lo = Math.max(start, iova);
        const hi = Math.min(start + (found[4 * h + 1] as number), iova + pages);
        out.flush((found[4 * h + 2] as number) + (lo - start), hi - lo, 'replay');
        flush = 1;
        rule = 'F2';
      } else if (c.rule === 'F4' && flush === 0) rule = 'F4';
    }
    required[i] = flush;
    rules[i] = rule;
  }
}

/** One reason per rule, in the order rules first answered a range: ranges, and how many require a flush. */
function explain(out: DecisionBuilder, required: Uint8Array, rules: readonly RuleId[]): void {
  const counts = new Map<RuleId, { n: number; required: number }>();
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i] as RuleId;
    const count = counts.get(rule);
    if (count === undefined) counts.set(rule, { n: 1, required: required[i] as number });
    else {
      count.n++;
      count.required += required[i] as number;
    }
  }
  for (const [rule, { n, required: flushed }] of counts) {
    out.reason(rule, `${n} range(s), ${flushed} requiring a flush: ${EXPLAIN[rule] ?? ''}`);
  }
}

// ---- the whole VM, for GET /v1/vms/{vmId} -----------------------------------------------------

export interface DomainView extends IommuDomain {
  readonly coherent: boolean;
  readonly exposed: boolean;
  readonly devices: readonly PciAddress[];
}

export interface DeviceView extends Device {
  /** The bit that governs the device (a VF: its PF's when the PF is in the VM). */
  readonly effectiveNosnoop: NoSnoopState;
  readonly mayNoSnoop: boolean;
  readonly quirks: readonly QuirkFlag[];
}

export interface VmView {
  readonly id: VmId;
  readonly arch: Arch;
  readonly policy: Policy;
  readonly domains: readonly DomainView[];
  readonly devices: readonly DeviceView[];
  readonly pinned: { readonly ranges: number; readonly pages: number; readonly flushOnUnpinPages: number };
  readonly kvmNoncoherentDma: boolean;
  readonly revision: number;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export function viewVm(state: CoherencyState, vm: Vm): VmView {
  const exposed = exposedDomains(vm, state.quirks);
  const devices = [...vm.devices.values()].sort((a, b) => (a.bdf < b.bdf ? -1 : 1));
  return {
    id: vm.id,
    arch: vm.arch,
    policy: vm.policy,
    domains: [...vm.domains.values()]
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((d) => ({
        ...d,
        coherent: d.enforceCacheCoherency,
        exposed: exposed.has(d.id),
        devices: devices.filter((x) => x.domainId === d.id).map((x) => x.bdf)
      })),
    devices: devices.map((d) => ({
      ...d,
      effectiveNosnoop: effectiveNoSnoop(vm, d),
      mayNoSnoop: mayNoSnoop(vm, d, state.quirks),
      quirks: [...deviceQuirks(state.quirks, d)]
    })),
    pinned: { ranges: vm.pins.size, pages: vm.pins.pages, flushOnUnpinPages: vm.flaggedPages },
    kvmNoncoherentDma: kvmNoncoherentDma(vm),
    revision: vm.revision,
    createdAt: vm.createdAt,
    updatedAt: vm.updatedAt
  };
}

export interface PinnedRangeView {
  readonly iova: number;
  readonly pages: number;
  readonly hpa: number;
  readonly memType: MemType;
  readonly mmio: boolean;
  readonly flushOnUnpin: boolean;
  /** Null: every domain of the VM. */
  readonly domains: readonly DomainId[] | null;
}

/** Up to `limit` pinned ranges starting at IOVA page `after` or later, in IOVA order. */
export function listPins(vm: Vm, after: number, limit: number): PinnedRangeView[] {
  return vm.pins.page(after, limit).map((r) => {
    const subset = attrSubset(r.attr);
    return {
      iova: r.start,
      pages: r.pages,
      hpa: r.hpa,
      memType: attrMemType(r.attr),
      mmio: attrMmio(r.attr),
      flushOnUnpin: attrFlushOnUnpin(r.attr),
      domains: subset === 0 ? null : [...(vm.subsets[subset] ?? [])]
    };
  });
}

