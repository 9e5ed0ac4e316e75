/**
 * The client needs nothing of the server: its wire types are src/client/api.ts, generated from
 * the committed OpenAPI document (scripts/client-types.ts), and it fails here when that file is
 * not what the document makes now; and every file of src/client imports undici or another file
 * of src/client only, `import type` included (its declarations ship in the client package).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { CLIENT_TYPES_PATH, renderClientTypes } from '../../scripts/client-types.js';

const CLIENT = new URL('../../src/client/', import.meta.url).pathname;

describe('the client on its own', () => {
  it('its generated wire types are what the OpenAPI document makes (run `tsx scripts/client-types.ts` after `npm run openapi`)', async () => {
    expect(readFileSync(CLIENT_TYPES_PATH, 'utf8')).toBe(await renderClientTypes());
  }, 60_000);

  it('imports undici and its own files only, in its types too', () => {
    const imports = readdirSync(CLIENT)
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) => ts.preProcessFile(readFileSync(join(CLIENT, f), 'utf8'), true, true).importedFiles.map((i) => `${f}: ${i.fileName}`));
    expect(imports.length).toBeGreaterThan(0);
    expect(imports.filter((i) => !/: (undici|\.\/[a-z-]+\.js)$/.test(i))).toEqual([]);
  });
});
