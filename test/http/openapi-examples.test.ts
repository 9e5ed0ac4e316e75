/**
 * The committed OpenAPI document tells the truth where a reader or a generator takes it at its
 * word: every example is valid under the schema it illustrates, an example answer is what a
 * default server answers, every example request is one the server takes, a body documented
 * optional may be left out (over HTTP), and each architecture lists only its own flush methods.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { type Json, OPENAPI, problemsOf } from '../helpers/openapi-document.js';

interface Example {
  /** Where in the document (a JSON path). */
  readonly at: string;
  /** The schema it illustrates (without its examples). */
  readonly schema: Json;
  readonly value: unknown;
}

/** Every `examples` of a schema and `example` of a media type in the document. */
function examplesIn(value: unknown, at = '$', out: Example[] = []): Example[] {
  if (Array.isArray(value)) value.forEach((v, i) => examplesIn(v, `${at}[${i}]`, out));
  else if (value !== null && typeof value === 'object') {
    const o = value as Json;
    if (Array.isArray(o['examples'])) {
      const { examples, ...schema } = o;
      for (const [i, example] of (examples as unknown[]).entries()) out.push({ at: `${at}.examples[${i}]`, schema, value: example });
    }
    if ('example' in o) out.push({ at: `${at}.example`, schema: (o['schema'] ?? {}) as Json, value: o['example'] });
    for (const [k, v] of Object.entries(o)) if (k !== 'examples' && k !== 'example') examplesIn(v, `${at}.${k}`, out);
  }
  return out;
}

const components = OPENAPI.components.schemas;
const withExamples = Object.keys(components).filter((name) => Array.isArray(components[name]?.['examples']));
const operations = Object.entries(OPENAPI.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method: method.toUpperCase(), op: op as Json & { operationId: string } })));

/** The component an operation's JSON body or 200/201 answer names. */
function refOf(media: unknown): string | undefined {
  const ref = ((media as { schema?: { $ref?: string } } | undefined)?.schema?.$ref ?? '').split('/').pop();
  return ref === '' ? undefined : ref;
}
const bodyOf = (op: Json): string | undefined => refOf((op['requestBody'] as { content?: Json } | undefined)?.content?.['application/json']);
const answerOf = (op: Json): string | undefined => refOf((op['responses'] as Record<string, { content?: Json }>)['200']?.content?.['application/json']);

/** Field-level examples (a hex address or value): checked against their schemas, not sent alone. */
const FIELD_EXAMPLES = ['HexAddressInput', 'Hex'];

/** The requests that send each example body, in an order that builds what the next one names. */
const REQUEST_ORDER = ['putVm', 'putDomain', 'putDevice', 'pin', 'mustFlush', 'devctl', 'resetDevice', 'unpin', 'putQuirks', 'addQuirks'];
const PATH_VALUES: Readonly<Record<string, string>> = { vmId: 'example-vm', domainId: 'd0', bdf: '0000:00:02.0' };

const apps: FastifyInstance[] = [];
afterAll(async () => {
  for (const app of apps) await app.close();
});
async function defaultServer(): Promise<FastifyInstance> {
  const app = await buildApp();
  apps.push(app);
  return app;
}

describe('the examples of openapi/openapi.json', () => {
  it('are each valid under the schema they illustrate', () => {
    const examples = examplesIn(OPENAPI);
    expect(examples.length).toBeGreaterThanOrEqual(withExamples.length);
    for (const e of examples) expect(problemsOf(e.schema, e.value), e.at).toEqual([]);
  });

  it('are each sent or compared below (or a field example), so a new one is checked too', () => {
    const sent = REQUEST_ORDER.map((id) => bodyOf(operations.find((o) => o.op.operationId === id)?.op ?? {}));
    const answered = operations.filter((o) => o.method === 'GET' && !o.path.includes('{')).map((o) => answerOf(o.op));
    expect(withExamples.filter((name) => !sent.includes(name) && !answered.includes(name) && !FIELD_EXAMPLES.includes(name))).toEqual([]);
    // Media-type examples would need the same: there are none.
    expect(examplesIn(OPENAPI.paths).filter((e) => e.at.endsWith('.example'))).toEqual([]);
  });

  it('an example answer is what a default server answers (GET /v1/policy: each architecture its own flush methods)', async () => {
    const app = await defaultServer();
    const compared: string[] = [];
    for (const { path, method, op } of operations) {
      const name = answerOf(op);
      if (method !== 'GET' || path.includes('{') || name === undefined || !withExamples.includes(name)) continue;
      const res = await app.inject({ method: 'GET', url: path });
      expect(res.statusCode, path).toBe(200);
      expect(res.json(), path).toEqual((components[name]?.['examples'] as unknown[])[0]);
      compared.push(path);
    }
    expect(compared).toContain('/v1/policy');
    const policy = (await app.inject({ method: 'GET', url: '/v1/policy' })).json<{ flushMethods: Record<string, string[]> }>();
    expect(policy.flushMethods).toEqual({ x86_64: ['clflushopt', 'clflush'], aarch64: ['dc-civac'] });
    // The schema offers each architecture only its own methods (what Swagger UI makes its sample from).
    const methods = (components['PolicyDefaults']?.['properties'] as Record<string, { properties: Record<string, { items: { enum: string[] } }> }>)['flushMethods']?.properties;
    expect(methods?.['aarch64']?.items.enum).toEqual(['dc-civac']);
    expect(methods?.['x86_64']?.items.enum).toEqual(['clflushopt', 'clflush']);
  });

  it('every example request is one the server takes, in turn, on a default server', async () => {
    const app = await defaultServer();
    const sent: string[] = [];
    for (const id of REQUEST_ORDER) {
      const found = operations.find((o) => o.op.operationId === id);
      expect(found, id).toBeDefined();
      const { path, method, op } = found as (typeof operations)[number];
      const name = bodyOf(op) as string;
      const url = path.replace(/\{(\w+)\}/g, (_, p: string) => encodeURIComponent(PATH_VALUES[p] ?? p));
      for (const body of (components[name]?.['examples'] ?? []) as unknown[]) {
        const res = await app.inject({ method: method as 'PUT' | 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
        expect(res.statusCode, `${method} ${url} ${JSON.stringify(body)}: ${res.body}`).toBeLessThan(300);
        sent.push(`${id} ${JSON.stringify(body)}`);
      }
    }
    expect(sent.length).toBeGreaterThanOrEqual(REQUEST_ORDER.length);
  });
});

describe('optional bodies', () => {
  it('are documented optional on the acknowledgement and the reset only, and the server takes both without a body over HTTP', async () => {
    const optional = operations.filter((o) => (o.op['requestBody'] as { required?: boolean } | undefined)?.required === false).map((o) => o.op.operationId);
    expect(optional.sort()).toEqual(['ack', 'resetDevice']);
    const app = await defaultServer();
    const origin = await app.listen({ host: '127.0.0.1', port: 0 });
    const send = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> => {
      const res = await fetch(origin + path, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
      return { status: res.status, json: (await res.json()) as Json };
    };
    expect((await send('PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'pessimistic' } })).status).toBe(201);
    expect((await send('PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false })).status).toBe(201);
    expect((await send('PUT', '/v1/vms/vm1/devices/0000:00:02.0', { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', nosnoop: 'disabled' })).status).toBe(201);
    const pin = await send('POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x100000000', length: '0x200000' });
    const jobId = (pin.json['flush'] as { jobId?: string }).jobId as string;
    expect(jobId).toMatch(/^fj-/);
    const ack = await send('POST', `/v1/flush-jobs/${jobId}/ack`);
    // Acknowledged with nothing reported.
    expect([ack.status, ack.json['state'], ack.json['report']]).toEqual([200, 'acknowledged', {}]);
    const reset = await send('POST', '/v1/vms/vm1/devices/0000:00:02.0/reset');
    expect(reset.status).toBe(200);
    expect(reset.json['revision']).toBeTypeOf('number');
  });
});
