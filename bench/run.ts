/**
 * npm run bench: the performance bar in one command. Runs each benchmark as its own process
 * (loopback only, each bounded by a timeout), prints their output as it comes, and rewrites the
 * generated part of BENCHMARKS.md (between the two markers) with the machine, the commands, every
 * figure against its target and each benchmark's full output. BENCH_RUNS (default 3, at least 3)
 * sets the runs per figure; BENCH_ONLY=decisions,sim,store,replicas runs a subset and leaves BENCHMARKS.md as is.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { header } from './machine.js';

interface Figure {
  readonly id: string;
  readonly label: string;
  readonly value: number;
  readonly display: string;
  readonly target: string;
  readonly met: boolean;
}

interface Bench {
  readonly name: string;
  readonly script: string;
  readonly title: string;
  readonly timeoutMs: number;
}

const BENCHES: readonly Bench[] = [
  { name: 'decisions', script: 'bench:decisions', title: 'Decision route against bare fastify, and batched decisions', timeoutMs: 15 * 60_000 },
  { name: 'scale', script: 'bench:scale', title: 'Pinned-state scale', timeoutMs: 30 * 60_000 },
  { name: 'flush', script: 'bench:flush', title: 'Flush jobs: planning, and decisions during a 1 TiB replay', timeoutMs: 10 * 60_000 },
  { name: 'sim', script: 'bench:sim', title: 'What-if simulation', timeoutMs: 15 * 60_000 },
  { name: 'store', script: 'bench:store', title: 'Durable state on SQLite against a bare durable server', timeoutMs: 25 * 60_000 },
  { name: 'replicas', script: 'bench:replicas', title: 'Replicas on PostgreSQL: CPU per change and throughput as replicas are added', timeoutMs: 20 * 60_000 }
];

const START = '<!-- npm run bench: start (generated; edit outside the markers) -->';
const END = '<!-- npm run bench: end -->';
const ROOT = join(import.meta.dirname, '..');
const runs = Math.max(3, Number(process.env['BENCH_RUNS'] ?? 3));
const only = process.env['BENCH_ONLY']?.split(',').map((s) => s.trim());

header(`npm run bench  (node --import tsx bench/run.ts), BENCH_RUNS=${runs}`);

function run(bench: Bench): Promise<{ output: string; figures: Figure[]; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('npm', ['run', '--silent', bench.script], { cwd: ROOT, env: { ...process.env, BENCH_RUNS: String(runs) }, stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      process.stdout.write(d);
    });
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`${bench.script} ran past ${bench.timeoutMs / 60_000} minutes and was stopped`));
    }, bench.timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`${bench.script} exited with ${String(code)}`));
      const lines = output.trimEnd().split('\n');
      const last = lines.at(-1) ?? '';
      if (!last.startsWith('FIGURES ')) return reject(new Error(`${bench.script} printed no FIGURES line`));
      resolve({ output: lines.slice(0, -1).join('\n'), figures: JSON.parse(last.slice('FIGURES '.length)) as Figure[], ms: performance.now() - started });
    });
  });
}

/** How far a figure is from a numeric target ("missed by 12%"), from the target's text. */
function gap(f: Figure): string {
  if (f.target === '(reference)' || f.target === '') return 'reference';
  if (f.met) return 'met';
  const m = /^(>=|<=)\s*([\d,.]+)/.exec(f.target);
  if (m === null) return 'missed';
  const goal = Number((m[2] ?? '').replaceAll(',', ''));
  if (!(goal > 0)) return 'missed';
  const short = m[1] === '>=' ? (goal - f.value) / goal : (f.value - goal) / goal;
  return `missed by ${(short * 100).toFixed(1)}%`;
}

const selected = BENCHES.filter((b) => only === undefined || only.includes(b.name));
const results: { bench: Bench; output: string; figures: Figure[]; ms: number }[] = [];
for (const bench of selected) {
  console.log(`\n==> ${bench.title}: npm run ${bench.script}\n`);
  results.push({ bench, ...(await run(bench)) });
}

const figures = results.flatMap((r) => r.figures.map((f) => ({ ...f, bench: r.bench })));
console.log('\n==> the bar\n');
for (const f of figures) console.log(`${f.met ? 'ok  ' : 'MISS'} ${f.label}: ${f.display} (target ${f.target})`);

if (only !== undefined) {
  console.log('\nBENCH_ONLY is set: BENCHMARKS.md left as it is');
} else {
  const machine = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.+)/)?.[1]?.trim() ?? 'unknown cpu';
  const block = [
    START,
    '',
    `Recorded on ${new Date().toISOString().slice(0, 10)} with \`npm run bench\` (BENCH_RUNS=${runs}): ${cpus().length} cores (${machine}), Node ${process.version}, ${process.platform}-${process.arch}. Every figure is the median of ${runs} runs.`,
    '',
    '| figure | measured | target | verdict | command |',
    '|---|---:|---|---|---|',
    ...figures.map((f) => `| ${f.label} | ${f.display} | ${f.target} | ${gap(f)} | \`npm run ${f.bench.script}\` |`),
    '',
    ...results.flatMap((r) => [`### ${r.bench.title} (\`npm run ${r.bench.script}\`, ${(r.ms / 1000).toFixed(0)} s)`, '', '```', r.output.trim(), '```', '']),
    END
  ].join('\n');
  const file = join(ROOT, 'BENCHMARKS.md');
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  const next = a >= 0 && b > a ? text.slice(0, a) + block + text.slice(b + END.length) : `${text.trimEnd()}\n\n## The performance bar (\`npm run bench\`)\n\n${block}\n`;
  writeFileSync(file, next);
  console.log(`\nwrote ${file}`);
}
