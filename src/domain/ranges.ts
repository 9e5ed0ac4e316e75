/**
 * The range classifier: the one place that decides, for a pinned or about-to-be-pinned range,
 * whether it is flushed and whether it carries flushOnUnpin. Pins (F1, C1, F4), replays (F2),
 * releases (F3, F5) and the read-only flush query all classify with these functions, so a query
 * answers exactly what the change it previews would do.
 */
import type { DomainId } from './ids.js';
import type { RuleId } from './rules.js';
import { attrFlushOnUnpin, isFlushExempt, type Vm } from './state.js';

/** How a range fares in the domains it maps into: some is exposed, all are coherent, or neither. */
export type MapVerdict = 'exposed' | 'coherent' | 'quiet';

export interface RangeClass {
  /** Flush the range (before mapping, or after unmapping and before release). */
  readonly flush: boolean;
  /** The range carries (or keeps) flushOnUnpin afterwards. */
  readonly flag: boolean;
  readonly rule: RuleId;
}

const PIN_FLUSH: RangeClass = { flush: true, flag: true, rule: 'F1' };
const PIN_EXEMPT: RangeClass = { flush: false, flag: true, rule: 'F4' };
const PIN_COHERENT: RangeClass = { flush: false, flag: false, rule: 'C1' };
const PIN_QUIET: RangeClass = { flush: false, flag: false, rule: 'F1' };
const REPLAY_FLUSH: RangeClass = { flush: true, flag: true, rule: 'F2' };
const REPLAY_EXEMPT: RangeClass = { flush: false, flag: true, rule: 'F4' };
const REPLAY_FLAGGED: RangeClass = { flush: false, flag: true, rule: 'F2' };
const REPLAY_NONE: RangeClass = { flush: false, flag: false, rule: 'F2' };
const RELEASE_FLUSH: RangeClass = { flush: true, flag: false, rule: 'F3' };
const RELEASE_EXEMPT: RangeClass = { flush: false, flag: false, rule: 'F4' };
const RELEASE_CLEAN: RangeClass = { flush: false, flag: false, rule: 'F3' };

/** F1 (C1, F4): a range about to be mapped, with attribute word `attr`. */
export function classifyPin(verdict: MapVerdict, attr: number): RangeClass {
  if (verdict === 'exposed') return isFlushExempt(attr) ? PIN_EXEMPT : PIN_FLUSH;
  return verdict === 'coherent' ? PIN_COHERENT : PIN_QUIET;
}

/** F2 (F4): a pinned range that now maps into an exposed domain (`reachesExposed`) or not. */
export function classifyReplay(attr: number, reachesExposed: boolean): RangeClass {
  if (attrFlushOnUnpin(attr)) return REPLAY_FLAGGED;
  if (!reachesExposed) return REPLAY_NONE;
  return isFlushExempt(attr) ? REPLAY_EXEMPT : REPLAY_FLUSH;
}

/** F3 (F4): a pinned range being unmapped and released. */
export function classifyRelease(attr: number): RangeClass {
  if (!attrFlushOnUnpin(attr)) return RELEASE_CLEAN;
  return isFlushExempt(attr) ? RELEASE_EXEMPT : RELEASE_FLUSH;
}

/**
 * The exposure of one VM at one moment, as the map verdict of domain lists and of the VM's
 * interned subsets (memoized per subset: a batch of 10,000 ranges usually has one).
 */
export class Exposure {
  readonly vm: Vm;
  readonly exposed: ReadonlySet<DomainId>;
  readonly #bySubset: (MapVerdict | undefined)[] = [];

  constructor(vm: Vm, exposed: ReadonlySet<DomainId>) {
    this.vm = vm;
    this.exposed = exposed;
  }

  /** The verdict for a range mapping into `domains`; null or empty: every domain of the VM. */
  ofDomains(domains: readonly DomainId[] | null | undefined): MapVerdict {
    if (domains === null || domains === undefined || domains.length === 0) return this.ofSubset(0);
    return this.#verdict(domains);
  }

  /** The verdict for the VM's interned subset `subset` (0: every domain). */
  ofSubset(subset: number): MapVerdict {
    let v = this.#bySubset[subset];
    if (v === undefined) {
      v = this.#verdict(subset === 0 ? [...this.vm.domains.keys()] : (this.vm.subsets[subset] ?? []));
      this.#bySubset[subset] = v;
    }
    return v;
  }

  #verdict(domains: readonly DomainId[]): MapVerdict {
    let coherent = true;
    for (const d of domains) {
      if (this.exposed.has(d)) return 'exposed';
      if (this.vm.domains.get(d)?.enforceCacheCoherency !== true) coherent = false;
    }
    return coherent ? 'coherent' : 'quiet';
  }
}
