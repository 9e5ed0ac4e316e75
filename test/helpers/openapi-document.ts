/**
 * The committed OpenAPI document, and its schemas as validators (Ajv in JSON Schema 2020-12, the
 * dialect of OpenAPI 3.1): what the server sends is checked against what the document says, not
 * against the zod schemas the document was made from.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';

export type Json = Record<string, unknown>;

export const OPENAPI = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as Json & { paths: Record<string, Record<string, Json>>; components: { schemas: Record<string, Json> } };

// Not strict: OpenAPI's own keywords (`components` carried along below) are not JSON Schema's.
const ajv = new Ajv2020({ strict: false, allErrors: true });
const compiled = new Map<string, ValidateFunction>();

/** A validator of `schema`, a schema of the document (its `#/components/schemas/...` refs resolve). */
export function validatorOf(schema: Json): ValidateFunction {
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (validate === undefined) {
    validate = ajv.compile({ ...schema, components: OPENAPI.components });
    compiled.set(key, validate);
  }
  return validate;
}

/** What is wrong with `value` under `schema` (nothing: an empty list). */
export function problemsOf(schema: Json, value: unknown): string[] {
  const validate = validatorOf(schema);
  return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

export const componentRef = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });

/** The event stream's media type, as documented. */
export function eventStreamMedia(): { schema: Json; 'x-itemSchema': { oneOf: { properties: { event: { const: string }; data: { contentSchema: Json } } }[] } } {
  const get = OPENAPI.paths['/v1/vms/{vmId}/events']?.['get'] as { responses: Record<string, { content: Record<string, unknown> }> };
  return get.responses['200']?.content['text/event-stream'] as ReturnType<typeof eventStreamMedia>;
}

/** The schema the document gives the data of an event of `kind` (the `event:` line). */
export function documentedEventData(kind: string): Json {
  const item = eventStreamMedia()['x-itemSchema'].oneOf.find((i) => i.properties.event.const === kind);
  if (item === undefined) throw new Error(`the document lists no event kind ${kind}`);
  return item.properties.data.contentSchema;
}
