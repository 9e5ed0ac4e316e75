/** The radix sorts of page numbers agree with a comparator sort, for small and large values alike. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ascendingOrder, sortPageNumbers } from '../../src/domain/radix.js';

const pageNumber = fc.oneof(fc.nat({ max: 3000 }), fc.nat({ max: 2 ** 31 }), fc.integer({ min: 0, max: 2 ** 52 - 1 }), fc.constantFrom(0, 2 ** 52 - 1, 2 ** 40, 2 ** 33 - 1));
const numbers = fc.array(pageNumber, { maxLength: 2000 });

describe('sortPageNumbers', () => {
  it('sorts as a comparator sort does', () => {
    fc.assert(
      fc.property(numbers, (given) => {
        const values = Float64Array.from(given);
        sortPageNumbers(values);
        expect([...values]).toEqual([...given].sort((a, b) => a - b));
      }),
      { numRuns: 300 }
    );
  });
});

describe('ascendingOrder', () => {
  it('orders indices by key, equal keys in index order; null for keys ascending already', () => {
    fc.assert(
      fc.property(numbers, (given) => {
        const keys = Float64Array.from(given);
        const order = ascendingOrder(keys);
        const expected = given.map((_, i) => i).sort((a, b) => (given[a] as number) - (given[b] as number) || a - b);
        if (order === null) expect(expected).toEqual(given.map((_, i) => i));
        else expect([...order]).toEqual(expected);
      }),
      { numRuns: 300 }
    );
  });
});
