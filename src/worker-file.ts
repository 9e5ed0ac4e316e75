import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

/**
 * Where a piscina pool finds its worker: the built `.js` beside the caller, or, when the caller
 * runs from TypeScript sources (tests, benchmarks, `tsx`), the `.ts` loaded through tsx.
 */
export function workerFile(callerUrl: string, name: string): { filename: string; execArgv?: string[] } {
  const source = callerUrl.endsWith('.ts');
  const filename = new URL(`./${name}.${source ? 'ts' : 'js'}`, callerUrl).href;
  return source ? { filename, execArgv: [...process.execArgv, '--import', 'tsx'] } : { filename };
}

/**
 * A plain worker thread's entry (`new Worker(entry.script, { eval: entry.eval })`): the built
 * `.js` beside the caller, or, from TypeScript sources, a script that registers tsx in the
 * thread before importing the `.ts` (a thread started on a `.ts` file directly is refused).
 */
export function workerEntry(callerUrl: string, name: string): { script: string | URL; eval: boolean } {
  const { filename, execArgv } = workerFile(callerUrl, name);
  if (execArgv === undefined) return { script: new URL(filename), eval: false };
  // The ESM build of tsx's API, found from the caller (createRequire resolves the CommonJS one).
  const tsx = pathToFileURL(createRequire(callerUrl).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  return { script: `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(filename)}); })`, eval: true };
}
