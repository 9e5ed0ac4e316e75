/**
 * Read-only questions: "must I flush if I map or unmap these ranges?" and "what does this VM look
 * like?". Nothing here changes state.
 */
import { checkSpan } from './address.js';
import { DecisionBuilder, type Decision } from './decision.js';
import { DomainError } from './errors.js';
import { deviceQuirks, effectiveNoSnoop, exposedDomains, kvmNoncoherentDma, mayNoSnoop } from './exposure.js';
import type { DomainId, PciAddress, VmId } from './ids.js';
import type { Arch, Policy } from './policy.js';
import type { QuirkFlag } from './quirks.js';
import type { RuleId } from './rules.js';
import { attrFlushOnUnpin, attrMemType, attrMmio, attrSubset, isFlushExempt, packAttr, type CoherencyState, type Device, type IommuDomain, type MemType, type NoSnoopState, type Vm } from './state.js';
import { getVm } from './commands.js';

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

/** What each rule means for a flush question, in the answer's reasons. */
const EXPLAIN: Partial<Record<RuleId, string>> = {
  F1: 'as a pin would: flush before mapping iff it maps into an exposed domain',
  F2: 'already pinned: a replay flush is due iff not yet flagged and mapped into an exposed domain',
  F3: 'flush before release iff flushOnUnpin is set',
  F4: 'mmio mapped UC, UC- or WC on the host: never flushed',
  C1: 'maps only into coherent domains: no flush'
};

// mustFlush's helpers live out here rather than as closures: a one-range question should not
// allocate functions.

function anyIn(set: ReadonlySet<DomainId>, list: readonly DomainId[]): boolean {
  for (const d of list) if (set.has(d)) return true;
  return false;
}

function allCoherentIn(vm: Vm, list: readonly DomainId[]): boolean {
  for (const d of list) if (vm.domains.get(d)?.enforceCacheCoherency !== true) return false;
  return true;
}

/** Whether a subset maps into an exposed domain, remembered in `memo` per subset index. */
function isSubsetExposed(vm: Vm, exposed: ReadonlySet<DomainId>, memo: (boolean | undefined)[], subset: number): boolean {
  let e = memo[subset];
  if (e === undefined) {
    e = anyIn(exposed, subset === 0 ? [...vm.domains.keys()] : (vm.subsets[subset] ?? []));
    memo[subset] = e;
  }
  return e;
}

/**
 * Must the caller flush before mapping (`map`) or after unmapping, before release (`unmap`) the
 * given IOVA ranges?
 * - map: a range already pinned answers as a replay would (flush iff mapped into an exposed
 *   domain and not flagged yet); a range not pinned answers as a pin would (F1, C1, F4).
 * - unmap: flush iff a pinned range inside it has flushOnUnpin (F3), except F4 mmio.
 */
export function mustFlush(state: CoherencyState, vmId: VmId, op: 'map' | 'unmap', ranges: readonly FlushQueryRange[]): FlushQueryAnswer {
  const vm = getVm(state, vmId);
  for (const r of ranges) {
    checkSpan(r.iova, r.pages, 'iova');
    if (r.hpa !== undefined) checkSpan(r.hpa, r.pages, 'hpa');
    for (const d of r.domains ?? []) {
      if (!vm.domains.has(d)) throw new DomainError('UNKNOWN_DOMAIN', `domain ${d} does not exist in VM ${vm.id}`, { vmId, domainId: d });
    }
  }
  const out = new DecisionBuilder();
  const exposed = exposedDomains(vm, state.quirks);
  const allDomains = [...vm.domains.keys()];
  // Exposure of each interned subset (index 0: every domain), computed on first use.
  const subsetExposed: (boolean | undefined)[] = [];
  const allCoherent = allCoherentIn(vm, allDomains);
  // Per rule, in the order rules first fire: ranges answered with it, and how many require a flush.
  const counts = new Map<RuleId, { n: number; required: number }>();
  const results: FlushQueryResult[] = [];
  const cause = op === 'unmap' ? 'unpin' : 'replay';
  const found: number[] = [];
  for (let q = 0; q < ranges.length; q++) {
    const r = ranges[q] as FlushQueryRange;
    let required = false;
    let rule: RuleId = op === 'map' ? 'F1' : 'F3';
    const end = r.iova + r.pages;
    let covered = 0;
    const hits = vm.pins.collectOverlaps(r.iova, end, found);
    for (let h = 0; h < hits; h++) {
      const start = found[4 * h] as number;
      const attr = found[4 * h + 3] as number;
      const lo = Math.max(start, r.iova);
      const hi = Math.min(start + (found[4 * h + 1] as number), end);
      covered += hi - lo;
      const flagged = attrFlushOnUnpin(attr);
      const wanted = op === 'unmap' ? flagged : !flagged && isSubsetExposed(vm, exposed, subsetExposed, attrSubset(attr));
      if (!wanted) continue;
      if (isFlushExempt(attr)) {
        rule = 'F4';
        continue;
      }
      required = true;
      rule = op === 'unmap' ? 'F3' : 'F2';
      out.flush((found[4 * h + 2] as number) + (lo - start), hi - lo, cause);
    }
    if (op === 'map' && covered === r.pages && !required && rule === 'F1') {
      // Wholly pinned already: only a replay could be due, and none is.
      rule = 'F2';
    }
    if (op === 'map' && covered < r.pages) {
      // Part of the range is not pinned: answer as a pin of it would.
      const attr = packAttr(r.memType ?? 'WB', r.mmio ?? false, false, 0);
      const explicit = r.domains ?? null;
      if (explicit === null ? isSubsetExposed(vm, exposed, subsetExposed, 0) : anyIn(exposed, explicit)) {
        if (isFlushExempt(attr)) {
          if (!required) rule = 'F4';
        } else {
          required = true;
          rule = 'F1';
          if (r.hpa !== undefined) out.flush(r.hpa, r.pages, 'pin');
        }
      } else if (!required && (explicit === null ? allCoherent : allCoherentIn(vm, explicit))) {
        rule = 'C1';
      }
    }
    const count = counts.get(rule);
    if (count === undefined) counts.set(rule, { n: 1, required: required ? 1 : 0 });
    else {
      count.n++;
      if (required) count.required++;
    }
    results.push({ iova: r.iova, pages: r.pages, required, rule });
  }
  for (const [rule, { n, required }] of counts) {
    out.reason(rule, `${n} range(s), ${required} requiring a flush: ${EXPLAIN[rule] ?? ''}`);
  }
  return { decision: out.build(kvmNoncoherentDma(vm)), results };
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

