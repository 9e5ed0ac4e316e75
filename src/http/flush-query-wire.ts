/**
 * The wire of POST /v1/vms/{vmId}/decisions/flush, the one route a VMM may call with 10,000
 * ranges many times a second. Its schemas (FlushQueryBody, FlushQueryAnswer) stay the contract
 * and the OpenAPI document, and every shortcut below is taken from them:
 *
 * - A body, path parameters or query string that the schemas certainly accept as they are skip
 *   zod (plain-check.ts); anything else, valid or not, is validated by zod exactly as before, so
 *   errors do not change.
 * - `parseFlushQueryBytes` reads the commonest body, `{"op":..,"ranges":[{"iova":..,
 *   "length":..},..]}` written compactly with canonical hex strings, from its bytes: without
 *   decoding it, without JSON.parse and without an object per range. Page numbers go into typed
 *   arrays (a PlainFlushQuery), and where each range's values lie is kept for the answer. Any
 *   other body goes to Fastify's JSON parser, whose errors stay the same, and is validated by zod.
 * - `serializeFlushQueryReply` writes a 200 answer as JSON bytes, exactly what the zod serializer
 *   writes: the serializer compiled from FlushQueryAnswer writes all but its two long lists, the
 *   flush ranges (from the decision's pairs) and the results (each its range's values as the
 *   question gave them, then its verdict), which are written in their markers' places.
 * - `hexOf` gives back the caller's own address string when it is already the canonical hex.
 */
import type { z } from 'zod';
import { formatPages, type Decision, type FlushQueryColumns, type RuleId } from '../domain/index.js';
import { VmParams } from '../contract/common.js';
import { FlushQueryAnswer, FlushQueryBody, FlushQueryRange } from '../contract/pin.js';
import { compileSerializer } from './compiled-wire.js';
import { ListedRanges, markedRanges, RANGE_MARKER_JSON } from './decision-bytes.js';
import { bytes, compactRange, cutAt, HOLE, HOLE_CHARS, HOLE_VALUE, readHexRanges, spliced, startsWith } from './json-bytes.js';
import { isEmptyQuery, plainCheck, plainValidatorCompiler } from './plain-check.js';
import { flushWire, listedRanges, type HostRangeWire } from './wire.js';

export { isEmptyQuery };

type Answer = z.output<typeof FlushQueryAnswer>;
type Result = Answer['results'][number];

/**
 * Each range of a question as the answer echoes it: `bytes` hold range i as the answer's result
 * for it starts, `{"iova":"X","length":"Y`, with X at [at[4i], at[4i+1]) and Y at [at[4i+2],
 * at[4i+3]), both canonical hex (what formatPages writes), all ASCII.
 */
export interface Echo {
  readonly bytes: Buffer;
  readonly at: Uint32Array;
}

/** The echo of ranges given as canonical hex strings. */
export function echoOf(iova: readonly string[], length: readonly string[]): Echo {
  const at = new Uint32Array(4 * iova.length);
  let text = '';
  for (let i = 0; i < iova.length; i++) {
    text += RESULT_IOVA;
    at[4 * i] = text.length;
    text += iova[i] as string;
    at[4 * i + 1] = text.length;
    text += RESULT_LENGTH;
    at[4 * i + 2] = text.length;
    text += length[i] as string;
    at[4 * i + 3] = text.length;
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
 * describes when read (the zod serializer reads them); serializeFlushQueryReply writes the same
 * bytes from the columns.
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
    return this.#flush(listedRanges(this.decision));
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

  /** The answer with `ranges` for its listed flush ranges and `results` for its results: the byte writer's markers. */
  marked(ranges: HostRangeWire[], results: Result[]): Answer {
    return {
      op: this.op,
      flush: this.#flush(ranges),
      reasons: this.reasons,
      kvmNoncoherentDma: this.kvmNoncoherentDma,
      results,
      ...(this.failClosed === undefined ? {} : { failClosed: this.failClosed })
    };
  }

  #flush(ranges: HostRangeWire[]): Answer['flush'] {
    return flushWire(this.decision, ranges, { after: this.after });
  }
}

/** FlushQueryBody certainly accepts `body` and would answer it unchanged. False says nothing about validity: the caller then asks zod. */
export const isPlainFlushQuery = plainCheck(FlushQueryBody);

/** VmParams certainly accepts `params` unchanged. */
export const isPlainVmParams = plainCheck(VmParams);

/** The route's validator compiler: bodies read from bytes and plain parts skip zod. */
export const flushQueryValidatorCompiler = plainValidatorCompiler((data) => data instanceof PlainFlushQuery);

// ---- the answer as bytes -----------------------------------------------------------------------

const RESULT_JSON = compileSerializer(FlushQueryAnswer.shape.results.element);
const ANSWER_JSON = compileSerializer(FlushQueryAnswer);
const RULES = FlushQueryAnswer.shape.results.element.shape.rule.options;
/** Any rule: the marker's. */
const SOME_RULE = RULES[0] as RuleId;

/** A result as the serializer writes it, its range the holes; cut into the JSON before the iova, between iova and length, and after the length. */
function resultJson(required: boolean, rule: RuleId): string[] {
  return cutAt(RESULT_JSON({ iova: HOLE, length: HOLE, required, rule } satisfies Result), HOLE_CHARS, 3);
}

const RESULT_MARKER: Result = { iova: HOLE, length: HOLE, required: false, rule: SOME_RULE };
const RESULT_MARKER_JSON = RESULT_JSON(RESULT_MARKER);
/** How a result starts (`{"iova":"`), and what lies between its iova and its length (`","length":"`). */
const [RESULT_IOVA, RESULT_LENGTH] = resultJson(false, SOME_RULE) as [string, string];
/** The end of a result from its length's closing quote, by verdict and rule: `","required":true,"rule":"F3"}`. */
const VERDICTS = [false, true].map((required) => new Map(RULES.map((rule) => [rule, bytes(resultJson(required, rule)[2] as string)])));
const VERDICT_MAX_BYTES = Math.max(...VERDICTS.flatMap((m) => [...m.values()].map((b) => b.length)));

/** Writes the results, comma-separated: each the start of its result as the echo holds it, then its verdict. */
function putResults(a: FlushQueryReply, out: Buffer, o: number): number {
  const { bytes: echo, at } = a.echo;
  const { rules, required } = a;
  const [notRequired, isRequired] = VERDICTS as [Map<RuleId, Buffer>, Map<RuleId, Buffer>];
  for (let i = 0; i < rules.length; i++) {
    if (i > 0) out[o++] = 0x2c;
    o += echo.copy(out, o, (at[4 * i] as number) - RESULT_IOVA.length, at[4 * i + 3]);
    o += ((required[i] === 1 ? isRequired : notRequired).get(rules[i] as RuleId) as Buffer).copy(out, o);
  }
  return o;
}

/** The most bytes putResults writes. */
function resultsMaxBytes(a: FlushQueryReply): number {
  const { at } = a.echo;
  const count = a.rules.length;
  let starts = 0;
  for (let i = 0; i < count; i++) starts += (at[4 * i + 3] as number) - (at[4 * i] as number);
  return starts + count * (1 + RESULT_IOVA.length + VERDICT_MAX_BYTES);
}

/** A FlushQueryReply as FlushQueryAnswer JSON bytes: exactly what the zod serializer writes for it. */
export function serializeFlushQueryReply(a: FlushQueryReply): Buffer {
  const json = ANSWER_JSON(a.marked(markedRanges(), [RESULT_MARKER]));
  const ranges = new ListedRanges(a.decision);
  return spliced(json, [RANGE_MARKER_JSON, RESULT_MARKER_JSON], [ranges.maxBytes, resultsMaxBytes(a)], (k, out, o) => (k === 0 ? ranges.put(out, o) : putResults(a, out, o)));
}

const CANONICAL_HEX = /^0x(?:0|[1-9a-f][0-9a-f]*)$/;

/**
 * The hex an answer writes for `pages`, parsed from `given`: `given` itself when it is already
 * written that way (lowercase, no leading zeros), which is what formatPages would return.
 */
export function hexOf(given: string | number, pages: number): string {
  return typeof given === 'string' && CANONICAL_HEX.test(given) ? given : formatPages(pages);
}

// ---- the question from bytes -------------------------------------------------------------------

/**
 * The ranges parseFlushQueryBytes reads, or none: the body is the answer's echo, so its range
 * objects must start as the answer's results do (iova, then length, named alike).
 */
const RANGE_FORM = ((form) => (form !== null && form.keys.map((k) => Buffer.from(k).toString('latin1')).join() === [RESULT_IOVA, RESULT_LENGTH].join() ? form : null))(
  compactRange(FlushQueryRange, 'length')
);
/** Per op, the JSON before the ranges and after them: `{"op":"map","ranges":[`, `]}`. */
const HEADS = FlushQueryBody.shape.op.options.map((op) => {
  const [head, end] = cutAt(JSON.stringify({ op, ranges: [HOLE] } satisfies Record<keyof typeof FlushQueryBody.shape, unknown>), HOLE_VALUE, 2).map(bytes) as [Buffer, Buffer];
  return { op, head, end };
});

/**
 * `body` as a PlainFlushQuery when it is a compact flush question whose ranges carry only iova
 * and length, as canonical hex strings, every length at least one page (json-bytes.ts); undefined
 * for any other body (valid or not), which the caller then parses as JSON and zod validates.
 * What it reads is exactly what JSON.parse and FlushQueryBody would give.
 */
export function parseFlushQueryBytes(body: Buffer): PlainFlushQuery | undefined {
  if (RANGE_FORM === null) return undefined;
  const which = HEADS.find((h) => startsWith(body, 0, h.head));
  if (which === undefined) return undefined;
  const read = readHexRanges(body, which.head.length, RANGE_FORM, which.end);
  if (read === undefined) return undefined;
  return new PlainFlushQuery(which.op, read.columns[0] as Float64Array, read.columns[1] as Float64Array, { bytes: body, at: read.at });
}
