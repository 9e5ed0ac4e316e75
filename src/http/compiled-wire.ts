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
import { isEmptyQuery, isHexAddress, isPlainVmParams, isRecord } from './flush-query-wire.js';

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
  if ((route.httpStatus === '200' || route.httpStatus === '201') && id !== undefined && DECISION_ANSWERS.has(id)) return compileSerializer(schema);
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

/** The validator compiler of the pin (`hpa`) and unpin routes: plain bodies, params and query skip zod. */
export function rangeBodyValidatorCompiler(hpa: boolean): FastifySchemaCompiler<unknown> {
  return (route) => {
    const zod = validatorCompiler({ ...route, schema: route.schema as z.ZodType });
    const part = route.httpPart;
    if (part === 'body') return (data: unknown) => (isPlainRangeBody(data, hpa) ? { value: data } : zod(data));
    if (part === 'params') return (data: unknown) => (isPlainVmParams(data) ? { value: data } : zod(data));
    if (part === 'querystring') return (data: unknown) => (isEmptyQuery(data) ? { value: {} } : zod(data));
    return zod;
  };
}
