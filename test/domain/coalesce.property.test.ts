/**
 * A decision's flush ranges are sorted and coalesced (touching and overlapping ranges merged).
 * Pairs added out of host order go through coalesceUnsorted, which sorts starts and ends apart:
 * it must give exactly the union a sort by start and a merge give.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { coalesceUnsorted, DecisionBuilder } from '../../src/domain/decision.js';

/** The plain way: sort the pairs by start, merge each into the last when it starts at or before its end. */
function union(pairs: readonly (readonly [number, number])[]): { ranges: [number, number][]; pages: number } {
  const sorted = [...pairs].sort((a, b) => a[0] - b[0]);
  const ranges: [number, number][] = [];
  for (const [start, pages] of sorted) {
    const last = ranges[ranges.length - 1];
    if (last !== undefined && start <= last[0] + last[1]) last[1] = Math.max(last[1], start + pages - last[0]);
    else ranges.push([start, pages]);
  }
  return { ranges, pages: ranges.reduce((s, r) => s + r[1], 0) };
}

const pairs = fc.array(fc.tuple(fc.nat({ max: 200 }), fc.integer({ min: 1, max: 30 })), { minLength: 1, maxLength: 150 });

describe('coalesceUnsorted', () => {
  it('is the union of the pairs, sorted, touching and overlapping ranges merged', () => {
    fc.assert(
      fc.property(pairs, (given) => {
        const added = Float64Array.from(given.flat());
        const { pairs: out, pages } = coalesceUnsorted(added, given.length);
        const expected = union(given);
        expect([...out]).toEqual(expected.ranges.flat());
        expect(pages).toBe(expected.pages);
      }),
      { numRuns: 2000 }
    );
  });

  it('gives a decision the same flush whatever order its ranges were added in', () => {
    fc.assert(
      fc.property(pairs, (given) => {
        const forward = new DecisionBuilder();
        for (const [hpa, n] of given) forward.flush(hpa, n, 'unpin');
        const backward = new DecisionBuilder();
        for (const [hpa, n] of [...given].reverse()) backward.flush(hpa, n, 'unpin');
        const a = forward.buildFlush();
        const b = backward.buildFlush();
        expect(a.ranges).toEqual(b.ranges);
        expect(a.ranges.map((r) => [r.hpa, r.pages])).toEqual(union(given).ranges);
        expect(a.pages).toBe(union(given).pages);
      }),
      { numRuns: 1000 }
    );
  });
});
