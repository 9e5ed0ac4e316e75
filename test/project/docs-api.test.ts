/**
 * docs/api.md's "The core as a library" snippet runs, from the package's entry point (the sources
 * here), and its decision is the one its closing comment shows.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');

describe('docs/api.md, the core as a library', () => {
  it('runs its snippet and decides what its comment shows', async () => {
    const page = readFileSync(join(root, 'docs/api.md'), 'utf8');
    const snippet = /```ts\n([\s\S]*?)```/.exec(page.slice(page.indexOf('## The core as a library')))?.[1] ?? '';
    const shown = /^\/\/ decision\.flush: (.+)$/m.exec(snippet)?.[1];
    expect(shown).toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), 'coherency-library-doc-'));
    try {
      const file = join(dir, 'snippet.ts');
      // The package's entry point is dist/index.js, built from src/index.ts.
      const source = snippet.replace("from 'coherency-policy-service'", `from ${JSON.stringify(join(root, 'src/index.ts'))}`);
      writeFileSync(file, `${source}\nexport const flush = decision.flush;\nexport const shown = ${shown ?? 'undefined'};\n`);
      const module = (await import(pathToFileURL(file).href)) as { flush: unknown; shown: Record<string, unknown> };
      expect(module.flush).toMatchObject(module.shown);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
