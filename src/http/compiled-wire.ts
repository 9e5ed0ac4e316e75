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
import { isEmptyQuery, isPlainVmParams } from './flush-query-wire.js';

/** A JSON serializer compiled from `schema` (its output side). */
export function compileSerializer(schema: z.ZodType): (data: unknown) => string {
  const json = z.toJSONSchema(schema, { io: 'output', target: 'draft-7', unrepresentable: 'any' });
  return fastJson(json as Parameters<typeof fastJson>[0]);
}

/**
 * The serializer compiler of routes whose answers carry decisions: 200 answers through the
 * compiled serializer, problems through the zod serializer as on other routes.
 */
export const decisionSerializerCompiler: FastifySerializerCompiler<unknown> = (route) => {
  if (route.httpStatus !== '200') return serializerCompiler({ ...route, schema: route.schema as z.ZodType });
  return compileSerializer(route.schema as z.ZodType);
};

/** HexAddress: a string of at most 20 characters, or a non-negative safe integer. */
function isHexAddress(value: unknown): boolean {
  return typeof value === 'string' ? value.length <= 20 : typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** `{"iova": HexAddress, "length": HexAddress}` and nothing else (IovaRange), or with `"hpa"` too (a PinRange of the commonest form). */
function isPlainRange(value: unknown, hpa: boolean): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const r = value as Record<string, unknown>;
  let keys = 0;
  for (const key in r) {
    if (key !== 'iova' && key !== 'length' && (!hpa || key !== 'hpa')) return false;
    if (!isHexAddress(r[key])) return false;
    keys++;
  }
  return keys === (hpa ? 3 : 2);
}

/**
 * True when PinBody (`hpa`) or UnpinBody accepts `body` and answers it unchanged: one plain
 * range, or `{ranges: [...]}` of at least one. False says nothing about validity: zod decides.
 */
export function isPlainRangeBody(body: unknown, hpa: boolean): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const b = body as Record<string, unknown>;
  let keys = 0;
  for (const key in b) {
    if (key !== 'ranges') return isPlainRange(body, hpa);
    keys++;
  }
  const ranges = b['ranges'];
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
