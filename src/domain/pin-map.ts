/**
 * PinMap: the pinned IOVA ranges of one VM, a B+tree keyed by each range's first IOVA page.
 *
 * Why a B+tree of typed arrays: a 1 TiB guest pinned in 4 KiB pages is 268 M ranges, and a
 * vIOMMU guest pins and unpins at run time, so the map must stay O(log n) per operation and
 * small per range. Each leaf holds up to LEAF_CAP ranges in one Float64Array with a stride of
 * four numbers (start page, page count, host page, attribute word): 32 bytes a range, no object
 * per range, and one memmove (`copyWithin`) per insert or remove.
 *
 * Invariants (checked by `checkInvariants`, which the tests call after every operation):
 * - Ranges never overlap: for consecutive ranges a, b (across leaves too) a.start + a.pages <= b.start.
 * - Every leaf but a root leaf holds at least one range; leaves form a doubly linked chain in order.
 * - An internal node with n children has separators keys[1..n-1] (keys[0] is unused) with
 *   max(child i-1) < keys[i] <= min(child i). Separators may be lower than their child's minimum
 *   after removals; they stay valid bounds, which is all the descent needs.
 * - All leaves are at the same depth.
 *
 * Page numbers are below 2^52, so every field is an exact double.
 */
import { recodeAttrs, walkLeavesByAttr, type AttrPlan, type AttrWalk } from './attr-walk.js';
import { PIN_ATTR, PIN_INSERT, PIN_OP_STRIDE, PIN_RECODE, PIN_REMOVE, type PinJournal } from './pin-journal.js';
import { checkTree, childIndex, collectFrom, lastAtOrBefore, Leaf, Node, TREE, type Path } from './pin-tree.js';

const { STRIDE, F_START, F_PAGES, F_HPA, F_ATTR, LEAF_CAP, LEAF_MIN, NODE_CAP, NODE_MIN, FINGER_STEPS } = TREE;

/** Receives one range; returning a number replaces the range's attribute word in place. */
export type RangeVisitor = (start: number, pages: number, hpa: number, attr: number) => number | undefined;

export class PinMap {
  #root: Node | Leaf = new Leaf();
  #size = 0;
  #pages = 0;
  /** Where changes are recorded while the core journals a change (recordInto). */
  #journal: PinJournal | null = null;

  /**
   * From now on records every change into `journal` (null: stops recording). The core journals
   * the pin maps a change may touch, to report their operations as the change's effects.
   */
  recordInto(journal: PinJournal | null): void {
    this.#journal = journal;
  }

  /** Inserts ranges given four numbers each (start, pages, hpa, attr); throws on an overlap. */
  insertMany(ranges: Float64Array): void {
    for (let o = 0; o + STRIDE <= ranges.length; o += STRIDE) {
      if (!this.insert(ranges[o] as number, ranges[o + 1] as number, ranges[o + 2] as number, ranges[o + 3] as number)) {
        throw new Error(`pinned ranges overlap at page ${String(ranges[o])}`);
      }
    }
  }

  /** Every range in IOVA order, four numbers each: start, pages, hpa, attr. */
  toArray(): Float64Array {
    const out = new Float64Array(this.#size * STRIDE);
    let w = 0;
    for (let leaf: Leaf | null = this.#firstLeaf(); leaf !== null; leaf = leaf.next) {
      out.set(leaf.d.subarray(0, leaf.n * STRIDE), w);
      w += leaf.n * STRIDE;
    }
    return out;
  }

  /** Applies recorded operations (a journal's `take()`), as they were done. */
  apply(ops: Float64Array): void {
    for (let o = 0; o + PIN_OP_STRIDE <= ops.length; o += PIN_OP_STRIDE) {
      const op = ops[o] as number;
      const start = ops[o + 1] as number;
      if (op === PIN_INSERT) {
        if (!this.insert(start, ops[o + 2] as number, ops[o + 3] as number, ops[o + 4] as number)) throw new Error(`stored insert at page ${start} overlaps`);
      } else if (op === PIN_REMOVE) {
        if (!this.remove(start)) throw new Error(`stored remove at page ${start} finds no range`);
      } else if (op === PIN_RECODE) {
        const words = new Map<number, number>();
        const k = ops[o + 1] as number;
        for (let r = 0; r < k; r++, o += PIN_OP_STRIDE) {
          if (ops[o] !== PIN_RECODE || ops[o + 1] !== k - r) throw new Error('stored attribute recoding is cut short');
          words.set(ops[o + 3] as number, ops[o + 4] as number);
        }
        o -= PIN_OP_STRIDE;
        recodeAttrs(this.#firstLeaf(), this.#journal, words);
      } else if (op === PIN_ATTR) {
        const attr = ops[o + 4] as number;
        let found = false;
        this.forEachOverlap(start, start + 1, (s) => {
          if (s !== start) return undefined;
          found = true;
          return attr;
        });
        if (!found) throw new Error(`stored attribute change at page ${start} finds no range`);
      } else {
        throw new Error(`unknown stored pin operation ${op}`);
      }
    }
  }

  /** Number of ranges. */
  get size(): number {
    return this.#size;
  }

  /** Total pinned pages. */
  get pages(): number {
    return this.#pages;
  }

  /** Descends to the leaf that may hold `key`, recording (node, childIndex) pairs in `path`. */
  #descend(key: number, path: Path | null): Leaf {
    let node = this.#root;
    while (node instanceof Node) {
      const i = childIndex(node, key);
      if (path !== null) path.push(node, i);
      node = node.children[i] as Node | Leaf;
    }
    return node;
  }

  /**
   * Inserts [start, start + pages) unless it overlaps a pinned range; returns false (and changes
   * nothing) when it does.
   */
  insert(start: number, pages: number, hpa: number, attr: number): boolean {
    const path: Path = [];
    const leaf = this.#descend(start, path);
    const before = lastAtOrBefore(leaf, start);
    // Overlap with the predecessor (in this leaf, or the last range of the previous leaf).
    if (before >= 0) {
      if (leaf.end(before) > start) return false;
    } else if (leaf.prev !== null && leaf.prev.end(leaf.prev.n - 1) > start) {
      return false;
    }
    // Overlap with the successor.
    const pos = before + 1;
    const end = start + pages;
    if (pos < leaf.n) {
      if (leaf.start(pos) < end) return false;
    } else if (leaf.next !== null && leaf.next.start(0) < end) {
      return false;
    }
    const d = leaf.d;
    d.copyWithin((pos + 1) * STRIDE, pos * STRIDE, leaf.n * STRIDE);
    const o = pos * STRIDE;
    d[o + F_START] = start;
    d[o + F_PAGES] = pages;
    d[o + F_HPA] = hpa;
    d[o + F_ATTR] = attr;
    leaf.n++;
    this.#size++;
    this.#pages += pages;
    this.#journal?.record(PIN_INSERT, start, pages, hpa, attr);
    if (leaf.n > LEAF_CAP) this.#splitLeaf(leaf, pos, path);
    return true;
  }

  #splitLeaf(leaf: Leaf, insertedAt: number, path: Path): void {
    const right = new Leaf();
    // Appending at the end of the last leaf (ascending pins, the common boot pattern) moves only
    // the new range, so sequentially filled leaves stay full instead of half full.
    const keep = insertedAt === LEAF_CAP && leaf.next === null ? LEAF_CAP : (LEAF_CAP + 1) >> 1;
    const moved = leaf.n - keep;
    right.d.set(leaf.d.subarray(keep * STRIDE, leaf.n * STRIDE), 0);
    right.n = moved;
    leaf.n = keep;
    right.next = leaf.next;
    if (right.next !== null) right.next.prev = right;
    right.prev = leaf;
    leaf.next = right;
    this.#insertChild(path, leaf, right.start(0), right);
  }

  /** Adds `right` after `left` in their parent, splitting parents upward as needed. */
  #insertChild(path: Path, left: Node | Leaf, sep: number, right: Node | Leaf): void {
    if (path.length === 0) {
      const root = new Node();
      root.children.push(left, right);
      root.keys[1] = sep;
      root.n = 2;
      this.#root = root;
      return;
    }
    const i = path.pop() as number;
    const parent = path.pop() as Node;
    const at = i + 1;
    parent.keys.copyWithin(at + 1, at, parent.n);
    parent.keys[at] = sep;
    parent.children.splice(at, 0, right);
    parent.n++;
    if (parent.n <= NODE_CAP) return;
    const sibling = new Node();
    const keep = (parent.n + 1) >> 1;
    const promoted = parent.keys[keep] as number;
    sibling.keys.set(parent.keys.subarray(keep, parent.n), 0);
    sibling.children.push(...parent.children.splice(keep));
    sibling.n = parent.n - keep;
    parent.n = keep;
    this.#insertChild(path, parent, promoted, sibling);
  }

  /** Removes the range that starts exactly at `start`; returns false when there is none. */
  remove(start: number): boolean {
    const path: Path = [];
    const leaf = this.#descend(start, path);
    const pos = lastAtOrBefore(leaf, start);
    if (pos < 0 || leaf.start(pos) !== start) return false;
    this.#pages -= leaf.d[pos * STRIDE + F_PAGES] as number;
    this.#journal?.record(PIN_REMOVE, start, 0, 0, 0);
    leaf.d.copyWithin(pos * STRIDE, (pos + 1) * STRIDE, leaf.n * STRIDE);
    leaf.n--;
    this.#size--;
    if (path.length > 0) {
      if (leaf.n === 0) this.#removeChild(path);
      else if (leaf.n < LEAF_MIN) this.#rebalanceLeaf(path);
    }
    return true;
  }

  /** Removes the node at the end of `path` from its parent (it is empty or was merged away). */
  #removeChild(path: Path): void {
    const i = path.pop() as number;
    const parent = path.pop() as Node;
    const child = parent.children[i] as Node | Leaf;
    if (child instanceof Leaf) {
      if (child.prev !== null) child.prev.next = child.next;
      if (child.next !== null) child.next.prev = child.prev;
    }
    parent.children.splice(i, 1);
    parent.keys.copyWithin(i, i + 1, parent.n);
    parent.n--;
    if (path.length === 0) {
      // The root: collapse it while it has a single child.
      if (parent.n === 1) this.#root = parent.children[0] as Node | Leaf;
      else if (parent.n === 0) this.#root = new Leaf();
      return;
    }
    if (parent.n === 0) this.#removeChild(path);
    else if (parent.n < NODE_MIN) this.#rebalanceNode(path);
  }

  /** Merges the underfull leaf at the end of `path` with a sibling, or refills it from one. */
  #rebalanceLeaf(path: Path): void {
    const i = path[path.length - 1] as number;
    const parent = path[path.length - 2] as Node;
    if (parent.n < 2) return;
    const ri = i + 1 < parent.n ? i + 1 : i;
    const left = parent.children[ri - 1] as Leaf;
    const right = parent.children[ri] as Leaf;
    const total = left.n + right.n;
    if (total <= LEAF_CAP) {
      left.d.set(right.d.subarray(0, right.n * STRIDE), left.n * STRIDE);
      left.n = total;
      right.n = 0;
      path[path.length - 1] = ri;
      this.#removeChild(path);
      return;
    }
    // Too many for one leaf: split the ranges evenly between the two.
    const targetLeft = total >> 1;
    if (left.n < targetLeft) {
      const k = targetLeft - left.n;
      left.d.set(right.d.subarray(0, k * STRIDE), left.n * STRIDE);
      right.d.copyWithin(0, k * STRIDE, right.n * STRIDE);
      left.n += k;
      right.n -= k;
    } else {
      const k = left.n - targetLeft;
      right.d.copyWithin(k * STRIDE, 0, right.n * STRIDE);
      right.d.set(left.d.subarray(targetLeft * STRIDE, left.n * STRIDE), 0);
      left.n -= k;
      right.n += k;
    }
    parent.keys[ri] = right.start(0);
  }

  /** Merges an underfull internal node with a sibling when both fit in one node. */
  #rebalanceNode(path: Path): void {
    const i = path[path.length - 1] as number;
    const parent = path[path.length - 2] as Node;
    if (parent.n < 2) return;
    const ri = i + 1 < parent.n ? i + 1 : i;
    const left = parent.children[ri - 1] as Node;
    const right = parent.children[ri] as Node;
    if (left.n + right.n > NODE_CAP) return;
    left.keys[left.n] = parent.keys[ri] as number;
    left.keys.set(right.keys.subarray(1, right.n), left.n + 1);
    left.children.push(...right.children);
    left.n += right.n;
    path[path.length - 1] = ri;
    this.#removeChild(path);
  }

  /** Attribute word of the range that starts exactly at `start`, or undefined. */
  get(start: number): { pages: number; hpa: number; attr: number } | undefined {
    const leaf = this.#descend(start, null);
    const pos = lastAtOrBefore(leaf, start);
    if (pos < 0 || leaf.start(pos) !== start) return undefined;
    const o = pos * STRIDE;
    return { pages: leaf.d[o + F_PAGES] as number, hpa: leaf.d[o + F_HPA] as number, attr: leaf.d[o + F_ATTR] as number };
  }

  /** True when any pinned range intersects [start, end). */
  overlaps(start: number, end: number): boolean {
    let found = false;
    this.#scan(start, end, () => {
      found = true;
      return false;
    });
    return found;
  }

  /** Visits, in IOVA order, every range that intersects [start, end). */
  forEachOverlap(start: number, end: number, visit: RangeVisitor): void {
    this.#scan(start, end, (leaf, i) => {
      const o = i * STRIDE;
      const d = leaf.d;
      const attr = visit(d[o + F_START] as number, d[o + F_PAGES] as number, d[o + F_HPA] as number, d[o + F_ATTR] as number);
      if (attr !== undefined && attr !== d[o + F_ATTR]) {
        d[o + F_ATTR] = attr;
        this.#journal?.record(PIN_ATTR, d[o + F_START] as number, 0, 0, attr);
      }
      return true;
    });
  }

  /**
   * Writes every range intersecting [start, end), in IOVA order, into `out` as four numbers each
   * (start, pages, hpa, attr) and returns how many ranges it wrote. `out` is reused by the caller
   * across queries: no closure or object per range, for callers asking thousands of questions.
   */
  collectOverlaps(start: number, end: number, out: number[]): number {
    return collectFrom(this.#descend(start, null), start, end, out);
  }

  /**
   * `collectOverlaps` for queries asked in ascending order of `start`, with the map unchanged
   * between them: each query starts from the leaf where the one before it started and steps
   * forward leaf by leaf (a few steps at most, else it descends from the root). A batch of sorted
   * queries then reads each leaf once, in order, instead of descending the tree for each.
   */
  overlapsInOrder(): (start: number, end: number, out: number[]) => number {
    let at: Leaf | null = null;
    return (start, end, out) => {
      let leaf = at;
      if (leaf === null || leaf.n === 0 || start < leaf.start(0)) leaf = this.#descend(start, null);
      else {
        for (let steps = 0; leaf.next !== null && leaf.next.start(0) <= start; steps++) {
          if (steps === FINGER_STEPS) {
            leaf = this.#descend(start, null);
            break;
          }
          leaf = leaf.next;
        }
      }
      at = leaf;
      return collectFrom(leaf, start, end, out);
    };
  }

  /** Visits every range in IOVA order. */
  forEach(visit: RangeVisitor): void {
    let leaf: Leaf | null = this.#firstLeaf();
    while (leaf !== null) {
      const d = leaf.d;
      for (let i = 0; i < leaf.n; i++) {
        const o = i * STRIDE;
        const attr = visit(d[o + F_START] as number, d[o + F_PAGES] as number, d[o + F_HPA] as number, d[o + F_ATTR] as number);
        if (attr !== undefined && attr !== d[o + F_ATTR]) {
          d[o + F_ATTR] = attr;
          this.#journal?.record(PIN_ATTR, d[o + F_START] as number, 0, 0, attr);
        }
      }
      leaf = leaf.next;
    }
  }
  /**
   * Walks every range in IOVA order and does what `plan` says for its attribute word, once per
   * run of ranges sharing a word (see attr-walk.ts): a replay of a 1 TiB VM is one pass over the
   * leaves' arrays. Returns the ranges and pages counted and the (hpa, pages) pairs collected.
   */
  walkByAttr(plan: (attr: number) => AttrPlan): AttrWalk {
    return walkLeavesByAttr(this.#firstLeaf(), this.#size, this.#journal, plan);
  }
  /** Ranges in IOVA order starting at the first range whose start is >= `after`, at most `limit`. */
  page(after: number, limit: number): { start: number; pages: number; hpa: number; attr: number }[] {
    const out: { start: number; pages: number; hpa: number; attr: number }[] = [];
    let leaf: Leaf | null = this.#descend(after, null);
    let i = lastAtOrBefore(leaf, after);
    if (i < 0 || leaf.start(i) < after) i++;
    while (leaf !== null && out.length < limit) {
      if (i >= leaf.n) {
        leaf = leaf.next;
        i = 0;
        continue;
      }
      const o = i * STRIDE;
      out.push({ start: leaf.d[o] as number, pages: leaf.d[o + 1] as number, hpa: leaf.d[o + 2] as number, attr: leaf.d[o + 3] as number });
      i++;
    }
    return out;
  }

  #firstLeaf(): Leaf {
    let node = this.#root;
    while (node instanceof Node) node = node.children[0] as Node | Leaf;
    return node;
  }

  /** Calls `each` for ranges intersecting [start, end) in order until it returns false. */
  #scan(start: number, end: number, each: (leaf: Leaf, i: number) => boolean): void {
    let leaf: Leaf | null = this.#descend(start, null);
    let i = lastAtOrBefore(leaf, start);
    if (i < 0) {
      // The predecessor, if any, is the last range of the previous leaf.
      if (leaf.prev !== null && leaf.prev.end(leaf.prev.n - 1) > start) {
        if (!each(leaf.prev, leaf.prev.n - 1)) return;
      }
      i = 0;
    } else if (leaf.end(i) <= start) {
      i++;
    }
    while (leaf !== null) {
      for (; i < leaf.n; i++) {
        if (leaf.start(i) >= end) return;
        if (!each(leaf, i)) return;
      }
      leaf = leaf.next;
      i = 0;
    }
  }

  /** Verifies every invariant in the header comment; throws on the first one broken. Test support. */
  /** Verifies every invariant in the header comment; throws on the first one broken. Test support. */
  checkInvariants(): void {
    checkTree(this.#root, this.#size, this.#pages);
  }
}
