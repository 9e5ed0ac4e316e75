import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OPENAPI_PATH, renderOpenApi } from '../../scripts/openapi.js';
import { buildApp } from '../../src/http/app.js';

describe('OpenAPI document', () => {
  it('openapi/openapi.json equals what the server generates (run `npm run openapi` after changing routes)', async () => {
    expect(readFileSync(OPENAPI_PATH, 'utf8')).toBe(await renderOpenApi());
  });

  it('is served at /openapi.json and Swagger UI at /docs', async () => {
    const app = await buildApp();
    try {
      const doc = await app.inject({ method: 'GET', url: '/openapi.json' });
      expect(doc.statusCode).toBe(200);
      expect(doc.json()).toEqual(JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')));
      const docs = await app.inject({ method: 'GET', url: '/docs/' });
      expect(docs.statusCode).toBe(200);
      expect(docs.headers['content-type']).toMatch(/text\/html/);
    } finally {
      await app.close();
    }
  });
});
