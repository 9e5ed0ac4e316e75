/**
 * The wire of POST /v1/vms/{vmId}/decisions/flush, the one route a VMM may call with 10,000
 * ranges many times a second. Its schemas (FlushQueryBody, FlushQueryAnswer) stay the contract
 * and the OpenAPI document; two shortcuts keep the generic zod machinery off the hot path:
 *
 * - `isPlainFlushQuery` recognises a body that FlushQueryBody certainly accepts as it is (its
 *   output would equal its input), and likewise for the path parameters and an empty query
 *   string. Those skip zod; anything else, valid or not, is validated by zod exactly as before,
 *   so errors do not change.
 * - `parseFlushQueryText` reads the commonest body, `{"op":..,"ranges":[{"iova":..,
 *   "length":..},..]}` written compactly with canonical hex strings, without JSON.parse and
 *   without an object per range: page numbers go into typed arrays (a PlainFlushQuery), and
 *   where each range's text lies is kept for the answer. Any other text goes to Fastify's JSON
 *   parser, whose errors stay the same, and is validated by zod.
 * - `stringifyFlushQueryReply` writes a 200 answer as JSON, byte for byte what the zod
 *   serializer writes (encode with FlushQueryAnswer, then JSON.stringify), from the answer's
 *   columns: each result echoes its range's own text (`{"iova":"..","length":".."`), then its
 *   verdict and rule.
 * - `hexOf` gives back the caller's own address string when it is already the canonical hex.
 */
import type { FastifySchemaCompiler, FastifySerializerCompiler } from 'fastify';
import type { z } from 'zod';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { formatPages, MEM_TYPES, type FlushQueryColumns, type RuleId } from '../domain/index.js';
import type { FlushQueryAnswer } from './schemas/pin.js';

type Answer = z.output<typeof FlushQueryAnswer>;

/**
 * Each range of a question as the answer echoes it: `text` holds range i as
 * `{"iova":"X","length":"Y"` with X at [at[4i], at[4i+1]) and Y at [at[4i+2], at[4i+3]), X and
 * Y canonical hex (what formatPages writes).
 */
export interface Echo {
  readonly text: string;
  readonly at: Uint32Array;
}

const ECHO_IOVA = '{"iova":"';
const ECHO_LENGTH = '","length":"';

/** The echo of ranges given as canonical hex strings. */
export function echoOf(iova: readonly string[], length: readonly string[]): Echo {
  const at = new Uint32Array(4 * iova.length);
  let text = '';
  for (let i = 0; i < iova.length; i++) {
    text += ECHO_IOVA;
    at[4 * i] = text.length;
    text += iova[i] as string;
    at[4 * i + 1] = text.length;
    text += ECHO_LENGTH;
    at[4 * i + 2] = text.length;
    text += length[i] as string;
    at[4 * i + 3] = text.length;
    text += '"';
  }
  return { text, at };
}

/** A compact flush question read from its text by parseFlushQueryText: columns, and the echo of each range. */
export class PlainFlushQuery implements FlushQueryColumns {
  readonly given = null;
  constructor(
    readonly op: 'map' | 'unmap',
    readonly iova: Float64Array,
    readonly pages: Float64Array,
    readonly echo: Echo
  ) {}

  /** The ranges as JSON.parse would give them. */
  get ranges(): { iova: string; length: string }[] {
    const { text, at } = this.echo;
    const out: { iova: string; length: string }[] = [];
    for (let i = 0; i < this.iova.length; i++) out.push({ iova: text.slice(at[4 * i], at[4 * i + 1]), length: text.slice(at[4 * i + 2], at[4 * i + 3]) });
    return out;
  }
}

/** A 200 answer of the route as columns; `results` makes the objects the schema describes, when read. */
export class FlushQueryReply {
  constructor(
    readonly op: 'map' | 'unmap',
    readonly flush: Answer['flush'],
    readonly reasons: Answer['reasons'],
    readonly kvmNoncoherentDma: boolean,
    readonly echo: Echo,
    readonly required: Uint8Array,
    readonly rules: readonly RuleId[],
    readonly failClosed?: 'STORE_UNAVAILABLE'
  ) {}

  get results(): Answer['results'] {
    const { text, at } = this.echo;
    return this.rules.map((rule, i) => ({ iova: text.slice(at[4 * i], at[4 * i + 1]), length: text.slice(at[4 * i + 2], at[4 * i + 3]), required: this.required[i] === 1, rule }));
  }
}

const MEM_TYPE_SET: ReadonlySet<unknown> = new Set(MEM_TYPES);

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** HexAddress: a string of at most 20 characters, or a non-negative safe integer. */
export function isHexAddress(value: unknown): boolean {
  return typeof value === 'string' ? value.length <= 20 : typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** One FlushQueryRange (strict): iova and length, optional hpa, memType, mmio, domains. */
function isPlainRange(value: unknown): boolean {
  if (!isRecord(value)) return false;
  let required = 0;
  for (const key in value) {
    const field = value[key];
    switch (key) {
      case 'iova':
      case 'length':
        if (!isHexAddress(field)) return false;
        required++;
        break;
      case 'hpa':
        if (!isHexAddress(field)) return false;
        break;
      case 'memType':
        if (!MEM_TYPE_SET.has(field)) return false;
        break;
      case 'mmio':
        if (typeof field !== 'boolean') return false;
        break;
      case 'domains':
        if (!Array.isArray(field)) return false;
        for (const d of field as unknown[]) if (typeof d !== 'string' || d.length > 64) return false;
        break;
      default:
        return false;
    }
  }
  return required === 2;
}

/**
 * True when FlushQueryBody accepts `body` and would answer it unchanged: `{op, ranges}` and
 * nothing else, op `map` or `unmap`, at least one range, every range valid. False says nothing
 * about validity: the caller then asks zod.
 */
export function isPlainFlushQuery(body: unknown): boolean {
  if (!isRecord(body)) return false;
  let keys = 0;
  for (const key in body) {
    if (key !== 'op' && key !== 'ranges') return false;
    keys++;
  }
  if (keys !== 2 || (body['op'] !== 'map' && body['op'] !== 'unmap')) return false;
  const ranges = body['ranges'];
  if (!Array.isArray(ranges) || ranges.length === 0) return false;
  for (const r of ranges as unknown[]) if (!isPlainRange(r)) return false;
  return true;
}

// Fastify types a route's compilers by the whole route schema; at run time each receives one
// part's zod schema, as the zod compilers set in app.ts do.

/** VmParams certainly accepts `params` unchanged: only a vmId of at most 64 characters. */
export function isPlainVmParams(params: unknown): boolean {
  if (!isRecord(params)) return false;
  let keys = 0;
  for (const key in params) {
    if (key !== 'vmId') return false;
    keys++;
  }
  const vmId = params['vmId'];
  return keys === 1 && typeof vmId === 'string' && vmId.length <= 64;
}

/** An empty query string, which FreshQuery answers with `{}`. */
export function isEmptyQuery(query: unknown): boolean {
  if (!isRecord(query)) return false;
  for (const key in query) if (Object.hasOwn(query, key)) return false;
  return true;
}

/**
 * The route's validator compiler: the body, the path parameters and the query string take the
 * shortcut when they can; anything else goes through fastify-type-provider-zod as on other routes.
 */
export const flushQueryValidatorCompiler: FastifySchemaCompiler<unknown> = (route) => {
  const zod = validatorCompiler({ ...route, schema: route.schema as z.ZodType });
  const part = route.httpPart;
  if (part === 'body') return (data: unknown) => (data instanceof PlainFlushQuery || isPlainFlushQuery(data) ? { value: data } : zod(data));
  if (part === 'params') return (data: unknown) => (isPlainVmParams(data) ? { value: data } : zod(data));
  if (part === 'querystring') return (data: unknown) => (isEmptyQuery(data) ? { value: {} } : zod(data));
  return zod;
};

/**
 * The route's serializer compiler: 200 answers are written by `stringifyFlushQueryReply`,
 * problems by the zod serializer as on other routes.
 */
export const flushQuerySerializerCompiler: FastifySerializerCompiler<unknown> = (route) => {
  const zod = serializerCompiler({ ...route, schema: route.schema as z.ZodType });
  if (route.httpStatus !== '200') return zod;
  return (data: unknown) => (data instanceof FlushQueryReply ? (stringifyFlushQueryReply(data) ?? zod(data)) : zod(data));
};

/**
 * A FlushQueryReply as FlushQueryAnswer JSON, keys in schema order, optional keys only when
 * present. Strings from closed sets (op, rule, cause, failClosed) and hex strings (HexOut: `0x`
 * and lowercase digits) need no escaping; messages go through JSON.stringify. Returns undefined
 * for an answer carrying what this route never answers (a flush job or receipt): the caller then
 * uses zod.
 */
export function stringifyFlushQueryReply(a: FlushQueryReply): string | undefined {
  const f = a.flush;
  if (f.jobId !== undefined || f.receipt !== undefined) return undefined;
  let s = `{"op":"${a.op}","flush":{"required":${f.required},"bytes":"${f.bytes}","ranges":[`;
  const ranges = f.ranges;
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i] as (typeof ranges)[number];
    s += `${i === 0 ? '' : ','}{"hpa":"${r.hpa}","length":"${r.length}"}`;
  }
  s += `],"rangeCount":${f.rangeCount},"rangesTruncated":${f.rangesTruncated}`;
  if (f.cause !== undefined) s += `,"cause":"${f.cause}"`;
  if (f.when !== undefined) s += `,"when":"${f.when}"`;
  if (f.after !== undefined) s += `,"after":${JSON.stringify(f.after)}`;
  s += '},"reasons":[';
  for (let i = 0; i < a.reasons.length; i++) {
    const r = a.reasons[i] as (typeof a.reasons)[number];
    s += `${i === 0 ? '' : ','}{"rule":"${r.rule}","message":${JSON.stringify(r.message)}}`;
  }
  s += `],"kvmNoncoherentDma":${a.kvmNoncoherentDma},"results":[`;
  const { text, at } = a.echo;
  const required = a.required;
  const rules = a.rules;
  for (let i = 0; i < rules.length; i++) {
    // `{"iova":"X","length":"Y"` as the echo holds it, then the verdict.
    s += (i === 0 ? '' : ',') + text.slice((at[4 * i] as number) - ECHO_IOVA.length, (at[4 * i + 3] as number) + 1) + (required[i] === 1 ? ',"required":true,"rule":"' : ',"required":false,"rule":"') + (rules[i] as RuleId) + '"}';
  }
  s += ']';
  if (a.failClosed !== undefined) s += `,"failClosed":"${a.failClosed}"`;
  return `${s}}`;
}

const CANONICAL_HEX = /^0x(?:0|[1-9a-f][0-9a-f]*)$/;

/**
 * The hex an answer writes for `pages`, parsed from `given`: `given` itself when it is already
 * written that way (lowercase, no leading zeros), which is what formatPages would return.
 */
export function hexOf(given: string | number, pages: number): string {
  return typeof given === 'string' && CANONICAL_HEX.test(given) ? given : formatPages(pages);
}

// The only text parseFlushQueryText reads: no whitespace, these keys in this order.
const MAP_HEAD = '{"op":"map","ranges":[';
const UNMAP_HEAD = '{"op":"unmap","ranges":[';
const RANGE_MID = '","length":"';
const CLOSE_BRACE = 0x7d;
const COMMA = 0x2c;
const CLOSE_BRACKET = 0x5d;
/** The shortest range text, `{"iova":"0x0","length":"0x1000"}`, and its comma. */
const SHORTEST_RANGE = 34;

/**
 * The page number written by text[from, to) when it is canonical hex of an aligned address below
 * 2^52 bytes (`0x0`, or `0x` then at most 13 lowercase digits without leading zeros, ending in
 * `000`): exactly what parsePageAddress gives and what formatPages writes back. -1 otherwise.
 */
function canonicalPages(text: string, from: number, to: number): number {
  const digits = to - from - 2;
  if (digits < 1 || digits > 13 || text.charCodeAt(from) !== 0x30 || text.charCodeAt(from + 1) !== 0x78) return -1;
  if (digits === 1) return text.charCodeAt(from + 2) === 0x30 ? 0 : -1;
  if (digits < 4 || text.charCodeAt(from + 2) === 0x30) return -1;
  if (text.charCodeAt(to - 1) !== 0x30 || text.charCodeAt(to - 2) !== 0x30 || text.charCodeAt(to - 3) !== 0x30) return -1;
  let pages = 0;
  for (let k = from + 2; k < to - 3; k++) {
    const c = text.charCodeAt(k);
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
    if (d < 0) return -1;
    pages = pages * 16 + d;
  }
  return pages;
}

/**
 * `text` as a PlainFlushQuery when it is a compact flush question whose ranges carry only iova
 * and length, as canonical hex strings (see canonicalPages), every length at least one page;
 * undefined for any other text (valid or not), which the caller then parses as JSON and zod
 * validates. What it reads is exactly what JSON.parse and FlushQueryBody would give.
 */
export function parseFlushQueryText(text: string): PlainFlushQuery | undefined {
  let op: 'map' | 'unmap';
  let i: number;
  if (text.startsWith(MAP_HEAD)) {
    op = 'map';
    i = MAP_HEAD.length;
  } else if (text.startsWith(UNMAP_HEAD)) {
    op = 'unmap';
    i = UNMAP_HEAD.length;
  } else {
    return undefined;
  }
  const room = Math.floor((text.length - i) / SHORTEST_RANGE) + 1;
  const iova = new Float64Array(room);
  const pages = new Float64Array(room);
  const at = new Uint32Array(4 * room);
  let n = 0;
  for (;;) {
    if (n === room || !text.startsWith(ECHO_IOVA, i)) return undefined;
    const iovaAt = i + ECHO_IOVA.length;
    const iovaEnd = text.indexOf('"', iovaAt);
    if (iovaEnd < 0 || !text.startsWith(RANGE_MID, iovaEnd)) return undefined;
    const lengthAt = iovaEnd + RANGE_MID.length;
    const lengthEnd = text.indexOf('"', lengthAt);
    if (lengthEnd < 0) return undefined;
    const start = canonicalPages(text, iovaAt, iovaEnd);
    const length = canonicalPages(text, lengthAt, lengthEnd);
    if (start < 0 || length < 1) return undefined;
    iova[n] = start;
    pages[n] = length;
    at[4 * n] = iovaAt;
    at[4 * n + 1] = iovaEnd;
    at[4 * n + 2] = lengthAt;
    at[4 * n + 3] = lengthEnd;
    n++;
    i = lengthEnd + 1;
    if (text.charCodeAt(i) !== CLOSE_BRACE) return undefined;
    i++;
    const next = text.charCodeAt(i);
    if (next === COMMA) {
      i++;
      continue;
    }
    // "]}" and the end of the text.
    if (next === CLOSE_BRACKET && text.charCodeAt(i + 1) === CLOSE_BRACE && i + 2 === text.length) {
      return new PlainFlushQuery(op, iova.subarray(0, n), pages.subarray(0, n), { text, at: at.subarray(0, 4 * n) });
    }
    return undefined;
  }
}
