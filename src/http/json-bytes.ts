/**
 * JSON read and written as bytes on the batch routes (decisions/flush, pins, unpins): a batch of
 * 10,000 ranges travels from body to answer without a decoded string, JSON.parse or an object per
 * range. Only the compact form a client library writes is read here (`{"k":"0x…",…}`, no
 * whitespace, keys in one order, canonical hex); any other body is left to Fastify's JSON parser
 * and zod, so errors do not change. Hex is written as formatPages writes it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Decision, FlushDecision } from '../domain/index.js';
import { flushPairs, flushRangeCount, formatPages } from '../domain/index.js';

export const QUOTE = 0x22;
export const COMMA = 0x2c;
export const CLOSE_BRACKET = 0x5d;
export const CLOSE_BRACE = 0x7d;

export function bytes(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

export function startsWith(b: Uint8Array, at: number, prefix: Uint8Array): boolean {
  if (at + prefix.length > b.length) return false;
  for (let k = 0; k < prefix.length; k++) if (b[at + k] !== prefix[k]) return false;
  return true;
}

/** Where the hex string read by the last canonicalPages call ended (its closing quote). */
let hexEnd = 0;

/** The value of each lowercase hex digit by byte, -1 for any other byte. */
const HEX_VALUE = new Int8Array(256).fill(-1);
for (let c = 0; c < 16; c++) HEX_VALUE['0123456789abcdef'.charCodeAt(c)] = c;

/**
 * The page number written by the JSON string starting at `from` (after its opening quote) when
 * it is canonical hex of an aligned address below 2^52 bytes (`0x0`, or `0x` then at most 13
 * lowercase digits without leading zeros, ending in `000`), then a closing quote: exactly what
 * parsePageAddress gives and what formatPages writes back. -1 otherwise.
 */
function canonicalPages(b: Uint8Array, from: number): number {
  if (b[from] !== 0x30 || b[from + 1] !== 0x78) return -1;
  let k = from + 2;
  let value = 0;
  const stop = Math.min(from + 16, b.length);
  for (; k < stop; k++) {
    const d = HEX_VALUE[b[k] as number] as number;
    if (d < 0) break;
    value = value * 16 + d;
  }
  const digits = k - from - 2;
  if (b[k] !== QUOTE || digits === 0 || digits > 13) return -1;
  hexEnd = k;
  if (digits === 1) return value === 0 ? 0 : -1;
  if (b[from + 2] === 0x30 || value % 4096 !== 0) return -1;
  return value / 4096;
}

/** Ranges read by readHexRanges: per key a column of page numbers, and where each value lies. */
export interface HexRanges {
  readonly count: number;
  readonly columns: readonly Float64Array[];
  /** Value k of range i lies at [at[2(iK+k)], at[2(iK+k)+1]) for K keys. */
  readonly at: Uint32Array;
}

/**
 * Reads `body` from `start` as compact range objects, `{"k0":"hex","k1":"hex",…}` with the keys
 * `keys` (each given with its punctuation: `{"iova":"`, then `","length":"` and so on), separated
 * by commas, then `]}` ending the body. Every value canonical hex; the last key's at least one
 * page. Undefined for anything else.
 */
export function readHexRanges(body: Uint8Array, start: number, keys: readonly Uint8Array[]): HexRanges | undefined {
  const shortest = keys.reduce((n, k) => n + k.length + 4, 2);
  const room = Math.floor((body.length - start) / shortest) + 1;
  const columns = keys.map(() => new Float64Array(room));
  const at = new Uint32Array(2 * keys.length * room);
  const last = keys.length - 1;
  let i = start;
  let n = 0;
  for (;;) {
    if (n === room) return undefined;
    for (let k = 0; k <= last; k++) {
      const key = keys[k] as Uint8Array;
      if (!startsWith(body, i, key)) return undefined;
      const from = i + key.length;
      const pages = canonicalPages(body, from);
      if (pages < (k === last ? 1 : 0)) return undefined;
      (columns[k] as Float64Array)[n] = pages;
      const w = 2 * (n * keys.length + k);
      at[w] = from;
      at[w + 1] = hexEnd;
      i = hexEnd;
    }
    n++;
    i++;
    if (body[i] !== CLOSE_BRACE) return undefined;
    i++;
    const next = body[i];
    if (next === COMMA) {
      i++;
      continue;
    }
    if (next === CLOSE_BRACKET && body[i + 1] === CLOSE_BRACE && i + 2 === body.length) {
      return { count: n, columns: columns.map((c) => c.subarray(0, n)), at: at.subarray(0, 2 * keys.length * n) };
    }
    return undefined;
  }
}

const HEX_DIGITS = bytes('0123456789abcdef');
/** 2^28: page numbers are written as two halves below and above this (as formatPages does). */
const LOW_PAGES = 2 ** 28;

/** Copies src[from, to) into `out` at `o`; returns the offset after it. A loop: cheaper than a native call for a few bytes. */
export function put(out: Uint8Array, o: number, src: Uint8Array, from: number, to: number): number {
  for (let k = from; k < to; k++) out[o++] = src[k] as number;
  return o;
}

/** Writes the hex digits of `value` (an integer below 2^28), at least `width` of them; returns the offset after them. */
function putHex(out: Uint8Array, o: number, value: number, width: number): number {
  let digits = 1;
  for (let rest = value >>> 4; rest !== 0; rest >>>= 4) digits++;
  if (digits < width) digits = width;
  for (let k = digits - 1; k >= 0; k--) {
    out[o + k] = HEX_DIGITS[value & 15] as number;
    value >>>= 4;
  }
  return o + digits;
}

/** Writes formatPages(pages) without its quotes: `0x0`, or `0x`, the page number in hex, `000`. */
export function putPages(out: Uint8Array, o: number, pages: number): number {
  out[o++] = 0x30;
  out[o++] = 0x78;
  if (pages === 0) {
    out[o++] = 0x30;
    return o;
  }
  const high = Math.floor(pages / LOW_PAGES);
  const low = pages - high * LOW_PAGES;
  o = high === 0 ? putHex(out, o, low, 1) : putHex(out, putHex(out, o, high, 1), low, 7);
  out[o++] = 0x30;
  out[o++] = 0x30;
  out[o++] = 0x30;
  return o;
}

const RANGE_HPA = bytes('{"hpa":"');
const RANGE_LENGTH = bytes('","length":"');
const RANGE_CLOSE = bytes('"}');
/** The most bytes one listed flush range takes: `,{"hpa":"0x…000","length":"0x…000"}` with 13 + 3 digits each. */
const RANGE_MAX_BYTES = 1 + RANGE_HPA.length + 18 + RANGE_LENGTH.length + 18 + RANGE_CLOSE.length;

/** The flush's ranges as an answer lists them (at most `limit`), and how many it has. */
function listedRanges(flush: FlushDecision, limit: number): { pairs: Float64Array; listed: number; count: number } {
  const count = flushRangeCount(flush);
  return { pairs: flushPairs(flush), listed: Math.min(count, limit), count };
}

/**
 * A decision as the `flush`, `reasons` and `kvmNoncoherentDma` fields of an answer, in schema
 * order: `head` is `"flush":{…,"ranges":[`, then the first `listed` (hpa, pages) pairs go between
 * (putRanges), and `tail` closes the list and runs to the kvmNoncoherentDma value. `jobId` and
 * `after` are the flush's own optional fields. Strings from closed sets and hex need no
 * escaping; messages and job ids go through JSON.stringify.
 */
export function decisionJson(d: Decision, limit: number, jobId: string | undefined, after: readonly string[] | undefined): { head: string; pairs: Float64Array; listed: number; tail: string } {
  const f = d.flush;
  const { pairs, listed, count } = listedRanges(f, limit);
  const head = `"flush":{"required":${f.required},"bytes":"${formatPages(f.pages)}","ranges":[`;
  let tail = `],"rangeCount":${count},"rangesTruncated":${listed < count}`;
  if (f.cause !== null) tail += `,"cause":"${f.cause}"`;
  if (f.when !== null) tail += `,"when":"${f.when}"`;
  if (jobId !== undefined) tail += `,"jobId":${JSON.stringify(jobId)}`;
  if (after !== undefined) tail += `,"after":${JSON.stringify(after)}`;
  tail += '},"reasons":[';
  for (let i = 0; i < d.reasons.length; i++) {
    const r = d.reasons[i] as (typeof d.reasons)[number];
    tail += `${i === 0 ? '' : ','}{"rule":"${r.rule}","message":${JSON.stringify(r.message)}}`;
  }
  return { head, pairs, listed, tail: `${tail}],"kvmNoncoherentDma":${d.kvmNoncoherentDma}` };
}

/** The most bytes putRanges writes for `listed` ranges. */
export function rangesMaxBytes(listed: number): number {
  return listed * RANGE_MAX_BYTES;
}

/** Writes the first `listed` (hpa, pages) pairs as `{"hpa":"…","length":"…"}` objects, comma-separated. */
export function putRanges(out: Uint8Array, o: number, pairs: Float64Array, listed: number): number {
  for (let i = 0; i < listed; i++) {
    if (i > 0) out[o++] = COMMA;
    o = put(out, o, RANGE_HPA, 0, RANGE_HPA.length);
    o = putPages(out, o, pairs[2 * i] as number);
    o = put(out, o, RANGE_LENGTH, 0, RANGE_LENGTH.length);
    o = putPages(out, o, pairs[2 * i + 1] as number);
    o = put(out, o, RANGE_CLOSE, 0, RANGE_CLOSE.length);
  }
  return o;
}

/**
 * In the plugin `app` (and only there), JSON bodies that `read` recognises from their bytes reach
 * the route as what it returns; any other JSON body goes to Fastify's own parser, with its usual
 * errors and prototype-poisoning checks, and then to zod.
 */
export function readCompactJson(app: FastifyInstance, read: (body: Buffer, request: FastifyRequest) => unknown): void {
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const plain = read(body as Buffer, request);
    if (plain === undefined) void json(request, (body as Buffer).toString('utf8'), done);
    else done(null, plain);
  });
}
