/**
 * What every state-changing answer carries: the flush the caller must perform before the change
 * takes effect, the devctl outcome for config-space writes, and the reasons, each naming a rule.
 */
import type { PciAddress } from './ids.js';
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
  /** Host-physical ranges, sorted, coalesced (adjacent merged, overlaps counted once). */
  readonly ranges: readonly HostRange[];
  /** Total pages in `ranges`. */
  readonly pages: number;
  /** Why the flush exists (flush jobs are accounted by cause); null when nothing is flushed. */
  readonly cause: FlushCause | null;
  /** When to flush relative to the change; null when nothing is flushed. */
  readonly when: FlushWhen | null;
}

export type DevctlVerdict = 'allow' | 'deny' | 'ignore';

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

/**
 * Collects the host ranges one command must flush and the reasons given, then coalesces them
 * into a FlushDecision. Ranges are added in any order; `build` sorts once.
 */
export class DecisionBuilder {
  #hpas: number[] = [];
  #lens: number[] = [];
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
    this.#hpas.push(hpa);
    this.#lens.push(pages);
    // A command has one cause; a replay inside a pin or unpin does not happen, so the first wins.
    this.#cause ??= cause;
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
    const count = this.#hpas.length;
    const cause = this.#cause;
    const when = cause === null ? null : flushWhen(cause);
    if (count === 0) return { required: this.#unlisted, ranges: [], pages: 0, cause, when };
    if (count === 1) {
      const pages = this.#lens[0] as number;
      return { required: true, ranges: [{ hpa: this.#hpas[0] as number, pages }], pages, cause, when };
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
    return { required: true, ranges, pages, cause, when };
  }

  build(kvmNoncoherentDma: boolean, devctl?: DevctlOutcome): Decision {
    const decision: Decision = { flush: this.buildFlush(), reasons: this.reasons, kvmNoncoherentDma, pessimisticPages: this.#pessimisticPages };
    if (this.#devices.length > 0) (decision as { devices?: readonly DeviceWrite[] }).devices = this.#devices;
    return devctl === undefined ? decision : { ...decision, devctl };
  }
}
