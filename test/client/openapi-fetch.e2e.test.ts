/**
 * A third party's client, generated from the committed OpenAPI document with openapi-typescript
 * (default options) and driven with openapi-fetch: the README's GPU VM session type-checks
 * against the generated types and runs against a listening server, its problem included (a pin
 * overlapping one already pinned: 409 PIN_OVERLAP, typed as a problem).
 */
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { scratchProject } from '../helpers/scratch.js';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
let scratch = '';
let app: FastifyInstance | undefined;
let origin = '';

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

beforeAll(async () => {
  scratch = scratchProject(root, 'coherency-openapi-fetch-').dir;
  writeFileSync(
    join(scratch, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', skipLibCheck: true, types: ['node'] }, files: ['session.ts'] })
  );
  writeFileSync(join(scratch, 'session.ts'), SESSION);
  // Types from the committed document, with openapi-typescript's default options.
  await run(process.execPath, [join(root, 'node_modules/openapi-typescript/bin/cli.js'), join(root, 'openapi/openapi.json'), '-o', join(scratch, 'api.d.ts')], { cwd: scratch });
  app = await buildApp();
  origin = await app.listen({ host: '127.0.0.1', port: 0 });
}, 120_000);

afterAll(async () => {
  await app?.close();
  if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
});

describe('a client generated from the OpenAPI document (openapi-typescript + openapi-fetch)', () => {
  it("type-checks the README's GPU VM session against the generated types", async () => {
    await expect(run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', scratch], { cwd: scratch })).resolves.toBeDefined();
  }, 120_000);

  it('runs it against a listening server, the problem included', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'session.ts', origin], { cwd: scratch });
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
