/**
 * What every benchmark prints first: the command, the machine, and a median helper.
 */
import { cpus } from 'node:os';

export function header(command: string): void {
  const cpu = cpus();
  console.log(`command: ${command}`);
  console.log(`machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown cpu'}), Node ${process.version}, ${process.platform}-${process.arch}`);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run with node --expose-gc');
  collect();
  collect();
}

export function fmt(n: number): string {
  if (Number.isNaN(n)) return 'n/a';
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2);
}

/** Node flags for a benchmarked server: with BENCH_CPU_PROF=<dir>, a CPU profile written into dir when it exits. */
export function profileArgs(): string[] {
  const dir = process.env['BENCH_CPU_PROF'];
  return dir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}
