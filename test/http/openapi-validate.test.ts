/**
 * Validates the committed OpenAPI 3.1 document with a third-party validator
 * (@apidevtools/swagger-parser: the OpenAPI 3.1 JSON Schema, plus $ref resolution).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { OpenAPIV3_1 } from 'openapi-types';
import { describe, expect, it } from 'vitest';

const OPENAPI_FILE = fileURLToPath(new URL('../../openapi/openapi.json', import.meta.url));

function readDocument(): OpenAPIV3_1.Document {
  return JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as OpenAPIV3_1.Document;
}

describe('openapi/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document with at least 15 paths', async () => {
    const raw = readDocument();
    expect(raw.openapi).toMatch(/^3\.1\./);

    // validate() dereferences in place, so it gets its own copy; it rejects on any error.
    const validated = await SwaggerParser.validate(structuredClone(raw));
    expect(validated).toHaveProperty('openapi', raw.openapi);

    expect(raw.paths).toBeTypeOf('object');
    expect(Object.keys(raw.paths ?? {}).length).toBeGreaterThanOrEqual(15);
  });

  it('the validator really checks OpenAPI 3.1 documents (rejects a broken copy)', async () => {
    const broken = readDocument();
    delete (broken.info as Partial<OpenAPIV3_1.InfoObject>).version;
    await expect(SwaggerParser.validate(broken)).rejects.toThrow(/#\/info must have required property 'version'/);
  });
});
