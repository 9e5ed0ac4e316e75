/**
 * Which values a zod schema certainly accepts and gives back unchanged, decided without zod:
 * routes that take 10,000 ranges many times a second let such bodies (and path parameters) skip
 * the generic per-field walk. The check is read from the schema itself, once, when a route is
 * compiled: its keys, enums, length limits, patterns and bounds are the contract's own, so a
 * change of the contract changes the shortcut too. Whatever the check does not know (defaults,
 * coercion, transforms, refinements, unknown formats) is never plain: zod then decides, with its
 * usual errors. "Not plain" says nothing about validity.
 */
import type { FastifySchemaCompiler } from 'fastify';
import { validatorCompiler } from 'fastify-type-provider-zod';
import type { z } from 'zod';

export type PlainCheck = (value: unknown) => boolean;

/** A schema's check, and whether the schema accepts exactly the values it calls plain. */
interface Compiled {
  readonly plain: PlainCheck;
  /** Accepts ⇔ plain: nothing it accepts is changed, nothing it would change is accepted. */
  readonly exact: boolean;
}

/** The parts of a zod 4 definition the check reads (`schema.def`). */
interface Def {
  readonly type: string;
  readonly coerce?: boolean;
  readonly checks?: readonly { readonly _zod: { readonly def: z.core.$ZodCheckDef & Readonly<Record<string, unknown>> } }[];
  readonly shape?: Readonly<Record<string, z.ZodType>>;
  readonly catchall?: z.ZodType;
  readonly element?: z.ZodType;
  readonly options?: readonly z.ZodType[];
  readonly innerType?: z.ZodType;
  readonly values?: readonly unknown[];
}

const NEVER: Compiled = { plain: () => false, exact: false };

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** True when `schema` certainly accepts `value` and gives it back unchanged (see above). */
export function plainCheck(schema: z.ZodType): PlainCheck {
  return compile(schema).plain;
}

function defOf(schema: z.ZodType): Def {
  return schema.def as unknown as Def;
}

function compile(schema: z.ZodType): Compiled {
  const def = defOf(schema);
  if (def.coerce === true) return NEVER;
  switch (def.type) {
    case 'string':
      return scalar(stringCheck(def));
    case 'number':
      return scalar(numberCheck(def));
    case 'boolean':
      return scalar(def.checks === undefined || def.checks.length === 0 ? (v) => typeof v === 'boolean' : undefined);
    case 'enum':
      return scalar(oneOf((schema as z.ZodEnum).options));
    case 'literal':
      return scalar(oneOf(def.values ?? []));
    case 'optional': {
      const inner = compile(def.innerType as z.ZodType);
      return { plain: (v) => v === undefined || inner.plain(v), exact: inner.exact };
    }
    case 'array':
      return arrayCheck(def);
    case 'object':
      return objectCheck(def);
    case 'union':
      return unionCheck((def.options ?? []).map(compile));
    default:
      return NEVER;
  }
}

function scalar(plain: PlainCheck | undefined): Compiled {
  return plain === undefined ? NEVER : { plain, exact: true };
}

function oneOf(values: readonly unknown[]): PlainCheck {
  const set = new Set(values);
  return (v) => set.has(v);
}

/** Length limits (min, max) and regex patterns; undefined when a check is of another kind. */
function lengthAndPatterns(def: Def): { min: number; max: number; patterns: RegExp[] } | undefined {
  const out = { min: 0, max: Infinity, patterns: [] as RegExp[] };
  for (const { _zod } of def.checks ?? []) {
    const c = _zod.def;
    if (c.check === 'max_length') out.max = Math.min(out.max, c['maximum'] as number);
    else if (c.check === 'min_length') out.min = Math.max(out.min, c['minimum'] as number);
    else if (c.check === 'length_equals') out.min = out.max = c['length'] as number;
    else if (c.check === 'string_format' && c['format'] === 'regex') out.patterns.push(c['pattern'] as RegExp);
    else return undefined;
  }
  return out;
}

function stringCheck(def: Def): PlainCheck | undefined {
  const limits = lengthAndPatterns(def);
  if (limits === undefined) return undefined;
  const { min, max, patterns } = limits;
  if (patterns.length === 0) return (v) => typeof v === 'string' && v.length >= min && v.length <= max;
  return (v) => {
    if (typeof v !== 'string' || v.length < min || v.length > max) return false;
    for (const p of patterns) {
      p.lastIndex = 0;
      if (!p.test(v)) return false;
    }
    return true;
  };
}

/** Finite numbers (zod's default) or safe integers, within the strictest bounds given. */
function numberCheck(def: Def): PlainCheck | undefined {
  let integer = false;
  let low = -Infinity;
  let high = Infinity;
  let lowInclusive = true;
  let highInclusive = true;
  for (const { _zod } of def.checks ?? []) {
    const c = _zod.def;
    const value = c['value'] as number;
    const inclusive = c['inclusive'] === true;
    if (c.check === 'number_format' && c['format'] === 'safeint') {
      integer = true;
    } else if (c.check === 'greater_than') {
      if (value > low || (value === low && !inclusive)) {
        low = value;
        lowInclusive = inclusive;
      }
    } else if (c.check === 'less_than') {
      if (value < high || (value === high && !inclusive)) {
        high = value;
        highInclusive = inclusive;
      }
    } else {
      return undefined;
    }
  }
  return (v) => typeof v === 'number' && (integer ? Number.isSafeInteger(v) : Number.isFinite(v)) && (lowInclusive ? v >= low : v > low) && (highInclusive ? v <= high : v < high);
}

function arrayCheck(def: Def): Compiled {
  const limits = lengthAndPatterns(def);
  if (limits === undefined || limits.patterns.length > 0) return NEVER;
  const { min, max } = limits;
  const element = compile(def.element as z.ZodType);
  return {
    plain: (v) => {
      if (!Array.isArray(v) || v.length < min || v.length > max) return false;
      for (const item of v as unknown[]) if (!element.plain(item)) return false;
      return true;
    },
    exact: element.exact
  };
}

/** Only the keys of the shape (zod would drop or refuse others), every required one present. */
function objectCheck(def: Def): Compiled {
  const fields = new Map<string, { readonly plain: PlainCheck; readonly required: boolean }>();
  let required = 0;
  let exact = def.catchall !== undefined && defOf(def.catchall).type === 'never';
  for (const [key, schema] of Object.entries(def.shape ?? {})) {
    const field = compile(schema);
    const isRequired = defOf(schema).type !== 'optional';
    fields.set(key, { plain: field.plain, required: isRequired });
    if (isRequired) required++;
    exact &&= field.exact;
  }
  return {
    plain: (v) => {
      if (!isRecord(v)) return false;
      let seen = 0;
      for (const key in v) {
        const field = fields.get(key);
        if (field === undefined || !field.plain(v[key])) return false;
        if (field.required) seen++;
      }
      return seen === required;
    },
    exact
  };
}

/**
 * zod answers a union with its first option that accepts the value. An option that is not exact
 * may accept a value it changes, so the options after it are not looked at.
 */
function unionCheck(options: readonly Compiled[]): Compiled {
  return {
    plain: (v) => {
      for (const option of options) {
        if (option.plain(v)) return true;
        if (!option.exact) return false;
      }
      return false;
    },
    exact: options.every((o) => o.exact)
  };
}

/**
 * The length limits of the strings `schema` takes (a string, or a union with one string option),
 * when length is all it checks of them; undefined otherwise. A reader of strings from bytes takes
 * its limits from here.
 */
export function stringLimits(schema: z.ZodType): { readonly min: number; readonly max: number } | undefined {
  const def = defOf(schema);
  const strings = def.type === 'union' ? (def.options ?? []).filter((o) => defOf(o).type === 'string') : def.type === 'string' ? [schema] : [];
  const only = strings.length === 1 ? defOf(strings[0] as z.ZodType) : undefined;
  const limits = only === undefined || only.coerce === true ? undefined : lengthAndPatterns(only);
  return limits === undefined || limits.patterns.length > 0 ? undefined : { min: limits.min, max: limits.max };
}

/** An empty query string, which a query schema of optional fields answers with `{}`. */
export function isEmptyQuery(query: unknown): boolean {
  if (!isRecord(query)) return false;
  for (const key in query) if (Object.hasOwn(query, key)) return false;
  return true;
}

/**
 * A validator compiler whose parts skip zod when they certainly pass it unchanged: a body `read`
 * from its bytes already (json-bytes.ts) or plain, plain path parameters, an empty or plain query
 * string. Anything else goes through fastify-type-provider-zod as on other routes.
 */
export function plainValidatorCompiler(read: (body: unknown) => boolean): FastifySchemaCompiler<unknown> {
  // Fastify types a route's compilers by the whole route schema; at run time each receives one
  // part's zod schema, as the zod compilers set in app.ts do.
  return (route) => {
    const schema = route.schema as z.ZodType;
    const zod = validatorCompiler({ ...route, schema });
    const plain = plainCheck(schema);
    if (route.httpPart === 'body') return (data: unknown) => (read(data) || plain(data) ? { value: data } : zod(data));
    if (route.httpPart === 'querystring') return (data: unknown) => (isEmptyQuery(data) ? { value: {} } : plain(data) ? { value: data } : zod(data));
    if (route.httpPart === 'params') return (data: unknown) => (plain(data) ? { value: data } : zod(data));
    return zod;
  };
}
