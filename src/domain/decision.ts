/**
 * What every state-changing answer carries: the flush the caller must perform before the change
 * takes effect, the devctl outcome for config-space writes, and the reasons, each naming a rule.
 */
import type { PciAddress } from './ids.js';
import { sortPageNumbers } from './radix.js';
import type { RuleId } from './rules.js';

export interface Reason {
  readonly rule: RuleId;
  readonly message: string;
}

/** A host-physical range, in 4 KiB pages. */
export interface HostRange {
  readonly hpa: number;
  readonly pages: number;
}

export const FLUSH_CAUSES = ['pin', 'unpin', 'replay', 'teardown'] as const;
export type FlushCause = (typeof FLUSH_CAUSES)[number];

/**
 * When the flush happens relative to the change: pins and replays flush, then map (the device
 * must never reach a line the flush has not cleaned); unpins, teardown and domain removal unmap
 * from the IOMMU, flush, then release the pages (the series flushes just before put_pfn(), so no
 * device write can land after the flush).
 */
export type FlushWhen = 'before-map' | 'after-unmap';

export function flushWhen(cause: FlushCause): FlushWhen {
  return cause === 'pin' || cause === 'replay' ? 'before-map' : 'after-unmap';
}

export interface FlushDecision {
  readonly required: boolean;
  /**
   * Host-physical ranges, sorted, coalesced (adjacent merged, overlaps counted once). A large
   * flush (a replay of a whole VM) makes these objects only when something reads them: its
   * answer, job and log work from `flushPairs` instead.
   */
  readonly ranges: readonly HostRange[];
  /** Total pages in `ranges`. */
  readonly pages: number;
  /** Why the flush exists (flush jobs are accounted by cause); null when nothing is flushed. */
  readonly cause: FlushCause | null;
  /** When to flush relative to the change; null when nothing is flushed. */
  readonly when: FlushWhen | null;
}

export const DEVCTL_VERDICTS = ['allow', 'deny', 'ignore'] as const;
export type DevctlVerdict = (typeof DEVCTL_VERDICTS)[number];

export interface DevctlOutcome {
  readonly decision: DevctlVerdict;
  /** The 16-bit DEVCTL value the VMM writes to the device. */
  readonly hardwareValue: number;
  /** The 16-bit DEVCTL value the guest reads back. */
  readonly guestValue: number;
}

/** A DEVCTL value the VMM must write to one device of the VM (attach, reset, policy change). */
export interface DeviceWrite extends DevctlOutcome {
  readonly bdf: PciAddress;
}

export interface Decision {
  readonly flush: FlushDecision;
  readonly reasons: readonly Reason[];
  /** K1: KVM must honour guest WBINVD and PAT for this VM. */
  readonly kvmNoncoherentDma: boolean;
  /** Pages the pessimistic policy would have flushed for the same event (for "bytes avoided"). */
  readonly pessimisticPages: number;
  /** Present for devctl writes, and for device attach or reset when the VMM must (re)write the bit. */
  readonly devctl?: DevctlOutcome;
  /**
   * A policy, domain or quirk change that makes the policy deny a bit already set: the value to
   * write to each such device. The exposure it causes ends once the VMM reports the bit clear.
   */
  readonly devices?: readonly DeviceWrite[];
}

const NO_PAIRS = new Float64Array(0);

/** A flush of this many ranges or more keeps them as pairs and makes range objects only on demand. */
const LAZY_RANGES = 64;

/** The same ranges as (hpa, pages) pairs, without an object per range when the decision has them so. */
export function flushPairs(flush: FlushDecision): Float64Array {
  return (flush as { pairs?: Float64Array }).pairs ?? pairsOf(flush.ranges);
}

/** Host ranges as (hpa, pages) pairs. */
export function pairsOf(ranges: readonly HostRange[]): Float64Array {
  const pairs = new Float64Array(2 * ranges.length);
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i] as HostRange;
    pairs[2 * i] = r.hpa;
    pairs[2 * i + 1] = r.pages;
  }
  return pairs;
}

/** How many ranges `flush` lists, without making them. */
export function flushRangeCount(flush: FlushDecision): number {
  const kept = (flush as { pairs?: Float64Array }).pairs;
  return kept === undefined ? flush.ranges.length : kept.length / 2;
}

/** The first `limit` ranges of `flush`, made from its pairs when it has them. */
export function firstFlushRanges(flush: FlushDecision, limit: number): readonly HostRange[] {
  const kept = (flush as { pairs?: Float64Array }).pairs;
  if (kept === undefined) return flush.ranges.length > limit ? flush.ranges.slice(0, limit) : flush.ranges;
  return rangesOf(kept, Math.min(limit, kept.length / 2));
}

/** A required flush of sorted, coalesced `pairs`, its range objects made only when read. */
function lazyFlush(pairs: Float64Array, pages: number, cause: FlushCause | null, when: FlushWhen | null): FlushDecision {
  let ranges: HostRange[] | undefined;
  const flush: FlushDecision = {
    required: true,
    get ranges(): HostRange[] {
      return (ranges ??= rangesOf(pairs, pairs.length / 2));
    },
    pages,
    cause,
    when
  };
  Object.defineProperty(flush, 'pairs', { value: pairs });
  return flush;
}

function rangesOf(pairs: Float64Array, count: number): HostRange[] {
  const out: HostRange[] = new Array<HostRange>(count);
  for (let i = 0; i < count; i++) out[i] = { hpa: pairs[2 * i] as number, pages: pairs[2 * i + 1] as number };
  return out;
}

/**
 * The union of `count` (start, pages) pairs in any order, as sorted pairs with touching and
 * overlapping ones merged, and its pages. Starts and ends are sorted apart (a radix sort, no
 * comparator) and swept: a segment opens at a start while none is open and closes at
 * the end that leaves none open; a start at or before the next end keeps the segment open,
 * so touching ranges merge.
 */
export function coalesceUnsorted(added: Float64Array, count: number): { pairs: Float64Array; pages: number } {
  const starts = new Float64Array(count);
  const ends = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const s = added[2 * i] as number;
    starts[i] = s;
    ends[i] = s + (added[2 * i + 1] as number);
  }
  sortPageNumbers(starts);
  sortPageNumbers(ends);
  const out = new Float64Array(2 * count);
  let n = 0;
  let pages = 0;
  let open = 0;
  let from = 0;
  let j = 0;
  for (let i = 0; i < count; ) {
    const s = starts[i] as number;
    if (s <= (ends[j] as number)) {
      if (open === 0) from = s;
      open++;
      i++;
    } else {
      open--;
      if (open === 0) {
        out[n++] = from;
        out[n++] = (ends[j] as number) - from;
        pages += (ends[j] as number) - from;
      }
      j++;
    }
  }
  // Every start is in: the open segment closes at the last end.
  const last = ends[count - 1] as number;
  out[n++] = from;
  out[n++] = last - from;
  pages += last - from;
  return { pairs: n === out.length ? out : out.subarray(0, n), pages };
}

/**
 * Collects the host ranges one command must flush and the reasons given, then coalesces them
 * into a FlushDecision. Ranges are added in any order, as pairs in one typed array; `build` sorts
 * once.
 */
export class DecisionBuilder {
  /** (hpa, pages) pairs as added; made at the first flush (most decisions flush nothing). */
  #pairs: Float64Array = NO_PAIRS;
  #count = 0;
  /** Pages of the pairs when they are known to be sorted and coalesced already (one walk's). */
  #coalesced: number | null = null;
  #cause: FlushCause | null = null;
  #pessimisticPages = 0;
  /** A flush is required whose host ranges the caller knows and this builder does not (a query without hpa). */
  #unlisted = false;
  readonly #devices: DeviceWrite[] = [];
  readonly reasons: Reason[] = [];

  /** Counts pages the pessimistic policy would flush for this event. */
  pessimistic(pages: number): void {
    this.#pessimisticPages += pages;
  }

  flush(hpa: number, pages: number, cause: FlushCause): void {
    this.#coalesced = null;
    this.#room(2);
    const at = 2 * this.#count;
    this.#pairs[at] = hpa;
    this.#pairs[at + 1] = pages;
    this.#count++;
    // A command has one cause; a replay inside a pin or unpin does not happen, so the first wins.
    this.#cause ??= cause;
  }

  /**
   * Flushes every (hpa, pages) pair of `pairs` (one walk's ranges, added at once). `coalesced`:
   * the pairs are sorted and coalesced already, with that many pages (null: not known to be).
   */
  flushAll(pairs: Float64Array, cause: FlushCause, coalesced: number | null = null): void {
    if (pairs.length === 0) return;
    this.#cause ??= cause;
    if (this.#count === 0) {
      // The first ranges: taken as they are, not copied (the walk made them for this decision).
      this.#pairs = pairs;
      this.#count = pairs.length / 2;
      this.#coalesced = coalesced;
      return;
    }
    this.#coalesced = null;
    this.#room(pairs.length);
    this.#pairs.set(pairs, 2 * this.#count);
    this.#count += pairs.length / 2;
  }

  /** Makes room for `numbers` more numbers after the pairs added so far. */
  #room(numbers: number): void {
    const used = 2 * this.#count;
    if (used + numbers <= this.#pairs.length) return;
    const grown = new Float64Array(Math.max(used + numbers, 2 * this.#pairs.length, 8));
    grown.set(this.#pairs.subarray(0, used));
    this.#pairs = grown;
  }

  /** A flush of host pages not listed here is required (of `cause`). */
  unlisted(cause: FlushCause): void {
    this.#unlisted = true;
    this.#cause ??= cause;
  }

  /** A DEVCTL value the VMM must write to a device of the VM. */
  device(write: DeviceWrite): void {
    this.#devices.push(write);
  }

  reason(rule: RuleId, message: string): void {
    this.reasons.push({ rule, message });
  }

  buildFlush(): FlushDecision {
    const count = this.#count;
    const cause = this.#cause;
    const when = cause === null ? null : flushWhen(cause);
    const added = this.#pairs;
    if (count === 0) return { required: this.#unlisted, ranges: [], pages: 0, cause, when };
    if (count === 1) {
      const pages = added[1] as number;
      return { required: true, ranges: [{ hpa: added[0] as number, pages }], pages, cause, when };
    }
    if (this.#coalesced !== null && count >= LAZY_RANGES) return lazyFlush(added.subarray(0, 2 * count), this.#coalesced, cause, when);
    let sorted = true;
    for (let i = 2; i < 2 * count && sorted; i += 2) if ((added[i] as number) < (added[i - 2] as number)) sorted = false;
    // Replays walk ranges in IOVA order, usually host order too: then they coalesce in place
    // (each is written at or before where it was read). Otherwise starts and ends are sorted
    // apart and swept (coalesceUnsorted).
    if (!sorted) {
      const { pairs, pages } = coalesceUnsorted(added, count);
      if (pairs.length / 2 < LAZY_RANGES) return { required: true, ranges: rangesOf(pairs, pairs.length / 2), pages, cause, when };
      return lazyFlush(pairs, pages, cause, when);
    }
    const out = added;
    let n = 0;
    let curStart = added[0] as number;
    let curEnd = curStart + (added[1] as number);
    let pages = 0;
    for (let k = 1; k < count; k++) {
      const s = added[2 * k] as number;
      const e = s + (added[2 * k + 1] as number);
      if (s <= curEnd) {
        if (e > curEnd) curEnd = e;
      } else {
        out[n++] = curStart;
        out[n++] = curEnd - curStart;
        pages += curEnd - curStart;
        curStart = s;
        curEnd = e;
      }
    }
    out[n++] = curStart;
    out[n++] = curEnd - curStart;
    pages += curEnd - curStart;
    const pairs = n === out.length ? out : out.subarray(0, n);
    if (n / 2 < LAZY_RANGES) return { required: true, ranges: rangesOf(pairs, n / 2), pages, cause, when };
    return lazyFlush(pairs, pages, cause, when);
  }

  build(kvmNoncoherentDma: boolean, devctl?: DevctlOutcome): Decision {
    const decision: Decision = { flush: this.buildFlush(), reasons: this.reasons, kvmNoncoherentDma, pessimisticPages: this.#pessimisticPages };
    if (this.#devices.length > 0) (decision as { devices?: readonly DeviceWrite[] }).devices = this.#devices;
    return devctl === undefined ? decision : { ...decision, devctl };
  }
}
