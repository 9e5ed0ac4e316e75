/**
 * The client as an integrator gets it: `@coherency-policy-service/client`, packed by
 * scripts/pack-client.ts, installs into a scratch project with npm (offline, from npm's cache)
 * without compiling or running anything and with undici as its only dependency; imported in a
 * child process it loads nothing of the server (no Fastify, zod, better-sqlite3, pino, pg: every
 * module resolved or required is the client's, undici's or Node's own) and talks to a listening
 * server, its events included; and a consumer's TypeScript type-checks against the packed
 * declarations alone.
 *
 * Why the scratch project starts with a lockfile: npm 11 reads every dependency's full
 * packument while it resolves (arborist asks for `fullMetadata`), and `npm ci` leaves only
 * undici's tarball and abbreviated packument in npm's cache, so a bare `npm install --offline`
 * of the tarball fails with ENOTCACHED. A lockfile holding undici as the service's own lockfile
 * does (a consumer's, after its first online install) lets npm take it from the cache.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_PACKAGE_NAME, packClient } from '../../scripts/pack-client.js';
import { build, gpuVm } from '../helpers/app.js';

const root = new URL('../..', import.meta.url).pathname;
const run = promisify(execFile);
const rootPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
const rootLock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
/** What importing the client must never bring along. */
const SERVER_MODULES = /\/node_modules\/(fastify|@fastify|zod|better-sqlite3|pino|pg|prom-client|piscina|fastify-type-provider-zod)\//;

let scratch = '';
let installed = '';
let installOutput = '';
let app: FastifyInstance | undefined;
let origin = '';

/** Records every URL the ESM loader resolves, posted to the main thread (module.register). */
const RECORD_HOOK = `let port;
export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  port.postMessage(resolved.url);
  return resolved;
}
`;

/** Imports the installed client, runs a VMM's steps against the server, and prints what it loaded. */
const PROBE = `import { register, createRequire } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const resolved = [];
port1.on('message', (url) => resolved.push(url));
port1.unref();
register('./record-hook.mjs', { parentURL: import.meta.url, data: { port: port2 }, transferList: [port2] });
const { CoherencyClient } = await import('${CLIENT_PACKAGE_NAME}');
const client = new CoherencyClient(process.argv[2]);
const answer = await client.pin('vm1', { iova: '0x0', hpa: '0x100000000', length: '0x200000000' });
const stop = AbortSignal.timeout(10_000);
let heard;
for await (const event of client.events('vm1', { signal: stop, lastEventId: 'earlier-start.1' })) {
  if (event.type === 'reset') await client.unpin('vm1', { iova: '0x0', length: '0x200000000' });
  if (event.type === 'decision') { heard = [event.data.command, event.data.flush.bytes]; break; }
}
await client.close();
await new Promise((r) => setImmediate(r));
const required = Object.keys(createRequire(import.meta.url).cache);
console.log(JSON.stringify({ rules: answer.reasons.map((r) => r.rule), required: answer.flush.required, heard, resolved, requiredFiles: required }));
`;

/** A consumer's TypeScript: the typed events narrow by kind, retries and addQuirks are typed. */
const SNIPPET = `import { CoherencyApiError, CoherencyClient, type VmEventMessage } from '${CLIENT_PACKAGE_NAME}';
const client = new CoherencyClient('http://127.0.0.1:8080', { retry: { maxAttempts: 5, maxDelayMs: 2_000 } });
const answer = await client.pin('vm1', { iova: '0x0', hpa: '0x100000000', length: '0x200000000' });
const ranges: { hpa: string; length: string }[] = answer.flush.required ? answer.flush.ranges : [];
await client.addQuirks({ quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'] }] });
export function line(event: VmEventMessage): string {
  switch (event.type) {
    case 'decision':
      return event.id + ' ' + event.data.command + ' by ' + event.data.actor + ': ' + event.data.flush.bytes;
    case 'policy':
    case 'deleted':
      return event.data.vmId + ' revision ' + String(event.data.revision);
    case 'flush-job':
      return event.data.id + ' ' + event.data.state + ' ' + event.data.requestedBytes;
    case 'reset':
    case 'dropped':
      return event.data.reason;
  }
}
// @ts-expect-error a flush job's event has no command
export const wrong = (e: VmEventMessage): unknown => e.type === 'flush-job' && e.data.command;
try {
  await client.pin('vm1', { iova: '0x1000', hpa: '0x0', length: '0x1000' });
} catch (err) {
  if (err instanceof CoherencyApiError && err.code === 'PIN_OVERLAP') console.log(err.status, err.retryAfterMs, ranges.length);
}
`;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'coherency-client-pack-'));
  const tarball = packClient(join(scratch, 'packed'));
  const project = join(scratch, 'project');
  execFileSync('mkdir', [project]);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify({ name: 'scratch', lockfileVersion: 3, requires: true, packages: { '': { name: 'scratch' }, 'node_modules/undici': rootLock.packages['node_modules/undici'] } }));
  const { stdout, stderr } = await run('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], { cwd: project, encoding: 'utf8' });
  installOutput = stdout + stderr;
  installed = project;
  writeFileSync(join(project, 'record-hook.mjs'), RECORD_HOOK);
  writeFileSync(join(project, 'probe.mjs'), PROBE);
  app = await build();
  await gpuVm(app);
  origin = await app.listen({ host: '127.0.0.1', port: 0 });
}, 180_000);

afterAll(async () => {
  await app?.close();
  if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
});

describe(`${CLIENT_PACKAGE_NAME}, packed and installed`, () => {
  it("is the service's version with undici alone as its dependency, at the service's range, and no scripts", () => {
    const manifest = JSON.parse(readFileSync(join(installed, 'node_modules', CLIENT_PACKAGE_NAME, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({ name: CLIENT_PACKAGE_NAME, version: rootPackage.version, type: 'module', engines: { node: '>=20.19' }, exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' } } });
    expect(manifest['dependencies']).toEqual({ undici: rootPackage.dependencies['undici'] });
    expect(manifest['scripts']).toBeUndefined();
    const files = readdirSync(join(installed, 'node_modules', CLIENT_PACKAGE_NAME, 'dist')).sort();
    expect(files).toEqual(['api.d.ts', 'api.js', 'errors.d.ts', 'errors.js', 'events.d.ts', 'events.js', 'index.d.ts', 'index.js', 'retry.d.ts', 'retry.js', 'types.d.ts', 'types.js']);
  });

  it('installs offline without compiling or running anything: node_modules holds the client and undici only', () => {
    expect(readdirSync(join(installed, 'node_modules')).filter((n) => !n.startsWith('.')).sort()).toEqual(['@coherency-policy-service', 'undici']);
    expect(readdirSync(join(installed, 'node_modules/@coherency-policy-service'))).toEqual(['client']);
    const lock = JSON.parse(readFileSync(join(installed, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean; version?: string }> };
    expect(Object.keys(lock.packages).sort()).toEqual(['', `node_modules/${CLIENT_PACKAGE_NAME}`, 'node_modules/undici']);
    expect(Object.values(lock.packages).filter((p) => p.hasInstallScript === true)).toEqual([]);
    expect(lock.packages['node_modules/undici']?.version).toBe((rootLock.packages['node_modules/undici'] as { version: string }).version);
    // Nothing native: no addon was built or shipped.
    const native = execFileSync('find', [join(installed, 'node_modules'), '-name', '*.node', '-o', '-name', 'binding.gyp', '-o', '-name', 'build', '-type', 'd'], { encoding: 'utf8' });
    expect(native).toBe('');
    expect(installOutput).toMatch(/added 2 packages/);
    expect(installOutput).not.toMatch(/gyp|EBADENGINE|install script/i);
  });

  it("imports without any of the server's code and talks to a listening server, its events included", async () => {
    const { stdout } = await run(process.execPath, ['probe.mjs', origin], { cwd: installed, encoding: 'utf8', timeout: 60_000 });
    const out = JSON.parse(stdout) as { rules: string[]; required: boolean; heard: unknown; resolved: string[]; requiredFiles: string[] };
    expect({ rules: out.rules, required: out.required, heard: out.heard }).toEqual({ rules: ['F1'], required: true, heard: ['unpin', '0x200000000'] });
    const loaded = [...out.resolved, ...out.requiredFiles.map((f) => `file://${f}`)];
    // The client's own files, undici's and Node's built-ins: nothing else.
    // api.js and types.js hold types only: nothing imports them at run time.
    expect(loaded.filter((u) => u.includes(`/node_modules/${CLIENT_PACKAGE_NAME}/dist/`)).map((u) => u.slice(u.lastIndexOf('/') + 1)).sort()).toEqual(['errors.js', 'events.js', 'index.js', 'retry.js']);
    expect(loaded.filter((u) => u.includes('/node_modules/undici/')).length).toBeGreaterThan(10);
    const other = loaded.filter((u) => !u.startsWith('node:') && !u.includes(`/node_modules/${CLIENT_PACKAGE_NAME}/dist/`) && !u.includes('/node_modules/undici/') && !u.endsWith('/record-hook.mjs'));
    expect(other).toEqual([]);
    expect(loaded.filter((u) => SERVER_MODULES.test(u))).toEqual([]);
  }, 60_000);

  it('type-checks a consumer against the packed declarations, which name nothing of the server', async () => {
    writeFileSync(join(installed, 'snippet.ts'), SNIPPET);
    // A consumer of a Node.js library has @types/node (undici's declarations need it): the service's.
    writeFileSync(
      join(installed, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', skipLibCheck: false, types: ['node'], typeRoots: [join(root, 'node_modules/@types')] }, files: ['snippet.ts'] })
    );
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    await expect(run(process.execPath, [tsc, '-p', installed], { cwd: installed, encoding: 'utf8' })).resolves.toBeDefined();
    const { stdout } = await run(process.execPath, [tsc, '-p', installed, '--listFilesOnly'], { cwd: installed, encoding: 'utf8' });
    const files = stdout.split('\n').filter((f) => f !== '');
    expect(files.filter((f) => f.includes(`/node_modules/${CLIENT_PACKAGE_NAME}/dist/`)).length).toBeGreaterThanOrEqual(5);
    // @types/node's own imports resolve its `buffer` there (the npm package of that name).
    const other = files.filter((f) => !/\/node_modules\/(@coherency-policy-service\/client|undici|undici-types|@types\/node|buffer|typescript\/lib)\//.test(f) && !f.endsWith('/snippet.ts'));
    expect(other).toEqual([]);
  }, 120_000);
});
