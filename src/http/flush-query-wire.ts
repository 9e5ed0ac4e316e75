/**
 * The wire of POST /v1/vms/{vmId}/decisions/flush, the one route a VMM may call with 10,000
 * ranges many times a second. Its schemas (FlushQueryBody, FlushQueryAnswer) stay the contract
 * and the OpenAPI document; two shortcuts keep the generic zod machinery off the hot path:
 *
 * - `isPlainFlushQuery` recognises a body that FlushQueryBody certainly accepts as it is (its
 *   output would equal its input), and likewise for the path parameters and an empty query
 *   string. Those skip zod; anything else, valid or not, is validated by zod exactly as before,
 *   so errors do not change.
 * - `stringifyFlushQueryAnswer` writes a 200 answer as JSON, byte for byte what the zod
 *   serializer writes (encode with FlushQueryAnswer, then JSON.stringify), without walking the
 *   schema for each of 10,000 results.
 * - `hexOf` gives back the caller's own address string when it is already the canonical hex.
 * - `parsePlainFlushQueryJson` reads the commonest body, `{"op":..,"ranges":[{"iova":..,
 *   "length":..},..]}` written compactly with string addresses, without JSON.parse; any other
 *   text goes to Fastify's JSON parser, whose errors stay the same.
 */
import type { FastifySchemaCompiler, FastifySerializerCompiler } from 'fastify';
import type { z } from 'zod';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { formatPages, MEM_TYPES } from '../domain/index.js';
import type { FlushQueryAnswer } from './schemas/pin.js';

type Answer = z.output<typeof FlushQueryAnswer>;

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
  if (part === 'body') return (data: unknown) => (isPlainFlushQuery(data) ? { value: data } : zod(data));
  if (part === 'params') return (data: unknown) => (isPlainVmParams(data) ? { value: data } : zod(data));
  if (part === 'querystring') return (data: unknown) => (isEmptyQuery(data) ? { value: {} } : zod(data));
  return zod;
};

/**
 * The route's serializer compiler: 200 answers are written by `stringifyFlushQueryAnswer`,
 * problems by the zod serializer as on other routes.
 */
export const flushQuerySerializerCompiler: FastifySerializerCompiler<unknown> = (route) => {
  const zod = serializerCompiler({ ...route, schema: route.schema as z.ZodType });
  if (route.httpStatus !== '200') return zod;
  return (data: unknown) => stringifyFlushQueryAnswer(data as Answer) ?? zod(data);
};

/**
 * FlushQueryAnswer as JSON, keys in schema order, optional keys only when present. Strings from
 * closed sets (op, rule, cause, failClosed) and hex strings (HexOut: `0x` and lowercase digits)
 * need no escaping; messages go through JSON.stringify. Returns undefined for an answer carrying
 * what this route never answers (a flush job or receipt): the caller then uses zod.
 */
export function stringifyFlushQueryAnswer(a: Answer): string | undefined {
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
  const results = a.results;
  for (let i = 0; i < results.length; i++) {
    const x = results[i] as (typeof results)[number];
    s += `${i === 0 ? '' : ','}{"iova":"${x.iova}","length":"${x.length}","required":${x.required},"rule":"${x.rule}"}`;
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

// The only text parsePlainFlushQueryJson reads: no whitespace, these keys in this order.
const MAP_HEAD = '{"op":"map","ranges":[';
const UNMAP_HEAD = '{"op":"unmap","ranges":[';
const RANGE_HEAD = '{"iova":"';
const RANGE_MID = '","length":"';
/** Characters that would make a JSON string mean something else than its text (escapes) or invalid (controls). */
// eslint-disable-next-line no-control-regex -- JSON forbids these unescaped inside strings; finding one sends the text to JSON.parse
const ESCAPE_OR_CONTROL = /[\\\u0000-\u001f]/;
const CLOSE_BRACE = 0x7d;
const COMMA = 0x2c;
const CLOSE_BRACKET = 0x5d;

/**
 * The value JSON.parse gives `text` when `text` is a compact flush question whose ranges carry
 * only iova and length as strings of at most 20 characters; undefined for any other text (valid
 * or not), which the caller then parses as JSON. Its output is always a plain body.
 */
export function parsePlainFlushQueryJson(text: string): { op: 'map' | 'unmap'; ranges: { iova: string; length: string }[] } | undefined {
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
  if (ESCAPE_OR_CONTROL.test(text)) return undefined;
  const ranges: { iova: string; length: string }[] = [];
  for (;;) {
    if (!text.startsWith(RANGE_HEAD, i)) return undefined;
    i += RANGE_HEAD.length;
    const iovaEnd = text.indexOf('"', i);
    if (iovaEnd < 0 || iovaEnd - i > 20) return undefined;
    const iova = text.slice(i, iovaEnd);
    if (!text.startsWith(RANGE_MID, iovaEnd)) return undefined;
    i = iovaEnd + RANGE_MID.length;
    const lengthEnd = text.indexOf('"', i);
    if (lengthEnd < 0 || lengthEnd - i > 20) return undefined;
    const length = text.slice(i, lengthEnd);
    ranges.push({ iova, length });
    i = lengthEnd + 1;
    if (text.charCodeAt(i) !== CLOSE_BRACE) return undefined;
    i++;
    const next = text.charCodeAt(i);
    if (next === COMMA) {
      i++;
      continue;
    }
    // "]}" and the end of the text.
    if (next === CLOSE_BRACKET && text.charCodeAt(i + 1) === CLOSE_BRACE && i + 2 === text.length) return { op, ranges };
    return undefined;
  }
}
