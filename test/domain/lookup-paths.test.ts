/**
 * The shortcuts taken by batched decisions agree with the general paths: parsePageAddress
 * without bigint for short hex strings and safe integers, formatPages from int32 halves, and
 * PinMap.collectOverlaps against forEachOverlap.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ADDRESS_SPACE_PAGES, DomainError, formatPages, parsePageAddress, PinMap } from '../../src/domain/index.js';

/** The bigint reading of the same input, as the general path computes it. */
function reference(input: string | number): number | string {
  const bytes = BigInt(input);
  if (bytes >= 1n << 64n) return 'ADDRESS_OVERFLOW';
  if ((bytes & 4095n) !== 0n) return 'UNALIGNED';
  return Number(bytes >> 12n);
}

function outcome(input: string | number): number | string {
  try {
    return parsePageAddress(input, 'iova');
  } catch (err) {
    if (err instanceof DomainError) return err.code;
    throw err;
  }
}

describe('parsePageAddress', () => {
  it('agrees with the bigint reading for hex strings of every length and case, and safe integers', () => {
    const digits = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), minLength: 1, maxLength: 16 });
    fc.assert(
      fc.property(fc.oneof(digits.map((d) => `0x${d}`), digits.map((d) => `0X${d}`), digits.map((d) => `0x${d}000`.slice(0, 18)), fc.maxSafeNat(), fc.maxSafeNat().map((n) => n - (n % 4096))), (input) => {
        expect(outcome(input)).toBe(reference(input));
      }),
      { numRuns: 5000 }
    );
  });

  it('still refuses what is not a hex address', () => {
    for (const bad of ['', '0x', '1000', '0x1g00', ' 0x1000', '0x1000 ', -4096, 1.5, 2 ** 53, Number.NaN]) expect(outcome(bad)).toBe('INVALID_HEX');
  });
});

describe('formatPages', () => {
  it('writes the bytes of any page number in lowercase hex, as bigint arithmetic does', () => {
    const edges = [0, 1, 0xfff, 2 ** 28 - 1, 2 ** 28, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 41 - 1, 2 ** 41, ADDRESS_SPACE_PAGES - 1, ADDRESS_SPACE_PAGES];
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(...edges), fc.integer({ min: 0, max: ADDRESS_SPACE_PAGES }), fc.nat()), (pages) => {
        expect(formatPages(pages)).toBe(`0x${(BigInt(pages) << 12n).toString(16)}`);
      }),
      { numRuns: 5000 }
    );
  });
});

describe('PinMap.collectOverlaps', () => {
  it('returns what forEachOverlap visits, in order', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.nat({ max: 5000 }), { maxLength: 400 }), fc.array(fc.tuple(fc.nat({ max: 20_100 }), fc.integer({ min: 1, max: 300 })), { maxLength: 50 }), (slots, queries) => {
        const map = new PinMap();
        for (const s of slots) map.insert(s * 4, 1 + (s % 3), s * 7, s % 64);
        const out: number[] = [];
        for (const [start, pages] of queries) {
          const seen: number[] = [];
          map.forEachOverlap(start, start + pages, (s, p, h, a) => {
            seen.push(s, p, h, a);
            return undefined;
          });
          const n = map.collectOverlaps(start, start + pages, out);
          expect(out.slice(0, 4 * n)).toEqual(seen);
        }
      })
    );
  });
});
