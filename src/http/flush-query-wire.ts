/**
 * The wire of POST /v1/vms/{vmId}/decisions/flush, the one route a VMM may call with 10,000
 * ranges many times a second. Its schemas (FlushQueryBody, FlushQueryAnswer) stay the contract
 * and the OpenAPI document; two shortcuts keep the generic zod machinery off the hot path:
 *
 * - `isPlainFlushQuery` recognises a body that FlushQueryBody certainly accepts as it is (its
 *   output would equal its input), and likewise for the path parameters and an empty query
 *   string. Those skip zod; anything else, valid or not, is validated by zod exactly as before,
 *   so errors do not change.
 * - `parseFlushQueryBytes` reads the commonest body, `{"op":..,"ranges":[{"iova":..,
 *   "length":..},..]}` written compactly with canonical hex strings, from its bytes: without
 *   decoding it, without JSON.parse and without an object per range. Page numbers go into typed
 *   arrays (a PlainFlushQuery), and where each range's bytes lie is kept for the answer. Any
 *   other body goes to Fastify's JSON parser, whose errors stay the same, and is validated by zod.
 * - `serializeFlushQueryReply` writes a 200 answer as JSON bytes, exactly what the zod
 *   serializer writes (encode with FlushQueryAnswer, then JSON.stringify), from the answer's
 *   columns: flush ranges from the decision's pairs, and each result the bytes of its range
 *   (`{"iova":"..","length":".."`), then its verdict and rule.
 * - `hexOf` gives back the caller's own address string when it is already the canonical hex.
 */
import type { FastifySchemaCompiler, FastifySerializerCompiler } from 'fastify';
import type { z } from 'zod';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { formatPages, MEM_TYPES, RULE_IDS, type Decision, type FlushQueryColumns, type RuleId } from '../domain/index.js';
import { bytes, decisionJson, putRanges, rangesMaxBytes, readHexRanges, startsWith } from './json-bytes.js';
import type { FlushQueryAnswer } from '../contract/pin.js';
import { flushWire, LISTED_RANGES_MAX } from './wire.js';

type Answer = z.output<typeof FlushQueryAnswer>;

const MEM_TYPE_SET: ReadonlySet<unknown> = new Set(MEM_TYPES);

/**
 * Each range of a question as the answer echoes it: `bytes` hold range i as
 * `{"iova":"X","length":"Y"` with X at [at[4i], at[4i+1]) and Y at [at[4i+2], at[4i+3]), X and
 * Y canonical hex (what formatPages writes), all ASCII.
 */
export interface Echo {
  readonly bytes: Buffer;
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
  return { bytes: Buffer.from(text, 'latin1'), at };
}

function echoed(echo: Echo, i: number, field: 0 | 2): string {
  return echo.bytes.toString('latin1', echo.at[4 * i + field], echo.at[4 * i + field + 1]);
}

/** A compact flush question read from its bytes by parseFlushQueryBytes: columns, and the echo of each range. */
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
    const out: { iova: string; length: string }[] = [];
    for (let i = 0; i < this.iova.length; i++) out.push({ iova: echoed(this.echo, i, 0), length: echoed(this.echo, i, 2) });
    return out;
  }
}

/**
 * A 200 answer of the route as columns. `flush`, `reasons` and `results` make what the schema
 * describes when read (the schema serializer reads them); serializeFlushQueryReply writes the
 * same bytes from the columns.
 */
export class FlushQueryReply {
  constructor(
    readonly op: 'map' | 'unmap',
    readonly decision: Decision,
    readonly after: readonly string[] | undefined,
    readonly echo: Echo,
    readonly required: Uint8Array,
    readonly rules: readonly RuleId[],
    readonly failClosed?: 'STORE_UNAVAILABLE'
  ) {}

  get flush(): Answer['flush'] {
    const wire = flushWire(this.decision);
    return this.after === undefined ? wire : { ...wire, after: [...this.after] };
  }

  get reasons(): Answer['reasons'] {
    return [...this.decision.reasons];
  }

  get kvmNoncoherentDma(): boolean {
    return this.decision.kvmNoncoherentDma;
  }

  get results(): Answer['results'] {
    return this.rules.map((rule, i) => ({ iova: echoed(this.echo, i, 0), length: echoed(this.echo, i, 2), required: this.required[i] === 1, rule }));
  }
}

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
 * The route's serializer compiler: 200 answers are written by `serializeFlushQueryReply`,
 * problems by the zod serializer as on other routes.
 */
export const flushQuerySerializerCompiler: FastifySerializerCompiler<unknown> = (route) => {
  const zod = serializerCompiler({ ...route, schema: route.schema as z.ZodType });
  if (route.httpStatus !== '200') return zod;
  const serialize = (data: unknown): string | Buffer => (data instanceof FlushQueryReply ? serializeFlushQueryReply(data) : zod(data));
  // Fastify sends a serializer's Buffer as it is (its content-length from the Buffer's length);
  // its types only name strings.
  return serialize as (data: unknown) => string;
};

/** The end of a result after its range, by rule: `,"required":true,"rule":"F3"}`. */
const VERDICT_REQUIRED = new Map(RULE_IDS.map((rule) => [rule, bytes(`,"required":true,"rule":"${rule}"}`)]));
const VERDICT_NOT_REQUIRED = new Map(RULE_IDS.map((rule) => [rule, bytes(`,"required":false,"rule":"${rule}"}`)]));
/** The longest such end. */
const VERDICT_MAX_BYTES = Math.max(...[...VERDICT_NOT_REQUIRED.values()].map((b) => b.length));

/**
 * A FlushQueryReply as FlushQueryAnswer JSON bytes, keys in schema order, optional keys only when
 * present: exactly what the zod serializer writes for it (the decision's fields as
 * decisionJson writes them for every answer written as bytes).
 */
export function serializeFlushQueryReply(a: FlushQueryReply): Buffer {
  const parts = decisionJson(a.decision, LISTED_RANGES_MAX, undefined, a.after);
  const head = `{"op":"${a.op}",${parts.head}`;
  const mid = `${parts.tail},"results":[`;
  const { pairs, listed } = parts;
  const tail = a.failClosed === undefined ? ']}' : `],"failClosed":"${a.failClosed}"}`;
  const { bytes, at } = a.echo;
  const rules = a.rules;
  const required = a.required;
  let size = Buffer.byteLength(head) + Buffer.byteLength(mid) + Buffer.byteLength(tail) + rangesMaxBytes(listed);
  // Each result: a comma, its range's bytes, its verdict and rule.
  for (let i = 0; i < rules.length; i++) size += 1 + (at[4 * i + 3] as number) + 1 - ((at[4 * i] as number) - ECHO_IOVA.length) + VERDICT_MAX_BYTES;
  const out = Buffer.allocUnsafe(size);
  let o = putRanges(out, out.write(head, 0, 'utf8'), pairs, listed);
  o += out.write(mid, o, 'utf8');
  for (let i = 0; i < rules.length; i++) {
    if (i > 0) out[o++] = 0x2c;
    // `{"iova":"X","length":"Y"` as the echo holds it, then the verdict.
    o += bytes.copy(out, o, (at[4 * i] as number) - ECHO_IOVA.length, (at[4 * i + 3] as number) + 1);
    o += ((required[i] === 1 ? VERDICT_REQUIRED : VERDICT_NOT_REQUIRED).get(rules[i] as RuleId) as Buffer).copy(out, o);
  }
  o += out.write(tail, o, 'utf8');
  return out.subarray(0, o);
}

const CANONICAL_HEX = /^0x(?:0|[1-9a-f][0-9a-f]*)$/;

/**
 * The hex an answer writes for `pages`, parsed from `given`: `given` itself when it is already
 * written that way (lowercase, no leading zeros), which is what formatPages would return.
 */
export function hexOf(given: string | number, pages: number): string {
  return typeof given === 'string' && CANONICAL_HEX.test(given) ? given : formatPages(pages);
}

// The only bytes parseFlushQueryBytes reads: no whitespace, these keys in this order.
const MAP_HEAD = bytes('{"op":"map","ranges":[');
const UNMAP_HEAD = bytes('{"op":"unmap","ranges":[');
const RANGE_KEYS = [bytes(ECHO_IOVA), bytes(ECHO_LENGTH)];

/**
 * `body` as a PlainFlushQuery when it is a compact flush question whose ranges carry only iova
 * and length, as canonical hex strings, every length at least one page (json-bytes.ts); undefined
 * for any other body (valid or not), which the caller then parses as JSON and zod validates.
 * What it reads is exactly what JSON.parse and FlushQueryBody would give.
 */
export function parseFlushQueryBytes(body: Buffer): PlainFlushQuery | undefined {
  const op = startsWith(body, 0, MAP_HEAD) ? 'map' : startsWith(body, 0, UNMAP_HEAD) ? 'unmap' : undefined;
  if (op === undefined) return undefined;
  const read = readHexRanges(body, (op === 'map' ? MAP_HEAD : UNMAP_HEAD).length, RANGE_KEYS);
  if (read === undefined) return undefined;
  return new PlainFlushQuery(op, read.columns[0] as Float64Array, read.columns[1] as Float64Array, { bytes: body, at: read.at });
}
