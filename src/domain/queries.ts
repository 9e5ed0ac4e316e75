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
import { classifyRelease, classifyReplay, Exposure } from './ranges.js';
import { attrFlushOnUnpin, attrMemType, attrMmio, attrSubset, type CoherencyState, type Device, type IommuDomain, type MemType, type NoSnoopState, type Vm } from './state.js';
import { checkRange, getVm, mapRanges, pinOverlap, unpinVictims, validatePins, type PinInput, type RangeOutcome } from './commands.js';

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
  F3: 'unmap, then flush before release iff flushOnUnpin is set',
  F4: 'mmio mapped UC, UC- or WC on the host: never flushed',
  C1: 'maps only into coherent domains: no flush'
};

/**
 * Must the caller flush before mapping (`map`) or after unmapping, before release (`unmap`) the
 * given IOVA ranges? The answer is a dry run of the change, classified by the same code
 * (ranges.ts, and the pin and unpin checks of commands.ts): same verdict, same flush ranges,
 * same errors, nothing changed.
 * - map: ranges not pinned are previewed as a pin of them (F1, C1, F4; its errors: no domain,
 *   unknown domain, overlaps within the batch). A range wholly pinned already answers as a
 *   replay into `domains` (or its own domains) would (F2); one partly pinned is refused as the
 *   pin would refuse it (PIN_OVERLAP). Without `hpa` a required flush is reported, its host
 *   range left to the caller.
 * - unmap: as unpin would (F3, F4; UNKNOWN_RANGE, UNPIN_BISECTS).
 */
export function mustFlush(state: CoherencyState, vmId: VmId, op: 'map' | 'unmap', ranges: readonly FlushQueryRange[]): FlushQueryAnswer {
  const vm = getVm(state, vmId);
  const out = new DecisionBuilder();
  const results: FlushQueryResult[] = [];
  if (op === 'unmap') {
    const found: number[] = [];
    for (const r of ranges) {
      let required = false;
      let rule: RuleId = 'F3';
      const hits = unpinVictims(vm, r, found);
      for (let h = 0; h < hits; h++) {
        const c = classifyRelease(found[4 * h + 3] as number);
        if (c.flush) {
          out.flush(found[4 * h + 2] as number, found[4 * h + 1] as number, 'unpin');
          required = true;
        } else if (c.rule === 'F4' && !required) rule = 'F4';
        if (required) rule = 'F3';
      }
      results.push({ iova: r.iova, pages: r.pages, required, rule });
    }
    explain(out, results);
    return { decision: out.build(kvmNoncoherentDma(vm)), results };
  }
  const exposure = new Exposure(vm, exposedDomains(vm, state.quirks));
  // Ranges not pinned at all are previewed as one pin batch, with the pin's own checks.
  const fresh: PinInput[] = [];
  const freshAt: number[] = [];
  const found: number[] = [];
  const pinned: (FlushQueryResult | undefined)[] = [];
  for (let q = 0; q < ranges.length; q++) {
    const r = ranges[q] as FlushQueryRange;
    checkRange(r.iova, r.pages, 'iova');
    const hits = vm.pins.collectOverlaps(r.iova, r.iova + r.pages, found);
    if (hits === 0) {
      fresh.push({ iova: r.iova, pages: r.pages, hpa: r.hpa ?? Number.NaN, memType: r.memType ?? 'WB', mmio: r.mmio ?? false, domains: r.domains ?? null });
      freshAt.push(q);
      continue;
    }
    let covered = 0;
    for (let h = 0; h < hits; h++) {
      const start = found[4 * h] as number;
      covered += Math.min(start + (found[4 * h + 1] as number), r.iova + r.pages) - Math.max(start, r.iova);
    }
    if (covered < r.pages) throw pinOverlap(vm, r, found[0] as number, found[1] as number);
    const explicit = r.domains === undefined || r.domains === null || r.domains.length === 0 ? null : r.domains;
    for (const d of explicit ?? []) {
      if (!vm.domains.has(d)) throw new DomainError('UNKNOWN_DOMAIN', `domain ${d} does not exist in VM ${vm.id}`, { vmId, domainId: d });
    }
    let required = false;
    let rule: RuleId = 'F2';
    for (let h = 0; h < hits; h++) {
      const start = found[4 * h] as number;
      const attr = found[4 * h + 3] as number;
      const verdict = explicit === null ? exposure.ofSubset(attrSubset(attr)) : exposure.ofDomains(explicit);
      const c = classifyReplay(attr, verdict === 'exposed');
      if (c.flush) {
        const lo = Math.max(start, r.iova);
        const hi = Math.min(start + (found[4 * h + 1] as number), r.iova + r.pages);
        out.flush((found[4 * h + 2] as number) + (lo - start), hi - lo, 'replay');
        required = true;
        rule = 'F2';
      } else if (c.rule === 'F4' && !required) rule = 'F4';
    }
    pinned[q] = { iova: r.iova, pages: r.pages, required, rule };
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
      pinned[freshAt[k] as number] = { iova: r.iova, pages: r.pages, required: p.required, rule: p.rule };
    }
  }
  for (const result of pinned) results.push(result as FlushQueryResult);
  explain(out, results);
  return { decision: out.build(kvmNoncoherentDma(vm)), results };
}

/** One reason per rule, in the order rules first answered a range: ranges, and how many require a flush. */
function explain(out: DecisionBuilder, results: readonly FlushQueryResult[]): void {
  const counts = new Map<RuleId, { n: number; required: number }>();
  for (const r of results) {
    const count = counts.get(r.rule);
    if (count === undefined) counts.set(r.rule, { n: 1, required: r.required ? 1 : 0 });
    else {
      count.n++;
      if (r.required) count.required++;
    }
  }
  for (const [rule, { n, required }] of counts) {
    out.reason(rule, `${n} range(s), ${required} requiring a flush: ${EXPLAIN[rule] ?? ''}`);
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

