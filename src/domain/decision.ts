/**
 * What every state-changing answer carries: the flush the caller must perform before the change
 * takes effect, the devctl outcome for config-space writes, and the reasons, each naming a rule.
 */
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

export type FlushCause = 'pin' | 'unpin' | 'replay' | 'teardown';

export interface FlushDecision {
  readonly required: boolean;
  /** Host-physical ranges, sorted, coalesced (adjacent merged, overlaps counted once). */
  readonly ranges: readonly HostRange[];
  /** Total pages in `ranges`. */
  readonly pages: number;
  /** Why the flush exists (flush jobs are accounted by cause); null when nothing is flushed. */
  readonly cause: FlushCause | null;
}

export type DevctlVerdict = 'allow' | 'deny' | 'ignore';

export interface DevctlOutcome {
  readonly decision: DevctlVerdict;
  /** The 16-bit DEVCTL value the VMM writes to the device. */
  readonly hardwareValue: number;
  /** The 16-bit DEVCTL value the guest reads back. */
  readonly guestValue: number;
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
}

/**
 * Collects the host ranges one command must flush and the reasons given, then coalesces them
 * into a FlushDecision. Ranges are added in any order; `build` sorts once.
 */
export class DecisionBuilder {
  #hpas: number[] = [];
  #lens: number[] = [];
  #cause: FlushCause | null = null;
  #pessimisticPages = 0;
  readonly reasons: Reason[] = [];

  /** Counts pages the pessimistic policy would flush for this event. */
  pessimistic(pages: number): void {
    this.#pessimisticPages += pages;
  }

  flush(hpa: number, pages: number, cause: FlushCause): void {
    this.#hpas.push(hpa);
    this.#lens.push(pages);
    // A command has one cause; a replay inside a pin or unpin does not happen, so the first wins.
    this.#cause ??= cause;
  }

  reason(rule: RuleId, message: string): void {
    this.reasons.push({ rule, message });
  }

  buildFlush(): FlushDecision {
    const count = this.#hpas.length;
    if (count === 0) return { required: false, ranges: [], pages: 0, cause: null };
    if (count === 1) {
      const pages = this.#lens[0] as number;
      return { required: true, ranges: [{ hpa: this.#hpas[0] as number, pages }], pages, cause: this.#cause };
    }
    const hpas = this.#hpas;
    const lens = this.#lens;
    const order = Array.from({ length: count }, (_, i) => i);
    let sorted = true;
    for (let i = 1; i < count && sorted; i++) if ((hpas[i] as number) < (hpas[i - 1] as number)) sorted = false;
    // Replays walk ranges in IOVA order, usually host order too: then no sort is needed.
    if (!sorted) order.sort((a, b) => (hpas[a] as number) - (hpas[b] as number));
    const ranges: HostRange[] = [];
    let curStart = hpas[order[0] as number] as number;
    let curEnd = curStart + (lens[order[0] as number] as number);
    let pages = 0;
    for (let k = 1; k < count; k++) {
      const i = order[k] as number;
      const s = hpas[i] as number;
      const e = s + (lens[i] as number);
      if (s <= curEnd) {
        if (e > curEnd) curEnd = e;
      } else {
        ranges.push({ hpa: curStart, pages: curEnd - curStart });
        pages += curEnd - curStart;
        curStart = s;
        curEnd = e;
      }
    }
    ranges.push({ hpa: curStart, pages: curEnd - curStart });
    pages += curEnd - curStart;
    return { required: true, ranges, pages, cause: this.#cause };
  }

  build(kvmNoncoherentDma: boolean, devctl?: DevctlOutcome): Decision {
    const decision: Decision = { flush: this.buildFlush(), reasons: this.reasons, kvmNoncoherentDma, pessimisticPages: this.#pessimisticPages };
    return devctl === undefined ? decision : { ...decision, devctl };
  }
}
