/**
 * Answers that carry a decision, written by serializers compiled from the schemas that document
 * them: zod → JSON Schema (draft-07, output side) → fast-json-stringify, which Fastify itself
 * uses. The contract and the fast path cannot drift; a test compares the bytes with the zod
 * serializer's on random answers.
 */
import type { FastifySerializerCompiler } from 'fastify';
import fastJson from 'fast-json-stringify';
import { serializerCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';

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
 * through the zod serializer. Answers written as bytes (pins, unpins, decisions/flush) are sent
 * by their handlers as Buffers, which Fastify sends untouched.
 */
export const decisionSerializerCompiler: FastifySerializerCompiler<unknown> = (route) => {
  const schema = route.schema as z.ZodType;
  const id = z.globalRegistry.get(schema)?.id;
  if ((route.httpStatus === '200' || route.httpStatus === '201') && id !== undefined && DECISION_ANSWERS.has(id)) return compileSerializer(schema);
  return serializerCompiler({ ...route, schema });
};
