/**
 * A parsed body reaches the core by one rule (src/http/core-input.ts): fields as they are, in the
 * schema's order (the order commands are stored and audited in), except those a route converts.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { coreInput, given, orNull } from '../../src/http/core-input.js';

const Body = z
  .object({
    id: z.string().nullable().optional(),
    size: z.number().optional(),
    flag: z.boolean(),
    hex: z.string().optional(),
    extra: z.record(z.string(), z.number()).optional()
  })
  .strict();

const FIELDS = {
  id: orNull((v: string) => `id:${v}`),
  size: { as: 'pages', from: given((v: number, field: string) => `${field}=${v / 4096}`) },
  hex: given((v: string) => Number.parseInt(v, 16))
} as const;

describe('coreInput', () => {
  it('copies what it does not convert, converts the rest in the schema order, and leaves out what is absent', () => {
    const out = coreInput(Body, Body.parse({ hex: '0x10', flag: true, size: 8192, extra: { a: 1 } }), FIELDS);
    expect(out).toEqual({ id: null, pages: 'size=2', flag: true, hex: 16, extra: { a: 1 } });
    expect(Object.keys(out)).toEqual(['id', 'pages', 'flag', 'hex', 'extra']);
    expect(Object.keys(coreInput(Body, Body.parse({ flag: false, id: 'x' }), FIELDS))).toEqual(['id', 'flag']);
  });

  it('stops at the first field that does not convert, in the schema order', () => {
    const failing = { id: orNull((): never => { throw new Error('id'); }), hex: given((): never => { throw new Error('hex'); }) };
    expect(() => coreInput(Body, Body.parse({ hex: '0x1', id: 'x', flag: true }), failing)).toThrow('id');
  });
});
