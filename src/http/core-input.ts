/**
 * A parsed request body as the core takes it, by one rule: every field the contract names goes
 * to the core as it is, except the few the core takes in another form (an id parsed, hex read as
 * a number, bytes as pages), which a route names with their conversion. A field added to the
 * contract reaches the core without the route changing.
 */
import type { z } from 'zod';

/** A field's conversion: called with its value (undefined when absent) and its name; undefined leaves it out. */
type Convert<V, R = unknown> = (value: V, field: string) => R;

/** A conversion, optionally under another name in the core (`wbinvdAbove` → `wbinvdAbovePages`). */
export type Conversion<V> = Convert<V> | { readonly as: string; readonly from: Convert<V> };

export type Conversions<B> = { readonly [K in keyof B]?: Conversion<B[K]> };

type Converted<C> = C extends { readonly from: (...args: never[]) => infer R } ? R : C extends (...args: never[]) => infer R ? R : never;
type NameOf<K, C> = C extends { readonly as: infer N extends string } ? N : K;

/** The body with its converted fields replaced: each under its core name, with what its conversion gives. */
export type CoreInput<B, C> = { [K in keyof B as K extends keyof C ? never : K]: B[K] } & { -readonly [K in keyof C as NameOf<K, C[K]>]-?: Converted<C[K]> };

/**
 * `body` (parsed by `schema`) as the core takes it, fields in the schema's order, which is the
 * order they are stored (and shown in the audit trail) in: as they are, or converted by
 * `convert`. Conversions run in that order too, so the first bad field is the one reported.
 */
export function coreInput<S extends z.ZodRawShape, B extends z.output<z.ZodObject<S>>, const C extends Conversions<B>>(schema: z.ZodObject<S>, body: B, convert: C): CoreInput<B, C> {
  const out: Record<string, unknown> = {};
  for (const field of Object.keys(schema.shape)) {
    const value = (body as Record<string, unknown>)[field];
    const conversion = (convert as Record<string, Conversion<unknown> | undefined>)[field];
    const [name, converted] = conversion === undefined ? [field, value] : typeof conversion === 'function' ? [field, conversion(value, field)] : [conversion.as, conversion.from(value, field)];
    if (converted !== undefined) out[name] = converted;
  }
  return out as CoreInput<B, C>;
}

/** A conversion of a field that may be absent: absent stays absent. */
export function given<V, R>(convert: (value: V, field: string) => R): Convert<V | undefined, R | undefined> {
  return (value, field) => (value === undefined ? undefined : convert(value, field));
}

/** A conversion of a field that may be absent or null: either is null to the core. */
export function orNull<V, R>(convert: (value: V, field: string) => R): Convert<V | null | undefined, R | null> {
  return (value, field) => (value === undefined || value === null ? null : convert(value, field));
}
