/**
 * docs/dependencies.md says why each package is there: every dependency and devDependency of
 * package.json has its row, and no row names a package the project no longer has.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

/** The packages the table's first column names (several to a row, comma-separated). */
function documented(): string[] {
  const names: string[] = [];
  for (const line of readFileSync(join(root, 'docs/dependencies.md'), 'utf8').split('\n')) {
    const first = /^\| ([^|]+?) \| /.exec(line)?.[1];
    if (first !== undefined && first !== 'package' && !first.startsWith('---')) names.push(...first.split(',').map((n) => n.trim()));
  }
  return names;
}

describe('docs/dependencies.md', () => {
  it('has a row for every package of package.json, and for no other', () => {
    const installed = [...Object.keys(pkg.dependencies), ...Object.keys(pkg.devDependencies)].sort();
    expect([...documented()].sort()).toEqual(installed);
  });
});
