/**
 * JSON read and written as bytes on the batch routes (decisions/flush, pins, unpins): a batch of
 * 10,000 ranges travels from body to answer without a decoded string, JSON.parse or an object per
 * range. Only the compact form a client library writes is read here (`{"k":"0x…",…}`, no
 * whitespace, keys in the schema's order, canonical hex); any other body is left to Fastify's JSON
 * parser and zod, so errors do not change. Hex is written as formatPages writes it.
 *
 * No punctuation or key is typed here: every fixed piece of JSON is cut, once, from what a
 * serializer writes for a template (as pino's genLsCache makes its cached level strings with
 * JSON.stringify), so the bytes follow the schemas.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { HexAddress } from '../contract/common.js';
import { stringLimits } from './plain-check.js';

/** The content type Fastify gives a serialized JSON answer: a handler sending bytes sets it. */
export const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * Sends an answer that is JSON bytes already, as it is: Fastify passes a Buffer through
 * untouched. A synchronous handler then returns nothing; an async one awaits `reply` (settled
 * once the answer is sent) and returns nothing, as returning `reply` would do.
 */
export function sendJson(reply: FastifyReply, json: Buffer): void {
  reply.type(JSON_TYPE).send(json);
}

const COMMA = 0x2c;

export function bytes(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

export function startsWith(b: Uint8Array, at: number, prefix: Uint8Array): boolean {
  if (at + prefix.length > b.length) return false;
  for (let k = 0; k < prefix.length; k++) if (b[at + k] !== prefix[k]) return false;
  return true;
}

/** Copies src[from, to) into `out` at `o`; returns the offset after it. A loop: cheaper than a native call for a few bytes. */
export function put(out: Uint8Array, o: number, src: Uint8Array, from: number, to: number): number {
  for (let k = from; k < to; k++) out[o++] = src[k] as number;
  return o;
}

// ---- templates --------------------------------------------------------------------------------

/**
 * A string no key holds: templates carry it where values go, and are cut there. Plain ASCII, so
 * serializers write it as it is (no escaping, no slow path).
 */
export const HOLE = '<hole>';
/** HOLE as JSON writes it for a whole value (`"<hole>"`), and for the characters of a string. */
export const HOLE_VALUE = JSON.stringify(HOLE);
export const HOLE_CHARS = HOLE_VALUE.slice(1, -1);

/** `json`, written from a template, cut at each `hole`: the fixed JSON between its values. */
export function cutAt(json: string, hole: string, pieces: number): string[] {
  const cut = json.split(hole);
  if (cut.length !== pieces) throw new Error(`a JSON template cut into ${cut.length} pieces where ${pieces} were expected: ${json}`);
  return cut;
}

// ---- reading -----------------------------------------------------------------------------------

/** The value of each lowercase hex digit by byte, -1 for any other byte. */
const HEX_VALUE = new Int8Array(256).fill(-1);
for (let c = 0; c < 16; c++) HEX_VALUE['0123456789abcdef'.charCodeAt(c)] = c;

/** The most hex digits whose page number a double holds exactly: addresses below 2^52 bytes. */
const EXACT_DIGITS = 13;

/**
 * How the compact objects of a range schema are read: its required fields (`names`, in the
 * schema's order, each HexAddress), `keys[k]` the JSON before value k (`{"iova":"`, then
 * `","length":"`…), `close` the JSON after the last (`"}`).
 */
export interface CompactRange {
  readonly names: readonly string[];
  readonly keys: readonly Uint8Array[];
  readonly close: Uint8Array;
  /** The value that must be at least one page (a length). */
  readonly lengthAt: number;
  /** The most digits read after `0x`: within what HexAddress takes and what a double holds. */
  readonly maxDigits: number;
}

/**
 * The compact form of `schema`'s range objects, as JSON.stringify writes them; null when one of
 * its required fields is not a HexAddress or HexAddress would refuse canonical hex: no body is
 * then read from its bytes, and zod sees every one.
 */
export function compactRange(schema: z.ZodObject, lengthName: string): CompactRange | null {
  const names = Object.entries(schema.shape)
    .filter(([, field]) => (field as z.ZodType).def.type !== 'optional')
    .map(([name]) => name);
  const limits = stringLimits(HexAddress);
  const lengthAt = names.indexOf(lengthName);
  if (names.some((name) => schema.shape[name] !== HexAddress) || lengthAt < 0 || limits === undefined || limits.min > '0x0'.length) return null;
  const cut = cutAt(JSON.stringify(Object.fromEntries(names.map((name) => [name, HOLE]))), HOLE_CHARS, names.length + 1).map(bytes);
  return { names, keys: cut.slice(0, -1), close: cut[names.length] as Buffer, lengthAt, maxDigits: Math.min(EXACT_DIGITS, limits.max - '0x'.length) };
}

/**
 * Reads the JSON string starting at `from` (after its opening quote) when it is canonical hex of
 * an aligned address (`0x0`, or `0x` then at most `maxDigits` lowercase digits without leading
 * zeros, ending in `000`) of at least `min` pages, then a closing quote: exactly what
 * parsePageAddress gives and what formatPages writes back. Its page number goes to `into[n]`;
 * returns where its closing quote is, or -1.
 */
function readPages(b: Uint8Array, from: number, maxDigits: number, into: Float64Array, n: number, min: number): number {
  if (b[from] !== 0x30 || b[from + 1] !== 0x78) return -1;
  let k = from + 2;
  let value = 0;
  const stop = Math.min(k + maxDigits + 1, b.length);
  for (; k < stop; k++) {
    const d = HEX_VALUE[b[k] as number] as number;
    if (d < 0) break;
    value = value * 16 + d;
  }
  const digits = k - from - 2;
  if (b[k] !== 0x22 || digits === 0 || digits > maxDigits) return -1;
  if (digits === 1) {
    if (value !== 0) return -1;
  } else if (b[from + 2] === 0x30 || value % 4096 !== 0) {
    return -1;
  }
  const pages = value / 4096;
  if (pages < min) return -1;
  into[n] = pages;
  return k;
}

/** Ranges read by readHexRanges: per field a column of page numbers, and where each value lies. */
export interface HexRanges {
  readonly count: number;
  readonly columns: readonly Float64Array[];
  /** Value k of range i lies at [at[2(iK+k)], at[2(iK+k)+1]) for K fields. */
  readonly at: Uint32Array;
}

/** The column of `name` in ranges read in `form`. */
export function columnOf(read: HexRanges, form: CompactRange, name: string): Float64Array {
  return read.columns[form.names.indexOf(name)] as Float64Array;
}

/**
 * Reads `body` from `start` as compact range objects of `form`, separated by commas, then `end`
 * ending the body. Every value canonical hex; the length at least one page. Undefined for
 * anything else.
 */
export function readHexRanges(body: Uint8Array, start: number, form: CompactRange, end: Uint8Array): HexRanges | undefined {
  const { keys, close, lengthAt, maxDigits } = form;
  const fields = keys.length;
  let shortest = close.length + 1;
  for (const key of keys) shortest += key.length + '0x0'.length;
  const room = Math.floor((body.length - start) / shortest) + 1;
  const columns = keys.map(() => new Float64Array(room));
  const at = new Uint32Array(2 * fields * room);
  let i = start;
  let n = 0;
  for (;;) {
    if (n === room) return undefined;
    for (let k = 0; k < fields; k++) {
      const key = keys[k] as Uint8Array;
      if (!startsWith(body, i, key)) return undefined;
      const from = i + key.length;
      const to = readPages(body, from, maxDigits, columns[k] as Float64Array, n, k === lengthAt ? 1 : 0);
      if (to < 0) return undefined;
      const w = 2 * (n * fields + k);
      at[w] = from;
      at[w + 1] = to;
      i = to;
    }
    n++;
    if (!startsWith(body, i, close)) return undefined;
    i += close.length;
    if (body[i] === COMMA) {
      i++;
      continue;
    }
    if (i + end.length === body.length && startsWith(body, i, end)) {
      return { count: n, columns: columns.map((c) => c.subarray(0, n)), at: at.subarray(0, 2 * fields * n) };
    }
    return undefined;
  }
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

// ---- writing -----------------------------------------------------------------------------------

const HEX_DIGITS = bytes('0123456789abcdef');
/** 2^28: page numbers are written as two halves below and above this (as formatPages does). */
const LOW_PAGES = 2 ** 28;
/** The most characters formatPages writes: `0x`, 13 digits of page number, `000`. */
export const PAGES_MAX_CHARS = 2 + EXACT_DIGITS + 3;

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

/**
 * A serializer's JSON with, in place of each marker element it wrote (in order), the elements
 * `write` puts there (at most `maxBytes[k]` of them for marker k): the answer's fixed parts stay
 * the serializer's own, only its long lists are written as bytes.
 */
export function spliced(json: string, markers: readonly string[], maxBytes: readonly number[], write: (k: number, out: Buffer, o: number) => number): Buffer {
  const cuts: number[] = [];
  let size = Buffer.byteLength(json);
  let from = 0;
  for (let k = 0; k < markers.length; k++) {
    const marker = markers[k] as string;
    const at = json.indexOf(marker, from);
    if (at < 0) throw new Error('the serializer did not write the marker');
    size += maxBytes[k] as number;
    cuts.push(at);
    from = at + marker.length;
  }
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  from = 0;
  for (let k = 0; k < markers.length; k++) {
    o += out.write(json.slice(from, cuts[k]), o, 'utf8');
    o = write(k, out, o);
    from = (cuts[k] as number) + (markers[k] as string).length;
  }
  o += out.write(json.slice(from), o, 'utf8');
  return out.subarray(0, o);
}
