/**
 * The OpenAPI document as third-party tools want it (Redocly's recommended rules and Spectral's
 * spectral:oas pass it without a warning): an operationId per route, named as the typed client's
 * methods; problems documented as application/problem+json with the codes each status can carry
 * (from the one status table, errors.ts), the statuses every /v1 route can answer (401, 403, 429,
 * 503, and 415 where it takes a body); described responses; no components nobody uses; request
 * defaults that generators do not mistake for required fields; optional bodies optional; the event
 * stream's kinds, each with the schema of its data.
 */
import { z } from 'zod';
import { EVENT_DATA } from '../contract/events.js';
import { STATUS, type ErrorCode } from './errors.js';

/** The operation key swagger.ts sets on a route whose body may be absent. */
export const OPTIONAL_BODY = 'x-optional-body';

/** Each route's operationId, by method and OpenAPI path: the typed client's method names. */
export const OPERATION_IDS: Readonly<Record<string, string>> = {
  'GET /healthz': 'health',
  'GET /readyz': 'ready',
  'GET /v1/vms': 'listVms',
  'PUT /v1/vms/{vmId}': 'putVm',
  'GET /v1/vms/{vmId}': 'getVm',
  'DELETE /v1/vms/{vmId}': 'deleteVm',
  'PUT /v1/vms/{vmId}/domains/{domainId}': 'putDomain',
  'DELETE /v1/vms/{vmId}/domains/{domainId}': 'deleteDomain',
  'PUT /v1/vms/{vmId}/devices/{bdf}': 'putDevice',
  'DELETE /v1/vms/{vmId}/devices/{bdf}': 'deleteDevice',
  'POST /v1/vms/{vmId}/devices/{bdf}/reset': 'resetDevice',
  'POST /v1/vms/{vmId}/devices/{bdf}/devctl': 'devctl',
  'POST /v1/vms/{vmId}/pins': 'pin',
  'GET /v1/vms/{vmId}/pins': 'listPins',
  'POST /v1/vms/{vmId}/unpins': 'unpin',
  'POST /v1/vms/{vmId}/decisions/flush': 'mustFlush',
  'GET /v1/flush-jobs/{jobId}': 'getFlushJob',
  'POST /v1/flush-jobs/{jobId}/ack': 'ack',
  'GET /v1/flush-jobs/{jobId}/ranges': 'listFlushJobRanges',
  'GET /v1/vms/{vmId}/flush-jobs': 'listFlushJobs',
  'GET /v1/vms/{vmId}/events': 'events',
  'GET /v1/quirks': 'getQuirks',
  'PUT /v1/quirks': 'putQuirks',
  'POST /v1/quirks': 'addQuirks',
  'GET /v1/policy': 'getPolicy',
  'GET /v1/audit': 'listAudit',
  'POST /v1/simulations': 'simulate',
  'GET /v1/simulations/{id}': 'getSimulation',
  'GET /v1/simulations/{id}/chart.svg': 'getSimulationChart'
};

/** What each status means, for its response's description. */
const MEANING: Readonly<Record<string, string>> = {
  '200': 'The answer',
  '201': 'Created: the answer',
  '400': 'The request is invalid; the problem names the field',
  '401': 'No token, or an unknown one (when the server has a token file)',
  '403': "The token's scopes do not allow this route",
  '404': 'Something the request names does not exist',
  '409': 'The request conflicts with the current state; nothing changed',
  '413': 'The body or the batch is too large',
  '415': 'The body is not JSON',
  '429': 'Too many requests (or event streams) for this token; retry later',
  '503': 'The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed'
};

/** Statuses every /v1 route can answer, besides its own. */
const EVERY_V1 = ['401', '403', '429', '503'];

type Json = Record<string, unknown>;

/** The codes a problem of `status` can carry. */
export function codesOf(status: number): ErrorCode[] {
  return (Object.keys(STATUS) as ErrorCode[]).filter((code) => STATUS[code].status === status).sort();
}

function problemResponse(status: string, description?: string): Json {
  return {
    description: description !== undefined && description !== 'Default Response' ? description : (MEANING[status] ?? 'A problem'),
    content: {
      'application/problem+json': {
        schema: { allOf: [{ $ref: '#/components/schemas/Problem' }, { type: 'object', properties: { code: { type: 'string', enum: codesOf(Number(status)) } } }] }
      }
    }
  };
}

/** Every `$ref` to a component schema under `value`. */
function refs(value: unknown, out: Set<string>): void {
  if (Array.isArray(value)) for (const v of value) refs(v, out);
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')) out.add(v.slice('#/components/schemas/'.length));
      else refs(v, out);
    }
  }
}

/**
 * One event of a text/event-stream answer, per kind, in the form of OpenAPI 3.2's `itemSchema`
 * (an extension until the document moves to 3.2): its `event` line, its `id` and its `data`
 * line, JSON described by the kind's component. The media type's `schema` stays the data of one
 * event (any kind's), which is what generators with SSE support hand their callers.
 */
function sseItemSchema(): Json {
  return {
    description: 'One event of the stream, by kind (the `event:` line); its `data:` line is JSON of the named schema',
    oneOf: Object.entries(EVENT_DATA).map(([kind, schema]) => {
      const id = z.globalRegistry.get(schema)?.id;
      if (id === undefined) throw new Error(`the data of ${kind} events has no component id (src/contract/events.ts)`);
      return {
        type: 'object',
        properties: {
          event: { const: kind },
          id: { type: 'string', description: 'Send it as Last-Event-ID to resume after this event' },
          data: { type: 'string', contentMediaType: 'application/json', contentSchema: { $ref: `#/components/schemas/${id}` } }
        },
        required: kind === 'dropped' ? ['event', 'data'] : ['event', 'id', 'data']
      };
    })
  };
}

/** Drops the negative bound zod gives every integer (-2^53 + 1) and its positive twin: counts are not negative. */
function dropSafeIntegerBounds(value: unknown): void {
  if (Array.isArray(value)) for (const v of value) dropSafeIntegerBounds(v);
  else if (value !== null && typeof value === 'object') {
    const o = value as Json;
    if (o['minimum'] === Number.MIN_SAFE_INTEGER) delete o['minimum'];
    if (o['maximum'] === Number.MAX_SAFE_INTEGER) delete o['maximum'];
    for (const v of Object.values(o)) dropSafeIntegerBounds(v);
  }
}

/**
 * A request property with a default is optional to the caller, but generators that read
 * `default` as "always present" (openapi-typescript's default options) would require it: in
 * request schemas the default moves into the description.
 */
function defaultsIntoDescriptions(value: unknown): void {
  if (Array.isArray(value)) for (const v of value) defaultsIntoDescriptions(v);
  else if (value !== null && typeof value === 'object') {
    const o = value as Json;
    if ('default' in o && typeof o['type'] === 'string') {
      const note = `Default: ${JSON.stringify(o['default'])}.`;
      o['description'] = typeof o['description'] === 'string' ? `${o['description']}. ${note}` : note;
      delete o['default'];
    }
    for (const v of Object.values(o)) defaultsIntoDescriptions(v);
  }
}

/** The document, polished as the header says (in place; returned for chaining). */
export function polishDocument(doc: Json): Json {
  const paths = (doc['paths'] ?? {}) as Record<string, Record<string, Json>>;
  for (const [path, operations] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(operations)) {
      const id = OPERATION_IDS[`${method.toUpperCase()} ${path}`];
      if (id === undefined) throw new Error(`no operationId for ${method.toUpperCase()} ${path} (openapi-polish.ts)`);
      op['operationId'] = id;
      if (op[OPTIONAL_BODY] === true) {
        (op['requestBody'] as Json)['required'] = false;
        delete op[OPTIONAL_BODY];
      }
      const responses = (op['responses'] ?? {}) as Record<string, Json>;
      if (path.startsWith('/v1/')) {
        for (const status of EVERY_V1) responses[status] ??= {};
        if (op['requestBody'] !== undefined) responses['415'] ??= {};
      }
      for (const [status, response] of Object.entries(responses)) {
        if (Number(status) >= 400) responses[status] = problemResponse(status, response['description'] as string | undefined);
        else if (response['description'] === 'Default Response') response['description'] = MEANING[status] ?? 'The answer';
        const stream = (response['content'] as Record<string, Json> | undefined)?.['text/event-stream'];
        if (stream !== undefined) stream['x-itemSchema'] = sseItemSchema();
      }
      op['responses'] = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)));
    }
  }
  // Components nobody reaches from a path (zod's input twins of answers, and the like).
  const components = (doc['components'] ?? {}) as Json;
  const schemas = (components['schemas'] ?? {}) as Json;
  const used = new Set<string>();
  refs(paths, used);
  for (let grew = true; grew; ) {
    const before = used.size;
    for (const name of [...used]) refs(schemas[name], used);
    grew = used.size > before;
  }
  components['schemas'] = Object.fromEntries(Object.entries(schemas).filter(([name]) => used.has(name)));
  for (const [name, schema] of Object.entries(components['schemas'] as Json)) if (name.endsWith('Input')) defaultsIntoDescriptions(schema);
  for (const operations of Object.values(paths)) for (const op of Object.values(operations)) defaultsIntoDescriptions(op['requestBody']);
  dropSafeIntegerBounds(doc);
  return doc;
}
