/**
 * A third party's client, generated from the committed OpenAPI document with openapi-typescript
 * (default options) and driven with openapi-fetch: the README's GPU VM session type-checks
 * against the generated types and runs against a listening server, its problem included (a pin
 * overlapping one already pinned: 409 PIN_OVERLAP, typed as a problem).
 */
import { describe, expect, it } from 'vitest';
import { generatedClient } from '../helpers/generated-client.js';

/** The session, as a third party writes it against the generated `paths`. */
const SESSION = `import createClient from 'openapi-fetch';
import type { paths } from './api.js';

const client = createClient<paths>({ baseUrl: process.argv[2] });
const vm = { params: { path: { vmId: 'vm1' } } };
const gpu = { params: { path: { vmId: 'vm1', bdf: '0000:00:02.0' } } };
const out: unknown[] = [];

const created = await client.PUT('/v1/vms/{vmId}', { ...vm, body: { arch: 'x86_64', policy: { mode: 'trap' } } });
out.push(created.data?.revision);
const domain = await client.PUT('/v1/vms/{vmId}/domains/{domainId}', { params: { path: { vmId: 'vm1', domainId: 'd0' } }, body: { enforceCacheCoherency: false } });
out.push(domain.data?.kvmNoncoherentDma);
const device = await client.PUT('/v1/vms/{vmId}/devices/{bdf}', { ...gpu, body: { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'disabled' } });
out.push(device.data?.reasons.map((r) => r.rule));
const pinned = await client.POST('/v1/vms/{vmId}/pins', { ...vm, body: { iova: '0x0', hpa: '0x100000000', length: '0x200000000' } });
out.push(pinned.data?.flush.required);
const enabled = await client.POST('/v1/vms/{vmId}/devices/{bdf}/devctl', { ...gpu, body: { nosnoopEnable: true } });
out.push([enabled.data?.decision, enabled.data?.flush.bytes]);
const state = await client.GET('/v1/vms/{vmId}', vm);
out.push(state.data?.domains.map((d) => d.exposed));
const overlap = await client.POST('/v1/vms/{vmId}/pins', { ...vm, body: { iova: '0x1000', hpa: '0x0', length: '0x1000' } });
const problem: { status: number; code: string } | undefined = overlap.error;
out.push([overlap.response.status, problem?.code, overlap.response.headers.get('content-type')?.split(';')[0]]);
const unpinned = await client.POST('/v1/vms/{vmId}/unpins', { ...vm, body: { iova: '0x0', length: '0x200000000' } });
out.push(unpinned.data?.flush.bytes);
const gone = await client.DELETE('/v1/vms/{vmId}', vm);
out.push(gone.data?.reasons.map((r) => r.rule));
console.log(JSON.stringify(out));
`;

const client = generatedClient({ prefix: 'coherency-openapi-fetch-', generator: ['openapi-typescript/bin/cli.js', '{doc}', '-o', '{scratch}/api.d.ts'], session: SESSION });

describe('a client generated from the OpenAPI document (openapi-typescript + openapi-fetch)', () => {
  it("type-checks the README's GPU VM session against the generated types", async () => {
    await expect(client.typeCheck()).resolves.toBeDefined();
  }, 120_000);

  it('runs it against a listening server, the problem included', async () => {
    const stdout = await client.runSession();
    expect(JSON.parse(stdout)).toEqual([
      1,
      false,
      ['K1'],
      false,
      [expect.stringMatching(/^allow/), '0x200000000'],
      [true],
      [409, 'PIN_OVERLAP', 'application/problem+json'],
      '0x200000000',
      ['F5']
    ]);
  }, 120_000);
});
