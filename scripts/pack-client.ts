/**
 * Packs the typed client as a package of its own, `@coherency-policy-service/client`: the client
 * built alone (tsc, with the build's compiler options, from src/client only) and a package.json
 * whose one dependency is undici. It installs without compiling anything and imports without
 * any of the server's code, where the service's own package brings better-sqlite3 (compiled at
 * install), Fastify and the rest. `tsx scripts/pack-client.ts [destination]` writes the tarball
 * to `destination` (default: the current directory) and prints its path.
 *
 * The client compiles with `rootDir` src/client: a file of it that imported anything of the
 * server's (the contract's zod schemas, say) would fail this build, not only a test.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import ts from 'typescript';

const repo = resolve(new URL('..', import.meta.url).pathname);
export const CLIENT_PACKAGE_NAME = '@coherency-policy-service/client';

interface RootPackage {
  readonly version: string;
  readonly license?: string;
  readonly engines?: { readonly node?: string };
  readonly dependencies: Readonly<Record<string, string>>;
}

/** The client package's package.json: the service's version and engines, undici at the service's range, no scripts. */
export function clientManifest(root: RootPackage = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as RootPackage): Record<string, unknown> {
  const undici = root.dependencies['undici'];
  if (undici === undefined) throw new Error('package.json has no undici dependency');
  return {
    name: CLIENT_PACKAGE_NAME,
    version: root.version,
    description: 'Typed client of the coherency policy service: its routes, its event stream typed by kind, retries of 503 answers with Retry-After. Depends on undici only.',
    type: 'module',
    license: root.license ?? 'MIT',
    engines: { node: root.engines?.node ?? '>=20.19' },
    main: './dist/index.js',
    types: './dist/index.d.ts',
    exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' }, './package.json': './package.json' },
    files: ['dist'],
    sideEffects: false,
    dependencies: { undici }
  };
}

const README = `# ${CLIENT_PACKAGE_NAME}

The typed client of the coherency policy service, without the service: it depends on undici only.

\`\`\`ts
import { CoherencyClient } from '${CLIENT_PACKAGE_NAME}';
const client = new CoherencyClient('http://127.0.0.1:8080');
const answer = await client.pin('vm1', { iova: '0x0', hpa: '0x100000000', length: '0x200000000' });
if (answer.flush.required) { /* flush answer.flush.ranges, then map */ }
\`\`\`
`;

/** Compiles src/client alone into `outDir` (JavaScript and declarations, no source maps); the files written. */
export function buildClient(outDir: string): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(join(repo, 'tsconfig.build.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); } });
  if (config === undefined) throw new Error('cannot read tsconfig.build.json');
  const options: ts.CompilerOptions = { ...config.options, rootDir: join(repo, 'src/client'), outDir, sourceMap: false, declarationMap: false, declaration: true, noEmitOnError: true, listEmittedFiles: true, incremental: false, tsBuildInfoFile: undefined };
  const program = ts.createProgram({ rootNames: [join(repo, 'src/client/index.ts')], options });
  const result = program.emit();
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics];
  if (diagnostics.length > 0 || result.emitSkipped) {
    throw new Error(`the client does not build on its own:\n${ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => repo, getNewLine: () => '\n' })}`);
  }
  return result.emittedFiles ?? [];
}

/** Builds the client package in a temporary directory and `npm pack`s it into `destination`; the tarball's path. */
export function packClient(destination: string): string {
  const staging = mkdtempSync(join(tmpdir(), 'coherency-client-package-'));
  try {
    buildClient(join(staging, 'dist'));
    writeFileSync(join(staging, 'package.json'), JSON.stringify(clientManifest(), null, 2) + '\n');
    writeFileSync(join(staging, 'README.md'), README);
    mkdirSync(destination, { recursive: true });
    const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', resolve(destination)], { cwd: staging, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as { filename: string }[];
    const filename = packed[0]?.filename;
    if (filename === undefined) throw new Error('npm pack made nothing');
    return join(resolve(destination), basename(filename));
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '')) {
  const tarball = packClient(process.argv[2] ?? process.cwd());
  console.log(tarball);
}
