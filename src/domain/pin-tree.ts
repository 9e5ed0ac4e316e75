/**
 * The nodes of PinMap's B+tree and the searches over them: leaves hold ranges in one typed array,
 * internal nodes hold separators. PinMap (pin-map.ts) states the invariants; `checkTree` verifies them.
 */

/**
 * The layout of a leaf's ranges and the tree's fan-out. A module that loops over leaves copies
 * what it uses into constants of its own (`const { STRIDE } = TREE`): V8 folds a module's own
 * constants into its hot loops, while an imported binding stays a load per use, which made the
 * replay walk over a large map measurably slower.
 */
export const TREE = Object.freeze({
  /** Numbers a range: start page, page count, host page, attribute word. */
  STRIDE: 4,
  F_START: 0,
  F_PAGES: 1,
  F_HPA: 2,
  F_ATTR: 3,
  /** Ranges per leaf. 64 keeps the memmove on insert short while the per-leaf overhead stays under 4 bytes a range. */
  LEAF_CAP: 64,
  /** A leaf below this many ranges is merged with or refilled from a sibling. */
  LEAF_MIN: 64 >> 2,
  /** Children per internal node. */
  NODE_CAP: 64,
  NODE_MIN: 64 >> 2,
  /** Leaves an in-order query steps forward before it descends from the root instead. */
  FINGER_STEPS: 4
});
const { STRIDE, F_START, F_PAGES, F_HPA, F_ATTR, LEAF_CAP, NODE_CAP } = TREE;

export class Leaf {
  n = 0;
  /** Ranges, STRIDE numbers each; one spare slot so an insert into a full leaf can happen before its split. */
  readonly d = new Float64Array((LEAF_CAP + 1) * STRIDE);
  prev: Leaf | null = null;
  next: Leaf | null = null;

  start(i: number): number {
    return this.d[i * STRIDE + F_START] as number;
  }

  end(i: number): number {
    const o = i * STRIDE;
    return (this.d[o + F_START] as number) + (this.d[o + F_PAGES] as number);
  }
}

export class Node {
  n = 0;
  /** keys[i] bounds child i from below; keys[0] is unused. One spare slot for the same reason as Leaf.d. */
  readonly keys = new Float64Array(NODE_CAP + 1);
  readonly children: (Node | Leaf)[] = [];
}

export type Path = (Node | number)[];

/** Index of the child of `node` whose subtree may hold `key`. */
export function childIndex(node: Node, key: number): number {
  let lo = 1;
  let hi = node.n - 1;
  let found = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((node.keys[mid] as number) <= key) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** Index of the last range in `leaf` whose start is <= key, or -1. */
export function lastAtOrBefore(leaf: Leaf, key: number): number {
  const d = leaf.d;
  let lo = 0;
  let hi = leaf.n - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((d[mid * STRIDE] as number) <= key) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/**
 * collectOverlaps from `leaf`, a leaf whose ranges start at or before `start` where any range
 * does (the one a descent from the root to `start` finds, or a later one whose first range starts at or before
 * `start` while the next leaf's does not).
 */
export function collectFrom(from: Leaf, start: number, end: number, out: number[]): number {
  let leaf: Leaf | null = from;
  let i = lastAtOrBefore(leaf, start);
  let n = 0;
  if (i < 0) {
    // The predecessor, if any, is the last range of the previous leaf.
    const prev = leaf.prev;
    if (prev !== null && prev.end(prev.n - 1) > start) n = copyRange(prev, prev.n - 1, out, n);
    i = 0;
  } else if (leaf.end(i) <= start) {
    i++;
  }
  while (leaf !== null) {
    for (; i < leaf.n; i++) {
      if (leaf.start(i) >= end) return n;
      n = copyRange(leaf, i, out, n);
    }
    leaf = leaf.next;
    i = 0;
  }
  return n;
}

/** Appends range `i` of `leaf` to `out` as the `n`th quadruple; returns n + 1. */
export function copyRange(leaf: Leaf, i: number, out: number[], n: number): number {
  const o = i * STRIDE;
  const w = n * STRIDE;
  const d = leaf.d;
  out[w + F_START] = d[o + F_START] as number;
  out[w + F_PAGES] = d[o + F_PAGES] as number;
  out[w + F_HPA] = d[o + F_HPA] as number;
  out[w + F_ATTR] = d[o + F_ATTR] as number;
  return n + 1;
}

/** Verifies the invariants stated in pin-map.ts of the tree at `root`; throws on the first one broken. Test support. */
export function checkTree(root: Node | Leaf, size: number, totalPages: number): void {
  let count = 0;
  let pages = 0;
  let lastEnd = -1;
  let prevLeaf: Leaf | null = null;
  const walk = (node: Node | Leaf, lo: number, hi: number, depth: number, depths: Set<number>): void => {
    if (node instanceof Leaf) {
      depths.add(depth);
      if (node.n === 0 && node !== root) throw new Error('empty non-root leaf');
      if (node.prev !== prevLeaf) throw new Error('leaf chain broken');
      prevLeaf = node;
      for (let i = 0; i < node.n; i++) {
        const s = node.start(i);
        if (s < lo || s >= hi) throw new Error(`range ${s} outside separator bounds [${lo}, ${hi})`);
        if (s < lastEnd) throw new Error(`ranges overlap or are unordered at ${s}`);
        lastEnd = node.end(i);
        count++;
        pages += node.d[i * STRIDE + F_PAGES] as number;
      }
      return;
    }
    if (node.n < 1 || node.children.length !== node.n) throw new Error('internal node child count');
    for (let i = 0; i < node.n; i++) {
      const clo = i === 0 ? lo : (node.keys[i] as number);
      const chi = i + 1 < node.n ? (node.keys[i + 1] as number) : hi;
      if (clo > chi) throw new Error('separators out of order');
      walk(node.children[i] as Node | Leaf, clo, chi, depth + 1, depths);
    }
  };
  const depths = new Set<number>();
  walk(root, -Infinity, Infinity, 0, depths);
  if (depths.size > 1) throw new Error('leaves at different depths');
  if (prevLeaf !== null && (prevLeaf as Leaf).next !== null) throw new Error('last leaf has a next');
  if (count !== size) throw new Error(`size ${size} != ${count}`);
  if (pages !== totalPages) throw new Error(`pages ${totalPages} != ${pages}`);
}
