/**
 * Where a piscina pool finds its worker: the built `.js` beside the caller, or, when the caller
 * runs from TypeScript sources (tests, benchmarks, `tsx`), the `.ts` loaded through tsx.
 */
export function workerFile(callerUrl: string, name: string): { filename: string; execArgv?: string[] } {
  const source = callerUrl.endsWith('.ts');
  const filename = new URL(`./${name}.${source ? 'ts' : 'js'}`, callerUrl).href;
  return source ? { filename, execArgv: [...process.execArgv, '--import', 'tsx'] } : { filename };
}
