import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { coalescePairs, PinJournal, PinMap, PIN_OP_STRIDE, PIN_RECODE } from '../../src/domain/index.js';

interface Plain {
  start: number;
  pages: number;
  hpa: number;
  attr: number;
}

/** The obvious model: a sorted array of non-overlapping ranges. */
class ArrayModel {
  ranges: Plain[] = [];
  insert(r: Plain): boolean {
    if (this.ranges.some((x) => x.start < r.start + r.pages && r.start < x.start + x.pages)) return false;
    this.ranges.push(r);
    this.ranges.sort((a, b) => a.start - b.start);
    return true;
  }
  remove(start: number): boolean {
    const i = this.ranges.findIndex((x) => x.start === start);
    if (i < 0) return false;
    this.ranges.splice(i, 1);
    return true;
  }
  overlapping(a: number, b: number): Plain[] {
    return this.ranges.filter((x) => x.start < b && a < x.start + x.pages);
  }
}

function contents(map: PinMap): Plain[] {
  const out: Plain[] = [];
  map.forEach((start, pages, hpa, attr) => {
    out.push({ start, pages, hpa, attr });
    return undefined;
  });
  return out;
}

describe('PinMap (B+tree interval map)', () => {
  const agreesWithModel = (space: number, maxOps: number, runs: number, checkEvery: number): void => {
    const op = fc.oneof(
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('insert' as const), start: fc.nat(space), pages: fc.integer({ min: 1, max: 12 }), attr: fc.nat(255) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('query' as const), start: fc.nat(space), pages: fc.integer({ min: 1, max: 40 }) }) }
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: maxOps, size: 'max' }), (ops) => {
        const map = new PinMap();
        const model = new ArrayModel();
        ops.forEach((o, step) => {
          if (o.kind === 'insert') {
            const r = { start: o.start, pages: o.pages, hpa: o.start + 7, attr: o.attr };
            expect(map.insert(r.start, r.pages, r.hpa, r.attr)).toBe(model.insert(r));
          } else if (o.kind === 'remove') {
            const victim = model.ranges.length > 0 ? model.ranges[o.pick % model.ranges.length] : undefined;
            const start = victim?.start ?? o.pick % space;
            expect(map.remove(start)).toBe(model.remove(start));
          } else {
            const seen: Plain[] = [];
            map.forEachOverlap(o.start, o.start + o.pages, (start, pages, hpa, attr) => {
              seen.push({ start, pages, hpa, attr });
              return undefined;
            });
            expect(seen).toEqual(model.overlapping(o.start, o.start + o.pages));
            expect(map.overlaps(o.start, o.start + o.pages)).toBe(seen.length > 0);
          }
          if (step % checkEvery === 0) map.checkInvariants();
        });
        map.checkInvariants();
        expect(contents(map)).toEqual(model.ranges);
        expect(map.size).toBe(model.ranges.length);
        expect(map.pages).toBe(model.ranges.reduce((s, r) => s + r.pages, 0));
      }),
      { numRuns: runs }
    );
  };

  it('agrees with a sorted-array model and keeps its invariants under random insert/remove/query', () => {
    agreesWithModel(4000, 600, 300, 1);
  });

  it('agrees with the model across multi-level trees (splits and merges of internal nodes)', () => {
    agreesWithModel(200_000, 30_000, 6, 500);
  });

  it('law: results stay normalised (sorted, non-overlapping) after any sequence of adds', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(100_000), fc.integer({ min: 1, max: 64 })), { maxLength: 2000, size: 'max' }), (adds) => {
        const map = new PinMap();
        for (const [s, p] of adds) map.insert(s, p, s, 0);
        map.checkInvariants();
        const list = contents(map);
        for (let i = 1; i < list.length; i++) {
          const a = list[i - 1] as Plain;
          const b = list[i] as Plain;
          expect(a.start + a.pages).toBeLessThanOrEqual(b.start);
        }
      }),
      { numRuns: 100 }
    );
  });

  it('law: remove after add restores the previous contents (remove∘add = id)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(50_000), fc.integer({ min: 1, max: 16 })), { maxLength: 800, size: 'max' }),
        fc.nat(50_000),
        fc.integer({ min: 1, max: 16 }),
        (adds, s, p) => {
          const map = new PinMap();
          for (const [a, n] of adds) map.insert(a, n, a, 1);
          const before = contents(map);
          if (map.insert(s, p, 0, 2)) {
            expect(map.remove(s)).toBe(true);
          }
          map.checkInvariants();
          expect(contents(map)).toEqual(before);
        }
      ),
      { numRuns: 200 }
    );
  });

  it('law: no overlap is ever admitted; an overlapping insert changes nothing', () => {
    const map = new PinMap();
    expect(map.insert(10, 5, 100, 0)).toBe(true);
    for (const [s, p] of [[10, 1], [14, 1], [9, 2], [5, 20], [12, 1]] as const) {
      expect(map.insert(s, p, 0, 0)).toBe(false);
    }
    expect(map.insert(15, 1, 0, 0)).toBe(true);
    expect(map.insert(9, 1, 0, 0)).toBe(true);
    expect(contents(map).map((r) => r.start)).toEqual([9, 10, 15]);
  });

  it('keeps invariants through large sequential fills and drains in both directions', () => {
    const map = new PinMap();
    const n = 20_000;
    for (let i = 0; i < n; i++) expect(map.insert(i * 2, 1, i, 0)).toBe(true);
    map.checkInvariants();
    expect(map.size).toBe(n);
    for (let i = 0; i < n; i += 2) expect(map.remove(i * 2)).toBe(true);
    map.checkInvariants();
    for (let i = n - 1; i >= 1; i -= 2) expect(map.remove(i * 2)).toBe(true);
    map.checkInvariants();
    expect(map.size).toBe(0);
    expect(map.insert(5, 1, 0, 0)).toBe(true);
    map.checkInvariants();
  });

  it('updates attribute words in place through visitors', () => {
    const map = new PinMap();
    for (let i = 0; i < 300; i++) map.insert(i * 4, 2, i, 0);
    map.forEachOverlap(100, 200, () => 7);
    let flagged = 0;
    map.forEach((_s, _p, _h, attr) => {
      if (attr === 7) flagged++;
      return undefined;
    });
    // Ranges starting at 100, 104, ..., 196 (25 of them) and the one at 96..98 does not reach 100.
    expect(flagged).toBe(25);
    expect(map.get(100)?.attr).toBe(7);
    expect(map.get(101)).toBeUndefined();
  });

  it('answers queries asked in IOVA order (overlapsInOrder) as collectOverlaps does, across splits, merges and stale separators', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(20_000), fc.integer({ min: 1, max: 40 })), { minLength: 1, maxLength: 3000 }),
        fc.array(fc.nat(2999), { maxLength: 2000 }),
        fc.array(fc.tuple(fc.nat(20_100), fc.integer({ min: 1, max: 200 })), { minLength: 1, maxLength: 400 }),
        (adds, removes, queries) => {
          const map = new PinMap();
          const starts: number[] = [];
          for (const [start, pages] of adds) if (map.insert(start, pages, start * 3, pages % 7)) starts.push(start);
          // Removals leave separators below their child's minimum: the descent must still work.
          for (const k of removes) if (starts.length > 0) map.remove(starts[k % starts.length] as number);
          const sorted = [...queries].sort((a, b) => a[0] - b[0]);
          const inOrder = map.overlapsInOrder();
          const a: number[] = [];
          const b: number[] = [];
          for (const [start, pages] of sorted) {
            const n = inOrder(start, start + pages, a);
            expect(n).toBe(map.collectOverlaps(start, start + pages, b));
            expect(a.slice(0, 4 * n)).toEqual(b.slice(0, 4 * n));
          }
        }
      ),
      { numRuns: 100 }
    );
  });

  it('pages through ranges from a cursor', () => {
    const map = new PinMap();
    for (let i = 0; i < 1000; i++) map.insert(i * 10, 1, i, 0);
    const first = map.page(0, 100);
    expect(first).toHaveLength(100);
    expect(first[99]?.start).toBe(990);
    const next = map.page(991, 100);
    expect(next[0]?.start).toBe(1000);
    expect(map.page(9990, 100)).toHaveLength(1);
    expect(map.page(9991, 100)).toHaveLength(0);
  });
});

describe('walkByAttr', () => {
  it('changes, counts and collects by attribute word as the plain model does, and its journal rebuilds the result from the map before', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 4 }), pages: fc.integer({ min: 1, max: 8 }), attr: fc.integer({ min: 0, max: 5 }) }), { maxLength: 300 }),
        // A plan per word: its new word (chains such as 1 -> 2 and 2 -> 3 included), collected, counted.
        fc.array(fc.record({ to: fc.integer({ min: 0, max: 5 }), collect: fc.boolean(), counted: fc.boolean() }), { minLength: 6, maxLength: 6 }),
        // Host pages in order, touching, overlapping or not (coalesced as they come), or shuffled.
        fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 300, maxLength: 300 }),
        fc.boolean(),
        (specs, plans, steps, shuffled) => {
          let h = 1000;
          const hpas = steps.map((step) => (h += step));
          if (shuffled) hpas.reverse();
          const map = new PinMap();
          const model: Plain[] = [];
          let at = 0;
          for (const [i, s] of specs.entries()) {
            at += s.gap;
            map.insert(at, s.pages, hpas[i] ?? 0, s.attr);
            model.push({ start: at, pages: s.pages, hpa: hpas[i] ?? 0, attr: s.attr });
            at += s.pages;
          }
          const before = map.toArray();
          const journal = new PinJournal();
          map.recordInto(journal);
          const asked: number[] = [];
          const walked = map.walkByAttr((attr) => {
            asked.push(attr);
            const p = plans[attr] as (typeof plans)[number];
            return { attr: p.to, collect: p.collect, counted: p.counted };
          });
          // Asked once per run of ranges sharing a word, not once per range.
          let runs = 0;
          model.forEach((r, i) => {
            if (i === 0 || r.attr !== (model[i - 1] as Plain).attr) runs++;
          });
          expect(asked.length).toBe(runs);
          const pairs: number[] = [];
          let ranges = 0;
          let pages = 0;
          for (const r of model) {
            const p = plans[r.attr] as (typeof plans)[number];
            if (p.counted) {
              ranges++;
              pages += r.pages;
            }
            if (p.collect) pairs.push(r.hpa, r.pages);
            r.attr = p.to;
          }
          expect(walked.ranges).toBe(ranges);
          expect(walked.pages).toBe(pages);
          // The same host pages; coalesced as they came while in host order.
          const union = [...coalescePairs(new Float64Array(pairs))];
          expect([...coalescePairs(new Float64Array(walked.pairs))]).toEqual(union);
          if (walked.coalesced !== null) {
            expect([...walked.pairs]).toEqual(union);
            expect(walked.coalesced).toBe(union.reduce((sum, x, i) => sum + (i % 2 === 1 ? x : 0), 0));
          } else {
            expect(shuffled).toBe(true);
          }
          expect([...map.toArray()]).toEqual(model.flatMap((r) => [r.start, r.pages, r.hpa, r.attr]));
          const ops = journal.take();
          // A few numbers per word changed, whatever the number of ranges.
          expect(ops.length).toBeLessThanOrEqual(6 * PIN_OP_STRIDE);
          for (let o = 0; o < ops.length; o += PIN_OP_STRIDE) expect(ops[o]).toBe(PIN_RECODE);
          const restored = new PinMap();
          restored.insertMany(before);
          restored.apply(ops);
          expect([...restored.toArray()]).toEqual([...map.toArray()]);
          restored.checkInvariants();
        }
      ),
      { numRuns: 300 }
    );
  });

  it('refuses a stored recoding cut short', () => {
    const map = new PinMap();
    map.insert(0, 1, 0, 1);
    expect(() => map.apply(new Float64Array([PIN_RECODE, 2, 0, 1, 2]))).toThrow(/cut short/);
  });
});
