/**
 * The package as a user gets it: `npm pack` holds the built service and its types (dist/ is not
 * in git, so the package must name it), and the README's client snippet, run from a scratch
 * project that has only the unpacked tarball and its dependencies, talks to a listening server
 * and type-checks against the packed types. Its `./client` subpath is the client alone
 * (dist/client): importing it loads none of the server.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, gpuVm } from '../helpers/app.js';
import { scratchProject } from '../helpers/scratch.js';

const root = new URL('../..', import.meta.url).pathname;
const run = promisify(execFile);
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/**
 * The README's typed-client snippet: the first ts block after its "Typed client" heading. Written
 * for the client's own package (@coherency-policy-service/client), it runs here as the service's
 * package's `./client` subpath, which is the same client.
 */
function clientSnippet(): string {
  const section = readme.slice(readme.indexOf('### Typed client'));
  const block = /```ts\n([\s\S]*?)```/.exec(section);
  if (block?.[1] === undefined) throw new Error('no client snippet in the README');
  return block[1].replaceAll("'@coherency-policy-service/client'", "'coherency-policy-service/client'");
}

let scratch = '';
let files: string[] = [];
let app: FastifyInstance | undefined;
let origin = '';

beforeAll(async () => {
  // A scratch project: the dependencies npm would install beside the package, then the package.
  const project = scratchProject(root, 'coherency-pack-', ['coherency-policy-service']);
  scratch = project.dir;
  // The package as npm would publish it (dist/ is what `npm ci` built, through `prepare`).
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], { cwd: root, encoding: 'utf8' })) as { filename: string; files: { path: string }[] }[];
  const [tarball] = packed;
  if (tarball === undefined) throw new Error('npm pack made nothing');
  files = tarball.files.map((f) => f.path);
  const unpacked = join(project.modules, 'coherency-policy-service');
  mkdirSync(unpacked);
  execFileSync('tar', ['-xzf', join(scratch, tarball.filename), '-C', unpacked, '--strip-components=1']);
  app = await build();
  await gpuVm(app);
  origin = await app.listen({ host: '127.0.0.1', port: 0 });
}, 120_000);

afterAll(async () => {
  await app?.close();
  if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('holds the built package, its types, the CLI and the OpenAPI document, and no sources or tests', () => {
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/client/index.js', 'dist/client/index.d.ts', 'dist/server.js', 'dist/domain/default-quirks.json', 'bin/coherency-sim.js', 'openapi/openapi.json', 'package.json', 'README.md']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('bench/'))).toEqual([]);
  });

  it("runs the README's client snippet against a listening server, from the unpacked tarball", async () => {
    const snippet = clientSnippet().replace('http://127.0.0.1:8080', origin);
    writeFileSync(join(scratch, 'snippet.mjs'), `${snippet}\nconsole.log(JSON.stringify({ required: answer.flush.required, rules: answer.reasons.map((r) => r.rule) }));\n`);
    // Asynchronously: the server answering it runs in this process.
    const { stdout } = await run(process.execPath, ['snippet.mjs'], { cwd: scratch, encoding: 'utf8' });
    expect(JSON.parse(stdout)).toEqual({ required: true, rules: ['F1'] });
  });

  it("type-checks the README's client snippet against the packed types", () => {
    writeFileSync(join(scratch, 'snippet.ts'), `${clientSnippet()}\nexport {};\n`);
    writeFileSync(
      join(scratch, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', skipLibCheck: true, types: ['node'] }, files: ['snippet.ts'] })
    );
    expect(existsSync(join(scratch, 'node_modules/coherency-policy-service/dist/index.d.ts'))).toBe(true);
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    expect(() => execFileSync(process.execPath, [tsc, '-p', scratch], { cwd: scratch, encoding: 'utf8' })).not.toThrow();
  });

  it('resolves coherency-policy-service/client to the client alone, in JavaScript and in types', async () => {
    writeFileSync(
      join(scratch, 'subpath.mjs'),
      `import { createRequire } from 'node:module';
const { CoherencyClient } = await import('coherency-policy-service/client');
const client = new CoherencyClient(process.argv[2]);
const vm = await client.getVm('vm1');
await client.close();
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((f) => /\\/node_modules\\/(fastify|@fastify|pino|better-sqlite3|pg|prom-client|piscina)\\//.test(f));
console.log(JSON.stringify({ resolved: import.meta.resolve('coherency-policy-service/client'), vm: vm.id, loaded }));
`
    );
    const { stdout } = await run(process.execPath, ['subpath.mjs', origin], { cwd: scratch, encoding: 'utf8' });
    const out = JSON.parse(stdout) as { resolved: string; vm: string; loaded: string[] };
    expect(out.resolved.endsWith('/node_modules/coherency-policy-service/dist/client/index.js')).toBe(true);
    expect(out).toMatchObject({ vm: 'vm1', loaded: [] });
    writeFileSync(join(scratch, 'subpath.ts'), "import { CoherencyClient, type VmEventMessage } from 'coherency-policy-service/client';\nexport const client: CoherencyClient = new CoherencyClient('http://127.0.0.1:8080');\nexport const kind = (e: VmEventMessage): string => (e.type === 'flush-job' ? e.data.state : e.type);\n");
    writeFileSync(
      join(scratch, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', skipLibCheck: true, types: ['node'] }, files: ['subpath.ts'] })
    );
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    await expect(run(process.execPath, [tsc, '-p', scratch], { cwd: scratch, encoding: 'utf8' })).resolves.toBeDefined();
  }, 60_000);
});
