/**
 * The Dockerfile's invariants, checked by parsing it: fast, with no engine. `npm run docker:smoke`
 * builds and runs the real image (Docker, else podman), or replays its steps where neither works.
 */
import { readFileSync } from 'node:fs';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { describe, expect, it } from 'vitest';

const source = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
const dockerfile = DockerfileParser.parse(source);
const lines = source.split('\n');
const froms = dockerfile.getFROMs();
const runtimeStart = froms[1]?.getRange().start.line ?? Number.MAX_SAFE_INTEGER;
const inRuntime = (i: Instruction): boolean => i.getRange().start.line > runtimeStart;
const runtime = dockerfile.getInstructions().filter(inRuntime);
const args = (i: Instruction): string => i.getArgumentsContent() ?? '';

describe('Dockerfile', () => {
  it('is multi-stage on a current Node LTS slim image (the BASE_IMAGE argument, a local stand-in where there is no registry)', () => {
    expect(froms).toHaveLength(2);
    for (const f of froms) expect(f.getImage()).toBe('${BASE_IMAGE}');
    const base = /^ARG BASE_IMAGE=(\S+)$/m.exec(source)?.[1] ?? '';
    expect(base).toMatch(/^node:(22|24)-[a-z]+-slim$/);
    // The argument is declared before the first FROM, so both stages may use it.
    expect(source.indexOf('ARG BASE_IMAGE=')).toBeLessThan(source.indexOf('FROM '));
  });

  it('compiles native addons only in the build stage', () => {
    const build = dockerfile.getInstructions().filter((i) => !inRuntime(i));
    expect(build.some((i) => i.getKeyword() === 'RUN' && /g\+\+/.test(args(i)) && /python3/.test(args(i)))).toBe(true);
    expect(runtime.some((i) => /apt-get|g\+\+|npm ci|npm install/.test(args(i)))).toBe(false);
    // npm ci builds the service (prepare), then the dev dependencies are pruned away.
    expect(build.some((i) => i.getKeyword() === 'RUN' && /npm ci && npm prune --omit=dev/.test(args(i)))).toBe(true);
  });

  it('copies only production node_modules and dist (and package.json) into the runtime stage', () => {
    const copies = runtime.filter((i) => i.getKeyword() === 'COPY').map((i) => (lines[i.getRange().start.line] ?? '').trim());
    expect(copies).toEqual(['COPY --from=build /app/node_modules ./node_modules', 'COPY --from=build /app/dist ./dist', 'COPY package.json ./']);
  });

  it('runs as a non-root user with HOST=0.0.0.0, DATA_DIR=/data as a volume, port 8080', () => {
    const user = runtime.filter((i) => i.getKeyword() === 'USER').pop();
    expect(args(user as Instruction)).toBe('node');
    const env = runtime.filter((i) => i.getKeyword() === 'ENV').map(args).join(' ');
    expect(env).toMatch(/HOST=0\.0\.0\.0/);
    expect(env).toMatch(/DATA_DIR=\/data/);
    expect(runtime.some((i) => i.getKeyword() === 'VOLUME' && args(i).includes('/data'))).toBe(true);
    expect(runtime.some((i) => i.getKeyword() === 'EXPOSE' && args(i) === '8080')).toBe(true);
  });

  it('starts in exec form and checks health with node fetch against /readyz', () => {
    const cmd = runtime.filter((i) => i.getKeyword() === 'CMD').pop();
    expect(JSON.parse(args(cmd as Instruction))).toEqual(['node', 'dist/server.js']);
    const health = runtime.find((i) => i.getKeyword() === 'HEALTHCHECK');
    expect(args(health as Instruction)).toMatch(/CMD \["node", "-e", "fetch\(.*\/readyz/);
  });
});
