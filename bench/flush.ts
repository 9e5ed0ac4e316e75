/**
 * Flush-job benchmark (npm run bench:flush).
 *
 * (a) Planning throughput: coalescing and pricing 1 M host ranges, in ranges/s and GiB/s, on
 *     the main thread (the baseline) and in the worker pool with 1 and 2 threads, same run.
 * (b) Decisions during a 1 TiB replay: a server (a child process, loopback only) holds a VM
 *     pinned as 524,288 x 2 MiB ranges; the guest enables No Snoop (trapped), forcing a replay
 *     of all of it, while a second client sends single decisions. Decision p50/p99 during the
 *     replay against the same load without it. Target: p99 <= 10 ms and <= 3x the idle p99.
 *     The server runs the default FLUSH_ACKS=required, and the benchmark acts as the VMM: it
 *     acknowledges the replay's job, and the job of the unpin that ends each run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { coalescePairs, planFlush } from '../src/domain/index.js';
import { createJobPool } from '../src/jobs/job-pool.js';
import { fmt, header, median, profileArgs } from './machine.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const PLAN_RANGES = 1_000_000;
const TASKS = 8;
const VM_RANGES = 524_288; // 1 TiB in 2 MiB ranges
const RANGE_PAGES = 512;
const WINDOW_MS = 1500;
const CONCURRENCY = 4;
const PORT = Number(process.env['BENCH_PORT'] ?? 18_931);

header('npm run bench:flush  (node --import tsx bench/flush.ts)');

// ---- (a) planning throughput ------------------------------------------------------------------

function workload(): Float64Array[] {
  // 2 MiB ranges at scattered host addresses (every other 2 MiB), shuffled: coalescing must sort.
  const per = PLAN_RANGES / TASKS;
  return Array.from({ length: TASKS }, (_, t) => {
    const a = new Float64Array(2 * per);
    for (let i = 0; i < per; i++) {
      const k = (i * 7919 + t * 104_729) % per;
      a[2 * i] = (t * per + k) * 2 * RANGE_PAGES;
      a[2 * i + 1] = RANGE_PAGES;
    }
    return a;
  });
}

const policy = { flushMethod: 'clflushopt' as const, wbinvdAbovePages: null };
const GiB_PLANNED = (PLAN_RANGES * RANGE_PAGES * 4096) / 2 ** 30;

async function planOn(threads: number): Promise<number> {
  const tasks = workload();
  if (threads === 0) {
    const t = performance.now();
    for (const pairs of tasks) planFlush(coalescePairs(pairs), 'x86_64', policy, 262_144);
    return performance.now() - t;
  }
  const pool = createJobPool({ threads });
  // Warm the threads (tsx compiles the worker on first use).
  await Promise.all(Array.from({ length: threads }, () => pool.plan({ pairs: new Float64Array([0, 1]), arch: 'x86_64', ...policy, chunkPages: 262_144 })));
  const t = performance.now();
  await Promise.all(tasks.map((pairs) => pool.plan({ pairs, arch: 'x86_64', ...policy, chunkPages: 262_144 })));
  const ms = performance.now() - t;
  await pool.close();
  return ms;
}

console.log('');
console.log(`(a) planning ${PLAN_RANGES.toLocaleString('en-US')} ranges of 2 MiB (${GiB_PLANNED.toLocaleString('en-US')} GiB) in ${TASKS} jobs; median of ${RUNS}`);
console.log('');
console.log('| where | ms | ranges/s | GiB/s planned | vs main thread |');
console.log('|---|---:|---:|---:|---:|');
const plans: Record<string, number[]> = { 'main thread (baseline)': [], 'pool, 1 worker': [], 'pool, 2 workers': [] };
for (let run = 0; run < RUNS; run++) {
  plans['main thread (baseline)']?.push(await planOn(0));
  plans['pool, 1 worker']?.push(await planOn(1));
  plans['pool, 2 workers']?.push(await planOn(2));
}
const baseMs = median(plans['main thread (baseline)'] ?? []);
for (const [name, times] of Object.entries(plans)) {
  const ms = median(times);
  console.log(`| ${name} | ${fmt(ms)} | ${fmt(PLAN_RANGES / (ms / 1000))} | ${fmt(GiB_PLANNED / (ms / 1000))} | ${(baseMs / ms).toFixed(2)}x |`);
}

// ---- (b) decisions during a 1 TiB replay --------------------------------------------------------

/** The server as users run it (the embedded store, in a directory of its own); resolves once /readyz answers 200. */
async function startServer(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...profileArgs(), 'src/server.ts'], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(PORT), LOG_LEVEL: 'warn', BODY_LIMIT: String(64 * 1024 * 1024), RATE_LIMIT: '0', DATA_DIR: dataDir },
    stdio: ['ignore', 'ignore', 'inherit']
  });
  const client = new Pool(`http://127.0.0.1:${PORT}`);
  try {
    for (let i = 0; i < 300; i++) {
      if (child.exitCode !== null) throw new Error(`the server exited with code ${child.exitCode}`);
      const res = await client.request({ method: 'GET', path: '/readyz' }).catch(() => undefined);
      await res?.body.dump();
      if (res?.statusCode === 200) return child;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the server did not become ready in 30 s');
  } finally {
    await client.close();
  }
}

async function call(pool: Pool, method: 'PUT' | 'POST', path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await pool.request({ method, path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

async function setupVm(pool: Pool, vm: string): Promise<void> {
  await call(pool, 'PUT', `/v1/vms/${vm}`, { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
  await call(pool, 'PUT', `/v1/vms/${vm}/domains/d0`, { enforceCacheCoherency: false });
  await call(pool, 'PUT', `/v1/vms/${vm}/devices/0000:00:02.0`, { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', nosnoop: 'disabled' });
  for (let start = 0; start < VM_RANGES; start += 10_000) {
    const ranges = [];
    for (let i = start; i < Math.min(VM_RANGES, start + 10_000); i++) {
      // Host pages every other 2 MiB, so the replay cannot collapse into one range.
      ranges.push({ iova: i * RANGE_PAGES * 4096, hpa: 2 * i * RANGE_PAGES * 4096, length: RANGE_PAGES * 4096 });
    }
    await call(pool, 'POST', `/v1/vms/${vm}/pins`, { ranges });
  }
}

/** Closed-loop single decisions from CONCURRENCY connections until `until` resolves or WINDOW_MS passes. */
async function decisionLoad(pool: Pool, vm: string, stop: Promise<unknown>): Promise<number[]> {
  const latencies: number[] = [];
  let done = false;
  const deadline = new Promise((r) => setTimeout(r, WINDOW_MS));
  void Promise.all([stop, deadline]).then(() => {
    done = true;
  });
  const worker = async (w: number): Promise<void> => {
    let i = 0;
    while (!done) {
      const iova = ((w * 1_000_003 + i++ * 7919) % VM_RANGES) * RANGE_PAGES * 4096;
      const t = performance.now();
      await call(pool, 'POST', `/v1/vms/${vm}/decisions/flush`, { op: 'unmap', ranges: [{ iova, length: RANGE_PAGES * 4096 }] });
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
  return latencies;
}

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const dataDir = mkdtempSync(join(tmpdir(), 'coherency-bench-flush-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
const server = await startServer();
const load = new Pool(`http://127.0.0.1:${PORT}`, { connections: CONCURRENCY });
const control = new Pool(`http://127.0.0.1:${PORT}`, { connections: 1 });
const rows: { idle50: number; idle99: number; idleMax: number; replay50: number; replay99: number; replayMax: number; replayMs: number; count: number }[] = [];
try {
  for (let run = 0; run < RUNS; run++) {
    const vm = `tib-${run}`;
    await setupVm(control, vm);
    const idle = await decisionLoad(load, vm, Promise.resolve());
    const t = performance.now();
    // Answered with its receipt once planned: the job is then the VMM's to perform and acknowledge.
    const enable = call(control, 'POST', `/v1/vms/${vm}/devices/0000:00:02.0/devctl?wait=true`, { nosnoopEnable: true }).then((answer) => {
      const flush = answer['flush'] as { bytes: string; jobId?: string; receipt?: { state: string } };
      if (flush.bytes !== '0x10000000000' || flush.receipt?.state !== 'pending' || flush.jobId === undefined) throw new Error(`unexpected replay answer ${JSON.stringify(flush).slice(0, 200)}`);
      return { ms: performance.now() - t, jobId: flush.jobId };
    });
    const during = await decisionLoad(load, vm, enable);
    const { ms: replayMs, jobId } = await enable;
    await call(control, 'POST', `/v1/flush-jobs/${jobId}/ack`, {});
    rows.push({ idle50: pct(idle, 50), idle99: pct(idle, 99), idleMax: Math.max(...idle), replay50: pct(during, 50), replay99: pct(during, 99), replayMax: Math.max(...during), replayMs, count: during.length });
    const unpinned = await call(control, 'POST', `/v1/vms/${vm}/unpins`, { iova: 0, length: '0x10000000000' }).catch(() => undefined);
    const unpinJob = (unpinned?.['flush'] as { jobId?: string } | undefined)?.jobId;
    if (unpinJob !== undefined) await call(control, 'POST', `/v1/flush-jobs/${unpinJob}/ack`, {});
  }
} finally {
  await load.close();
  await control.close();
  server.kill('SIGTERM');
  await once(server, 'exit');
}

const m = (f: (r: (typeof rows)[number]) => number): number => median(rows.map(f));
console.log('');
console.log(`(b) single decisions (POST decisions/flush, ${CONCURRENCY} connections, closed loop, ${WINDOW_MS} ms windows) on a 1 TiB VM of ${VM_RANGES.toLocaleString('en-US')} x 2 MiB ranges; median of ${RUNS}`);
console.log('');
console.log('| load | p50 ms | p99 ms | max ms |');
console.log('|---|---:|---:|---:|');
console.log(`| idle (baseline) | ${m((r) => r.idle50).toFixed(2)} | ${m((r) => r.idle99).toFixed(2)} | ${m((r) => r.idleMax).toFixed(2)} |`);
console.log(`| during the 1 TiB replay | ${m((r) => r.replay50).toFixed(2)} | ${m((r) => r.replay99).toFixed(2)} | ${m((r) => r.replayMax).toFixed(2)} |`);
console.log(`| ratio replay / idle | ${(m((r) => r.replay50) / m((r) => r.idle50)).toFixed(2)}x | ${(m((r) => r.replay99) / m((r) => r.idle99)).toFixed(2)}x | ${(m((r) => r.replayMax) / m((r) => r.idleMax)).toFixed(2)}x |`);
console.log('');
console.log(`replay: trapped enable answered with its receipt (?wait=true) in ${fmt(m((r) => r.replayMs))} ms; ${fmt(m((r) => r.count))} decisions measured during the replay window`);
const replayMax = m((r) => r.replayMax);
const replay99 = m((r) => r.replay99);
console.log(
  `FIGURES ${JSON.stringify([
    { id: 'replay-p99', label: 'Decision p99 during a 1 TiB replay (524,288 x 2 MiB)', value: replay99, display: `${replay99.toFixed(2)} ms (${(replay99 / m((r) => r.idle99)).toFixed(2)}x idle)`, target: '<= 10 ms', met: replay99 <= 10 },
    { id: 'replay-pause', label: 'Longest pause during a 1 TiB replay (max decision latency)', value: replayMax, display: `${replayMax.toFixed(1)} ms`, target: '<= 20 ms', met: replayMax <= 20 }
  ])}`
);
