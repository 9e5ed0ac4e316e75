/**
 * Attribute planning and recoding over a PinMap's leaves: a replay or a policy walk changes the
 * attribute words of many ranges at once, so it plans per word, not per range, and journals the
 * replacements of words (PIN_RECODE) rather than an operation per range.
 */
import { PIN_RECODE, type PinJournal } from './pin-journal.js';
import { TREE, type Leaf } from './pin-tree.js';

/** What `walkByAttr` does with the ranges of one attribute word. */
export interface AttrPlan {
  /** Their attribute word afterwards (journaled where it differs). */
  readonly attr: number;
  /** Their (hpa, pages) are collected. */
  readonly collect: boolean;
  /** They are counted (ranges and pages). */
  readonly counted: boolean;
}

/** What `walkByAttr` found: the ranges and pages counted, and the (hpa, pages) pairs collected. */
export interface AttrWalk {
  readonly ranges: number;
  readonly pages: number;
  readonly pairs: Float64Array;
  /** The pages of `pairs` when they came in host order and were coalesced; null: not in host order. */
  readonly coalesced: number | null;
}

const { STRIDE, F_PAGES, F_HPA, F_ATTR } = TREE;
const EMPTY_PAIRS = new Float64Array(0);

/**
 * Walks every range of a map (`size` ranges, leaves from `first` on) in IOVA order and does what
 * `plan` says for its attribute word, asking `plan` once per run of ranges sharing a word (a VM's
 * ranges have few distinct words): no call or object per range, so a replay of a 1 TiB VM is one
 * pass over the leaves' arrays. Returns the ranges and pages counted and the collected (hpa,
 * pages) pairs, in IOVA order; while they are in host order too they are coalesced as they come,
 * and `coalesced` then gives their pages (null: not in host order). Word replacements go to
 * `journal` as one PIN_RECODE group.
 */
export function walkLeavesByAttr(first: Leaf, size: number, journal: PinJournal | null, plan: (attr: number) => AttrPlan): AttrWalk {
  // Room for every range, made at the first range collected; pages never written cost nothing.
  let pairs = EMPTY_PAIRS;
  let n = 0;
  let ranges = 0;
  let pages = 0;
  let sorted = true;
  let sortedPages = 0;
  let lastAttr = Number.NaN;
  // The plan of the current run of ranges, in locals.
  let to = 0;
  let counted = false;
  let collect = false;
  // Journaled as the replacements of attribute words made, all at once (PIN_RECODE).
  const words = new Map<number, number>();
  for (let leaf: Leaf | null = first; leaf !== null; leaf = leaf.next) {
    const d = leaf.d;
    for (let o = 0; o < leaf.n * STRIDE; o += STRIDE) {
      const attr = d[o + F_ATTR] as number;
      if (attr !== lastAttr) {
        const p = plan(attr);
        lastAttr = attr;
        to = p.attr;
        counted = p.counted;
        collect = p.collect;
        if (to !== attr) words.set(attr, to);
      }
      if (counted) {
        ranges++;
        pages += d[o + F_PAGES] as number;
      }
      if (collect) {
        if (n === 0 && pairs.length === 0) pairs = new Float64Array(2 * size);
        const hpa = d[o + F_HPA] as number;
        const length = d[o + F_PAGES] as number;
        const from = n === 0 ? 0 : (pairs[n - 2] as number);
        const end = n === 0 ? 0 : from + (pairs[n - 1] as number);
        if (n > 0 && sorted && hpa >= from && hpa <= end) {
          // In host order and touching the last one: merged into it.
          if (hpa + length > end) {
            pairs[n - 1] = hpa + length - from;
            sortedPages += hpa + length - end;
          }
        } else {
          if (n > 0 && hpa < from) sorted = false;
          pairs[n++] = hpa;
          pairs[n++] = length;
          sortedPages += length;
        }
      }
      if (to !== attr) d[o + F_ATTR] = to;
    }
  }
  journalRecode(journal, words);
  return { ranges, pages, pairs: pairs.subarray(0, n), coalesced: sorted ? sortedPages : null };
}

/** Replaces every range's attribute word found in `words` by the word it maps to. */
export function recodeAttrs(first: Leaf, journal: PinJournal | null, words: ReadonlyMap<number, number>): void {
  for (let leaf: Leaf | null = first; leaf !== null; leaf = leaf.next) {
    const d = leaf.d;
    for (let o = F_ATTR; o < leaf.n * STRIDE; o += STRIDE) {
      const to = words.get(d[o] as number);
      if (to !== undefined) d[o] = to;
    }
  }
  journalRecode(journal, words);
}

/** Journals word replacements made together as consecutive PIN_RECODE operations. */
function journalRecode(journal: PinJournal | null, words: ReadonlyMap<number, number>): void {
  let left = words.size;
  for (const [from, to] of words) journal?.record(PIN_RECODE, left--, 0, from, to);
}

