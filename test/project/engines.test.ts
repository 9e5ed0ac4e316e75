/**
 * The Node.js versions the project says it runs on (package.json `engines`, the README) are ones
 * every installed package accepts: `npm ci` on a fresh machine with the oldest of them warns of
 * no unsupported engine.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { engines?: { node?: string } | string[] }> };

describe('engines', () => {
  it('the oldest Node.js the project accepts is the one the README names', () => {
    const oldest = semver.minVersion(pkg.engines.node)?.version ?? '';
    expect(oldest).toBe('20.19.0');
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain('Node.js 20.19 or later');
  });

  it('every locked package accepts that Node.js, and the one running the tests', () => {
    const oldest = semver.minVersion(pkg.engines.node)?.version ?? '';
    const refusing: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
      if (range === undefined || path === '') continue;
      for (const version of [oldest, process.versions.node]) if (!semver.satisfies(version, range)) refusing.push(`${path} wants node ${range}, not ${version}`);
    }
    expect(refusing).toEqual([]);
  });
});
