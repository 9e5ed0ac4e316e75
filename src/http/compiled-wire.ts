/**
 * Answers that carry a decision, written by serializers compiled from the schemas that document
 * them: zod → JSON Schema (draft-07, output side) → fast-json-stringify, which Fastify itself
 * uses. The contract and the fast path cannot drift; a test compares the bytes with the zod
 * serializer's on random answers. Bodies the schema certainly accepts unchanged skip the zod
 * walk, as on the decision route (flush-query-wire.ts); anything else is validated by zod.
 */
import type { FastifySchemaCompiler, FastifySerializerCompiler } from 'fastify';
import fastJson from 'fast-json-stringify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PinInput, RangeInput } from '../domain/index.js';
import { DecisionReply, serializeDecisionReply } from './decision-bytes.js';
import { isEmptyQuery, isHexAddress, isPlainVmParams, isRecord } from './flush-query-wire.js';
import { bytes, readHexRanges, startsWith, type HexRanges } from './json-bytes.js';

/** A JSON serializer compiled from `schema` (its output side). */
export function compileSerializer(schema: z.ZodType): (data: unknown) => string {
  const json = z.toJSONSchema(schema, { io: 'output', target: 'draft-7', unrepresentable: 'any' });
  return fastJson(json as Parameters<typeof fastJson>[0]);
}

/** The answers that carry decisions, by schema id: written by a compiled serializer. */
export const DECISION_ANSWERS: ReadonlySet<string> = new Set(['Decision', 'DeviceDecision', 'DevctlDecision', 'VmDecision', 'PutQuirksAnswer']);

/**
 * The service's serializer compiler: 200 and 201 answers that carry decisions (DECISION_ANSWERS)
 * through the serializer compiled from their schema, everything else (problems included)
 * through the zod serializer.
 */
export const decisionSerializerCompiler: FastifySerializerCompiler<unknown> = (route) => {
  const schema = route.schema as z.ZodType;
  const id = z.globalRegistry.get(schema)?.id;
  if ((route.httpStatus === '200' || route.httpStatus === '201') && id !== undefined && DECISION_ANSWERS.has(id)) {
    const compiled = compileSerializer(schema);
    if (id !== 'Decision') return compiled;
    // Pins and unpins answer a DecisionReply, written as bytes (decision-bytes.ts); Fastify sends
    // a serializer's Buffer as it is, though its types only name strings.
    const serialize = (data: unknown): string | Buffer => (data instanceof DecisionReply ? serializeDecisionReply(data) : compiled(data));
    return serialize as (data: unknown) => string;
  }
  return serializerCompiler({ ...route, schema });
};

/** `{"iova": HexAddress, "length": HexAddress}` and nothing else (IovaRange), or with `"hpa"` too (a PinRange of the commonest form). */
function isPlainRange(value: unknown, hpa: boolean): boolean {
  if (!isRecord(value)) return false;
  let keys = 0;
  for (const key in value) {
    if (key !== 'iova' && key !== 'length' && (!hpa || key !== 'hpa')) return false;
    if (!isHexAddress(value[key])) return false;
    keys++;
  }
  return keys === (hpa ? 3 : 2);
}

/**
 * True when PinBody (`hpa`) or UnpinBody accepts `body` and answers it unchanged: one plain
 * range, or `{ranges: [...]}` of at least one. False says nothing about validity: zod decides.
 */
export function isPlainRangeBody(body: unknown, hpa: boolean): boolean {
  if (!isRecord(body)) return false;
  let keys = 0;
  for (const key in body) {
    if (key !== 'ranges') return isPlainRange(body, hpa);
    keys++;
  }
  const ranges = body['ranges'];
  if (keys !== 1 || !Array.isArray(ranges) || ranges.length === 0) return false;
  for (const r of ranges as unknown[]) if (!isPlainRange(r, hpa)) return false;
  return true;
}

const BATCH_HEAD = bytes('{"ranges":[');
const PIN_KEYS = [bytes('{"iova":"'), bytes('","hpa":"'), bytes('","length":"')];
const UNPIN_KEYS = [bytes('{"iova":"'), bytes('","length":"')];

/** A compact pin (`hpa`) or unpin batch read from its bytes by parseRangeBatchBytes: page numbers in columns. */
export class PlainRangeBatch {
  constructor(
    readonly hpa: boolean,
    readonly read: HexRanges
  ) {}

  /** The pins, as pinInput gives them for the same ranges. */
  pins(): PinInput[] {
    const [iova, hpa, pages] = this.read.columns as [Float64Array, Float64Array, Float64Array];
    const out = new Array<PinInput>(this.read.count);
    for (let i = 0; i < out.length; i++) out[i] = { iova: iova[i] as number, hpa: hpa[i] as number, pages: pages[i] as number, domains: null };
    return out;
  }

  /** The ranges, as rangeInput gives them. */
  ranges(): RangeInput[] {
    const [iova, pages] = this.read.columns as [Float64Array, Float64Array];
    const out = new Array<RangeInput>(this.read.count);
    for (let i = 0; i < out.length; i++) out[i] = { iova: iova[i] as number, pages: pages[i] as number };
    return out;
  }
}

/**
 * `body` as a PlainRangeBatch when it is `{"ranges":[…]}` written compactly, each range
 * `{"iova":…,"hpa":…,"length":…}` (`hpa`) or `{"iova":…,"length":…}` with canonical hex
 * (json-bytes.ts); undefined for any other body, which the caller then parses as JSON and zod
 * validates. What it reads is exactly what JSON.parse, the schema and pinInput/rangeInput give.
 */
export function parseRangeBatchBytes(body: Buffer, hpa: boolean): PlainRangeBatch | undefined {
  if (!startsWith(body, 0, BATCH_HEAD)) return undefined;
  const read = readHexRanges(body, BATCH_HEAD.length, hpa ? PIN_KEYS : UNPIN_KEYS);
  return read === undefined ? undefined : new PlainRangeBatch(hpa, read);
}

/** The validator compiler of the pin (`hpa`) and unpin routes: plain bodies, params and query skip zod. */
export function rangeBodyValidatorCompiler(hpa: boolean): FastifySchemaCompiler<unknown> {
  return (route) => {
    const zod = validatorCompiler({ ...route, schema: route.schema as z.ZodType });
    const part = route.httpPart;
    if (part === 'body') return (data: unknown) => ((data instanceof PlainRangeBatch && data.hpa === hpa) || isPlainRangeBody(data, hpa) ? { value: data } : zod(data));
    if (part === 'params') return (data: unknown) => (isPlainVmParams(data) ? { value: data } : zod(data));
    if (part === 'querystring') return (data: unknown) => (isEmptyQuery(data) ? { value: {} } : zod(data));
    return zod;
  };
}
