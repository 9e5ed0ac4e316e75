#!/usr/bin/env node
// Runs the built CLI (npm run build); in a source checkout without a build, runs the TypeScript
// sources through tsx.
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

const built = new URL('../dist/sim/cli-main.js', import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/sim/cli-main.ts', import.meta.url).href);
}
