/**
 * compose.yaml, the replicated deployment: two replicas on one PostgreSQL, with the token file
 * its one-shot `tokens` service generates. The generator is run here as compose would run it
 * (its own script, against a scratch directory), and the file it writes is loaded by the
 * service's own token table: the tokens it prints are the ones that let a client in. Its restart
 * policy and stop grace period are checked against the server's own drain deadline.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { TokenFile, TokenTable } from '../../src/http/auth.js';

/** The shutdown deadline src/server.ts gives close-with-grace, in milliseconds. */
const drainMs = Number(/closeWithGrace\(\{ delay: ([\d_]+)/.exec(readFileSync(join(import.meta.dirname, '../../src/server.ts'), 'utf8'))?.[1]?.replaceAll('_', ''));

interface Service {
  readonly build?: string;
  readonly restart?: string;
  readonly stop_grace_period?: string;
  readonly command?: readonly string[];
  readonly environment?: Record<string, string>;
  readonly volumes?: readonly string[];
  readonly depends_on?: Record<string, { condition: string }>;
}

const compose = parse(readFileSync(join(import.meta.dirname, '../../compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const dir = mkdtempSync(join(tmpdir(), 'compose-tokens-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The `tokens` service's command, run with its volume at `dir`. */
function generate(): string {
  const [node, flag, script] = compose.services['tokens']?.command ?? [];
  expect([node, flag]).toEqual(['node', '-e']);
  return execFileSync(process.execPath, ['-e', (script as string).replaceAll('/data/', `${dir}/`)], { encoding: 'utf8' });
}

describe('compose.yaml', () => {
  it('runs two replicas of the image on its PostgreSQL, after the token file exists, each reading it from the tokens volume', () => {
    const tokens = compose.services['tokens'] as Service;
    expect(tokens.build).toBe('.');
    expect(tokens.volumes).toEqual(['tokens:/data']);
    for (const name of ['replica-a', 'replica-b']) {
      const replica = compose.services[name] as Service;
      expect(replica.build).toBe('.');
      expect(replica.environment).toMatchObject({ STORE: 'postgres', AUTH_TOKENS_FILE: '/run/secrets/tokens.json' });
      expect(replica.environment?.['STORE_URL']).toMatch(/^postgres:\/\/.*@postgres:5432\//);
      expect(replica.volumes).toEqual(['tokens:/run/secrets:ro']);
      expect(replica.depends_on).toEqual({ postgres: { condition: 'service_healthy' }, tokens: { condition: 'service_completed_successfully' } });
    }
    expect(Object.keys(compose.volumes)).toEqual(['pgdata', 'tokens']);
  });

  it('restarts the replicas and PostgreSQL unless stopped, not the one-shot token generator, and gives a replica longer to stop than it drains', () => {
    expect(drainMs).toBe(30_000);
    for (const name of ['replica-a', 'replica-b']) {
      const replica = compose.services[name] as Service;
      expect(replica.restart).toBe('unless-stopped');
      expect(replica.stop_grace_period).toBe('35s');
      // Compose kills at the end of the grace period: the server must have exited by then.
      expect(Number(/^(\d+)s$/.exec(replica.stop_grace_period ?? '')?.[1]) * 1000).toBeGreaterThan(drainMs);
    }
    expect(compose.services['postgres']?.restart).toBe('unless-stopped');
    expect(compose.services['tokens']?.restart).toBeUndefined();
  });

  it('generates a token file of digests once, prints its tokens once, and the service lets exactly those in', () => {
    const printed = generate();
    const file = join(dir, 'tokens.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const entries = TokenFile.parse(JSON.parse(readFileSync(file, 'utf8')));
    expect(entries.map((e) => [e.id, e.scopes])).toEqual([
      ['ops', ['admin']],
      ['vmm', ['vmm']],
      ['dashboard', ['read']]
    ]);
    expect(entries.every((e) => /^sha256:[0-9a-f]{64}$/.test(e.token))).toBe(true);
    const lines = printed.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
    expect(lines.map((l) => l[0])).toEqual(['ops', 'vmm', 'dashboard']);
    const table = new TokenTable(entries);
    for (const [id, , token] of lines) expect(table.authenticate(token as string)?.id).toBe(id);
    expect(table.authenticate('not-a-token')).toBeUndefined();
    // A second start keeps the file (and the tokens already handed out).
    const before = readFileSync(file, 'utf8');
    expect(generate()).toContain('kept');
    expect(readFileSync(file, 'utf8')).toBe(before);
  });
});
