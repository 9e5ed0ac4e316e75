/**
 * Writes src/client/api.ts, the typed client's wire types, from the committed OpenAPI document
 * (openapi/openapi.json) with openapi-typescript's default options (run after `npm run openapi`:
 * `tsx scripts/client-types.ts`). The client takes its types from the document rather than from
 * the server's zod schemas, so that it needs none of the server's code, in its types either;
 * a test fails when the committed file is not what this renders.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import openapiTS, { astToString, type OpenAPI3 } from 'openapi-typescript';

export const CLIENT_TYPES_PATH = new URL('../src/client/api.ts', import.meta.url);
const OPENAPI_PATH = new URL('../openapi/openapi.json', import.meta.url);

const BANNER = `// Generated from openapi/openapi.json by scripts/client-types.ts (openapi-typescript): do not edit.
`;

export async function renderClientTypes(document = readFileSync(OPENAPI_PATH, 'utf8')): Promise<string> {
  const ast = await openapiTS(JSON.parse(document) as OpenAPI3);
  return BANNER + astToString(ast);
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '')) {
  writeFileSync(CLIENT_TYPES_PATH, await renderClientTypes());
  console.log(`wrote ${CLIENT_TYPES_PATH.pathname}`);
}
