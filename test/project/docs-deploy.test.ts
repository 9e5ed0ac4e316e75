/**
 * The deploy commands the README and docs/deploy.md show fit what they run: the `docker run`
 * line publishes the port the image listens on, mounts its volume where the image keeps its data,
 * mounts the token file where it points AUTH_TOKENS_FILE, runs the image `docker build` tagged, with
 * an init so SIGTERM reaches Node; the stop timeout it advises covers the server's own shutdown
 * deadline; the compose replicas are on the ports the page names.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = join(import.meta.dirname, '../..');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');
const dockerfile = read('Dockerfile');

/** The command lines of a page's ```sh blocks, continuation lines joined, comments dropped. */
function commands(page: string): string[] {
  return [...read(page).matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((m) => (m[1] ?? '').replace(/\\\n\s*/g, '').split('\n'))
    .map((l) => l.replace(/\s+#.*$/, ''))
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** The image's environment and exposed port, from its Dockerfile. */
function image(): { env: Map<string, string>; expose: string } {
  const env = new Map<string, string>();
  for (const m of dockerfile.matchAll(/^ENV (.+)$/gm)) for (const pair of (m[1] ?? '').split(/\s+/)) env.set(pair.split('=')[0] ?? '', pair.split('=')[1] ?? '');
  return { env, expose: /^EXPOSE (\d+)$/m.exec(dockerfile)?.[1] ?? '' };
}

describe.each(['README.md', 'docs/deploy.md'])('the deploy commands of %s', (page) => {
  const lines = commands(page);
  const build = lines.find((l) => l.startsWith('docker build '));
  const runLine = lines.find((l) => l.startsWith('docker run '));

  it('run the image they build, as the image expects to be run', () => {
    const { env, expose } = image();
    expect(build).toBeDefined();
    expect(runLine).toBeDefined();
    const tag = /-t (\S+)/.exec(build ?? '')?.[1];
    expect(runLine?.trim().endsWith(` ${tag ?? '?'}`)).toBe(true);
    expect(runLine).toContain(' --init ');
    const published = /-p \S+:(\d+) /.exec(runLine ?? '')?.[1];
    expect(published).toBe(expose);
    expect(published).toBe(env.get('PORT'));
    const volume = /-v [a-z][\w-]*:(\S+) /.exec(runLine ?? '')?.[1];
    expect(volume).toBe(env.get('DATA_DIR'));
    const tokens = /-e AUTH_TOKENS_FILE=(\S+)/.exec(runLine ?? '')?.[1];
    expect(runLine).toContain(`:${tokens ?? '?'}:ro`);
  });
});

describe('docs/deploy.md', () => {
  const page = read('docs/deploy.md');

  it('advises a stop timeout longer than the server takes to shut down', () => {
    const advised = Number(/docker stop -t (\d+)/.exec(page)?.[1]);
    const deadline = Number(/closeWithGrace\(\{ delay: ([\d_]+)/.exec(read('src/server.ts'))?.[1]?.replaceAll('_', '')) / 1000;
    expect(deadline).toBeGreaterThan(0);
    expect(advised).toBeGreaterThan(deadline);
  });

  it("names the compose replicas' ports as compose.yaml publishes them", () => {
    const compose = parse(read('compose.yaml'), { merge: true }) as { services: Record<string, { ports?: string[] }> };
    const published = Object.values(compose.services).flatMap((s) => s.ports ?? []);
    expect(published).toEqual(expect.arrayContaining(['127.0.0.1:8081:8080', '127.0.0.1:8082:8080']));
    expect(page).toContain('127.0.0.1:8081 and :8082');
  });
});
