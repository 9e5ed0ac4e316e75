/**
 * Writes the OpenAPI document the server serves to openapi/openapi.json (npm run openapi).
 */
import { writeFileSync } from 'node:fs';
import { buildApp } from '../src/http/app.js';

export const OPENAPI_PATH = new URL('../openapi/openapi.json', import.meta.url);

export async function renderOpenApi(): Promise<string> {
  const app = await buildApp();
  try {
    return JSON.stringify(app.swagger(), null, 2) + '\n';
  } finally {
    await app.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '')) {
  writeFileSync(OPENAPI_PATH, await renderOpenApi());
  console.log(`wrote ${OPENAPI_PATH.pathname}`);
}
