/**
 * The shortcut past zod (src/http/plain-check.ts) is read from the schema: a value it calls plain
 * is one the schema accepts and gives back unchanged, whatever the schema says, and a change of
 * the schema changes the shortcut with it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { HexAddress } from '../../src/contract/common.js';
import { compactRange } from '../../src/http/json-bytes.js';
import { plainCheck, stringLimits } from '../../src/http/plain-check.js';

const SCHEMAS: Record<string, z.ZodType> = {
  'string max': z.string().max(5),
  'string min and pattern': z.string().min(2).regex(/^[a-c]+$/),
  'safe integer bounds': z.number().int().min(-3).max(7),
  'exclusive bounds': z.number().gt(0).lt(1),
  'any finite number': z.number(),
  enum: z.enum(['a', 'b']),
  literal: z.literal('x'),
  'strict object': z.object({ a: z.string().max(3), b: z.number().int().optional() }).strict(),
  'stripping object': z.object({ a: z.string() }),
  'array bounds': z.array(z.boolean()).min(1).max(2),
  'union, exact first': z.union([z.string().max(2), z.number().int().nonnegative()]),
  'union, stripping first': z.union([z.object({ a: z.string() }), z.object({ a: z.string(), b: z.string() }).strict()]),
  'nested strict': z.object({ op: z.enum(['map']), ranges: z.array(z.object({ iova: HexAddress }).strict()).min(1) }).strict(),
  coerced: z.coerce.number(),
  defaulted: z.object({ a: z.string().default('d') }).strict(),
  transformed: z.string().transform((s) => s.toUpperCase()),
  trimmed: z.string().trim(),
  refined: z.string().refine((s) => s !== 'no'),
  nullable: z.string().nullable()
};

const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  any: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 7 }),
    fc.constantFrom('a', 'b', 'x', 'ab', 'abc', 'no', ' a ', '0x1000'),
    fc.integer({ min: -5, max: 10 }),
    fc.double(),
    fc.constantFrom(0.5, 2 ** 53, Number.NaN, Infinity, null, undefined, true, false),
    fc.array(tie('any'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('a', 'b', 'op', 'ranges', 'iova', 'x'), tie('any'), { maxKeys: 3 })
  )
})).any;

describe('plainCheck', () => {
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    it(`${name}: what it calls plain, the schema accepts and gives back unchanged`, () => {
      const plain = plainCheck(schema);
      fc.assert(
        fc.property(value, (v) => {
          if (!plain(v)) return;
          const parsed = schema.safeParse(v);
          expect(parsed.success).toBe(true);
          expect(parsed.data).toEqual(v);
        }),
        { numRuns: 2000 }
      );
    });
  }

  it('takes the limits the schema states, and nothing it cannot vouch for', () => {
    const check = (name: string, v: unknown): boolean => plainCheck(SCHEMAS[name] as z.ZodType)(v);
    expect([check('string max', 'abcde'), check('string max', 'abcdef')]).toEqual([true, false]);
    expect([check('string min and pattern', 'ab'), check('string min and pattern', 'a'), check('string min and pattern', 'ad')]).toEqual([true, false, false]);
    expect([check('safe integer bounds', 7), check('safe integer bounds', 8), check('safe integer bounds', 1.5)]).toEqual([true, false, false]);
    expect([check('exclusive bounds', 0.5), check('exclusive bounds', 0)]).toEqual([true, false]);
    expect([check('strict object', { a: 'x' }), check('strict object', { a: 'x', b: 2 }), check('strict object', { a: 'x', c: 1 })]).toEqual([true, true, false]);
    expect(check('stripping object', { a: 'x', b: 'y' })).toBe(false);
    // The first option would take it and drop `b`: not plain, though the second takes it as it is.
    expect(check('union, stripping first', { a: 'x', b: 'y' })).toBe(false);
    expect([check('union, exact first', 'ab'), check('union, exact first', 3)]).toEqual([true, true]);
    for (const name of ['coerced', 'defaulted', 'transformed', 'trimmed', 'refined', 'nullable']) expect(check(name, name === 'coerced' ? 1 : name === 'defaulted' ? { a: 'x' } : 'a')).toBe(false);
  });
});

describe('the byte reader takes its limits from the schema', () => {
  it('HexAddress strings: at most what the schema takes', () => {
    expect(stringLimits(HexAddress)).toEqual({ min: 0, max: 20 });
    expect(stringLimits(z.union([z.string().max(12), z.number()]))).toEqual({ min: 0, max: 12 });
    expect(stringLimits(z.string().regex(/^0x/))).toBeUndefined();
  });

  it('range objects: the required HexAddress fields in the schema order, or none read', () => {
    const form = compactRange(z.object({ length: HexAddress, iova: HexAddress, hpa: HexAddress.optional() }).strict(), 'length');
    expect(form?.names).toEqual(['length', 'iova']);
    expect(form?.keys.map((k) => Buffer.from(k).toString())).toEqual(['{"length":"', '","iova":"']);
    expect(Buffer.from(form?.close ?? []).toString()).toBe('"}');
    expect(form?.lengthAt).toBe(0);
    expect(form?.maxDigits).toBe(13);
    expect(compactRange(z.object({ iova: HexAddress, length: z.string().max(20) }).strict(), 'length')).toBeNull();
    expect(compactRange(z.object({ iova: HexAddress }).strict(), 'length')).toBeNull();
  });
});
