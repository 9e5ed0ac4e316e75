/**
 * Store benchmark (npm run bench:store): the durable path as users run it, with the default
 * FLUSH_ACKS=required and a load that behaves as the README asks of a VMM (bench/vmm-load.ts:
 * each connection pins a page, acknowledges the answer's flush job, unpins it, acknowledges
 * that job, and again). Each server runs in its own process on 127.0.0.1, the load comes from
 * autocannon in this one.
 *
 * (a) Durable single-page pin, ack, unpin, ack req/s on SQLite (32 connections) against the same
 *     load on its bound, a bare durable server (bench/bare-durable.ts: a bare Fastify app whose
 *     pin and unpin routes keep each body as one row through a SQLite worker thread with group
 *     commit, WAL, synchronous=FULL, and answer with a job id, whose ack route keeps a row the
 *     same way): both servers up at once, rounds alternating. Target: >= 0.85x.
 *     The ack protocol's own cost is a line of its own: changes/s of the same server with
 *     FLUSH_ACKS=answered under the same load without the acks, against changes/s with them.
 * (b) Decision p99 while those writes run (28 connections), against its p99 alone (4 connections
 *     asking, from a process of their own). Target: <= 2.5x. The bare durable server's own ratio
 *     is its bound.
 * (c) Growth: 20,000 churn batches (2,000,000 range operations) over HTTP to a server on SQLite,
 *     each answer's flush job acknowledged, leaving 1,000 live ranges, against a data directory
 *     that only ever held those 1,000: directory size (target <= live-only + 32 MB) and restart
 *     of a server to /readyz (target <= live-only + 1 s).
 * (d) RSS of a server under the steady VMM load of (a): after 20 s of warm-up, growth over a
 *     further 60 s. Target: <= 15%. Its bound: the heap each full collection leaves (--trace-gc),
 *     which a leak would make grow.
 *
 * (PostgreSQL replicas: bench/replicas.ts, npm run bench:replicas.)
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmt, header, median, profileArgs } from './machine.js';
import { call, setUpFlushingVm, vmmWrites, type Load as VmmLoad } from './vmm-load.js';

const RUNS = Math.max(3, Number(process.env['BENCH_RUNS'] ?? 3));
const PORT = Number(process.env['BENCH_PORT'] ?? 18_961);
const WRITE_CONNECTIONS = 32;
const READ_CONNECTIONS = 4;
const SECONDS = 5;
const CHURN_BATCHES = 20_000;
const CHURN_RANGES = 100;
const LIVE = 1_000;
const RSS_WARMUP_S = 20;
const RSS_MEASURE_S = 60;
const DEADLINE_MS = 20 * 60_000;
/** BENCH_PARTS=ab (or c, d): only those parts, for a quick look; the bar runs them all. */
const PARTS = process.env['BENCH_PARTS'] ?? 'abcd';

header('npm run bench:store  (node --import tsx bench/store.ts)');

// The servers run the built service, as `npm start` does.
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });

const children = new Set<ChildProcess>();
const dirs: string[] = [];
function stopAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
process.on('exit', stopAll);
setTimeout(() => {
  process.stderr.write(`bench:store did not finish within ${DEADLINE_MS / 60_000} minutes; stopping\n`);
  stopAll();
  process.exit(1);
}, DEADLINE_MS).unref();

function tempDir(name: string): string {
  const d = mkdtempSync(join(tmpdir(), `coherency-bench-${name}-`));
  dirs.push(d);
  return d;
}

/**
 * A server process on `dataDir` (the service, as `npm start` runs it, with the default
 * FLUSH_ACKS=required unless `env` says otherwise); resolves once /readyz answers 200, with the
 * time that took. BENCH_CPU_PROF=<dir>: a CPU profile of it written into dir when it exits.
 */
async function startServer(
  dataDir: string,
  port = PORT,
  env: Record<string, string> = {},
  args: readonly string[] = ['dist/server.js'],
  stdout: 'ignore' | 'pipe' = 'ignore'
): Promise<{ child: ChildProcess; readyMs: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, [...profileArgs(), ...args], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), STORE: 'sqlite', DATA_DIR: dataDir, RATE_LIMIT: '0', LOG_LEVEL: 'warn', MAX_EVENT_LOOP_DELAY_MS: '0', ...env },
    stdio: ['ignore', stdout, 'inherit']
  });
  children.add(child);
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    if (res?.status === 200) return { child, readyMs: performance.now() - started };
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('server did not become ready in 12 s');
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  children.delete(child);
}

/**
 * Decision latency with microsecond resolution (autocannon reports whole milliseconds):
 * `connections` loops asking one after the other for `seconds`; the p99 in ms. The loops run in
 * a process of their own, so that the write load's generator (autocannon, in this one) does not
 * delay the timings.
 */
const DECISION_PROBE = `
import { Pool } from 'undici';
const { port, seconds, connections } = JSON.parse(process.env.PROBE);
const pool = new Pool('http://127.0.0.1:' + port, { connections });
const times = [];
const until = performance.now() + seconds * 1000;
const body = '{"op":"map","ranges":[{"iova":"0x7000000000","length":"0x1000","hpa":"0x9000000000"}]}';
await Promise.all(Array.from({ length: connections }, async () => {
  while (performance.now() < until) {
    const t = performance.now();
    const res = await pool.request({ method: 'POST', path: '/v1/vms/bench/decisions/flush', headers: { 'content-type': 'application/json' }, body });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error('decision answered ' + res.statusCode);
    times.push(performance.now() - t);
  }
}));
await pool.close();
times.sort((a, b) => a - b);
process.stdout.write(String(times[Math.floor(times.length * 0.99)] ?? 0));
`;
function decisionP99(seconds: number, connections: number, port = PORT): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = spawn(process.execPath, ['--input-type=module', '-e', DECISION_PROBE], { env: { ...process.env, PROBE: JSON.stringify({ port, seconds, connections }) }, stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(probe);
    let out = '';
    probe.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    probe.once('exit', (code) => {
      children.delete(probe);
      if (code === 0 && out !== '') resolve(Number(out));
      else reject(new Error(`the decision probe exited with ${code}`));
    });
  });
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const f of readdirSync(dir)) total += statSync(join(dir, f)).size;
  return total;
}

function rssOf(child: ChildProcess): number {
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

// ---- (a) and (b) ----------------------------------------------------------------------------

/** The service (FLUSH_ACKS=required), the same service with FLUSH_ACKS=answered, and the bare durable server, each on its own port. */
const SERVICE = PORT;
const ANSWERED = PORT + 1;
const BARE = PORT + 2;

const writeRates = { service: [] as number[], bare: [] as number[], ratio: [] as number[] };
/** Changes/s under the same load with acknowledgements (FLUSH_ACKS=required) and without (answered). */
const changeRates = { acked: [] as number[], answered: [] as number[] };
const p99 = { alone: [] as number[], loaded: [] as number[], bareAlone: [] as number[], bareLoaded: [] as number[] };

function vmm(port: number, seconds: number, acks = port !== ANSWERED, connections = WRITE_CONNECTIONS): Promise<VmmLoad> {
  return vmmWrites({ port, vms: ['bench'], connections, seconds, acks }).then((load) => {
    if (load.errors > 0) throw new Error(`${load.errors} errors under load on port ${port}`);
    return load;
  });
}

/** Decision p99 alone, then while the VMM load writes on the other connections: [alone, loaded]. */
async function p99Pair(port: number): Promise<[number, number]> {
  const alone = await decisionP99(SECONDS, READ_CONNECTIONS, port);
  const [, loaded] = await Promise.all([vmm(port, SECONDS, true, WRITE_CONNECTIONS - READ_CONNECTIONS), decisionP99(SECONDS, READ_CONNECTIONS, port)]);
  return [alone, loaded];
}

if (PARTS.includes('a') || PARTS.includes('b')) {
  const service = await startServer(tempDir('ab'), SERVICE);
  const answered = await startServer(tempDir('answered'), ANSWERED, { FLUSH_ACKS: 'answered' });
  const bare = await startServer(tempDir('bare'), BARE, {}, ['--import', 'tsx', 'bench/bare-durable.ts']);
  await setUpFlushingVm('bench', SERVICE);
  await setUpFlushingVm('bench', ANSWERED);
  for (const port of [SERVICE, ANSWERED, BARE]) await vmm(port, 2);
  for (let i = 0; i < RUNS; i++) {
    // Alternating, so that whatever else the machine does falls on both alike.
    const s = await vmm(SERVICE, SECONDS);
    const b = await vmm(BARE, SECONDS);
    const n = await vmm(ANSWERED, SECONDS);
    writeRates.service.push(s.reqPerSec);
    writeRates.bare.push(b.reqPerSec);
    writeRates.ratio.push(s.reqPerSec / b.reqPerSec);
    changeRates.acked.push(s.changesPerSec);
    changeRates.answered.push(n.changesPerSec);
    if (PARTS.includes('b')) {
      const [alone, loaded] = await p99Pair(SERVICE);
      p99.alone.push(alone);
      p99.loaded.push(loaded);
      const [bareAlone, bareLoaded] = await p99Pair(BARE);
      p99.bareAlone.push(bareAlone);
      p99.bareLoaded.push(bareLoaded);
    }
  }
  for (const { child } of [service, answered, bare]) await stop(child);
}

// ---- (c) growth -------------------------------------------------------------------------------

/** Ranges as the API takes them: `n` single pages from page `start`, every other page. */
function ranges(start: number, n: number): { iova: string; hpa: string; length: string }[] {
  return Array.from({ length: n }, (_, k) => ({ iova: `0x${((start + k) * 2 * 4096).toString(16)}`, hpa: `0x${((start + k) * 4096).toString(16)}`, length: '0x1000' }));
}

/**
 * A server on `dataDir` as users run it: a pessimistic VM (every pin flushed, so every change
 * carries a flush job), `churn` batches of pins and their unpins from 8 clients, each answer's
 * flush job acknowledged as a VMM does, then LIVE ranges left pinned (their job acknowledged too).
 */
async function fill(dataDir: string, churn: number): Promise<void> {
  const { child } = await startServer(dataDir);
  await call('PUT', '/v1/vms/bench', { arch: 'x86_64', policy: { mode: 'pessimistic' } }, PORT);
  await call('PUT', '/v1/vms/bench/domains/d0', { enforceCacheCoherency: false }, PORT);
  const change = async (path: string, body: unknown): Promise<void> => {
    const answer = await call('POST', path, body, PORT);
    const jobId = (answer['flush'] as { jobId?: string }).jobId;
    if (jobId === undefined) throw new Error(`${path}: an answer without a flush job`);
    await call('POST', `/v1/flush-jobs/${jobId}/ack`, undefined, PORT);
  };
  const clients = 8;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const base = 10_000_000 + c * CHURN_RANGES;
      for (let b = c * 2; b < churn; b += 2 * clients) {
        await change('/v1/vms/bench/pins', { ranges: ranges(base, CHURN_RANGES) });
        await change('/v1/vms/bench/unpins', { ranges: ranges(base, CHURN_RANGES).map(({ iova, length }) => ({ iova, length })) });
      }
    })
  );
  await change('/v1/vms/bench/pins', { ranges: ranges(0, LIVE) });
  await stop(child);
}

const sizes = { churned: 0, live: 0 };
const restartChurned: number[] = [];
const restartLive: number[] = [];
let churnSeconds = 0;
if (PARTS.includes('c')) {
  const churned = tempDir('churned');
  const churnStarted = performance.now();
  await fill(churned, CHURN_BATCHES);
  churnSeconds = (performance.now() - churnStarted) / 1000;
  const live = tempDir('live');
  await fill(live, 0);
  sizes.churned = dirBytes(churned);
  sizes.live = dirBytes(live);
  for (let i = 0; i < RUNS; i++) {
    for (const [dir, out] of [
      [churned, restartChurned],
      [live, restartLive]
    ] as const) {
      const { child, readyMs } = await startServer(dir);
      out.push(readyMs);
      await stop(child);
    }
  }
}

// ---- (d) RSS under the steady VMM load ------------------------------------------------------------

const rss: { warm: number; end: number } = { warm: 0, end: 0 };
/**
 * Its bound: what the heap holds after each full collection (V8's --trace-gc, the size a
 * Mark-Compact leaves), at the end of the warm-up and at most afterwards. RSS also counts the
 * garbage V8 lets the old generation grow to between full collections; a leak shows here.
 */
const liveHeap = { warm: 0, max: 0 };
if (PARTS.includes('d')) {
  const { child } = await startServer(tempDir('rss'), PORT, {}, ['--trace-gc', 'dist/server.js'], 'pipe');
  let lastLive = 0;
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString('latin1')).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const after = /Mark-Compact[^>]*-> ([\d.]+) \(/.exec(line)?.[1];
      if (after !== undefined) lastLive = Number(after);
    }
  });
  await setUpFlushingVm('bench', PORT);
  await vmm(PORT, RSS_WARMUP_S);
  rss.warm = rssOf(child);
  liveHeap.warm = lastLive;
  const samples: number[] = [];
  for (let t = 0; t < RSS_MEASURE_S; t += 10) {
    await vmm(PORT, 10);
    samples.push(rssOf(child));
    liveHeap.max = Math.max(liveHeap.max, lastLive);
  }
  rss.end = median(samples.slice(-3));
  await stop(child);
}

// ---- report ---------------------------------------------------------------------------------

const MB = 1024 * 1024;
const r = median(writeRates.service) / median(writeRates.bare);
const p = median(p99.loaded) / median(p99.alone);
const boundP99 = median(p99.bareLoaded) / median(p99.bareAlone);
const ackCost = median(changeRates.acked) / median(changeRates.answered);
const growth = rss.end / rss.warm - 1;
const list = (xs: readonly number[], f: (x: number) => string = fmt): string => xs.map(f).join(', ');
console.log('');
console.log(`(a, b) SQLite, FLUSH_ACKS=required, each server in its own process; a VMM load of ${WRITE_CONNECTIONS} connections, each: pin a page, ack its job, unpin it, ack that job;`);
console.log(`       autocannon ${SECONDS} s windows, the service and its bound alternating; median of ${RUNS}`);
console.log('');
console.log('| figure | median | per run | target |');
console.log('|---|---:|---|---|');
console.log(`| the service: pin, ack, unpin, ack req/s | ${fmt(median(writeRates.service))} | ${list(writeRates.service)} | |`);
console.log(`| bare durable server (bench/bare-durable.ts), same load, req/s (baseline) | ${fmt(median(writeRates.bare))} | ${list(writeRates.bare)} | |`);
console.log(`| the service / the bare durable server | ${r.toFixed(2)}x | ${list(writeRates.ratio, (x) => x.toFixed(2))} | >= 0.85x |`);
console.log(`| changes/s with acks (FLUSH_ACKS=required) | ${fmt(median(changeRates.acked))} | ${list(changeRates.acked)} | |`);
console.log(`| changes/s without (FLUSH_ACKS=answered, pin, unpin) | ${fmt(median(changeRates.answered))} | ${list(changeRates.answered)} | |`);
console.log(`| the ack protocol: changes/s with / without | ${ackCost.toFixed(2)}x | | |`);
console.log(`| decision p99 alone, ${READ_CONNECTIONS} connections (ms) | ${median(p99.alone).toFixed(2)} | ${list(p99.alone, (x) => x.toFixed(2))} | |`);
console.log(`| decision p99 while ${WRITE_CONNECTIONS - READ_CONNECTIONS} connections write and ack (ms) | ${median(p99.loaded).toFixed(2)} | ${list(p99.loaded, (x) => x.toFixed(2))} | |`);
console.log(`| p99 loaded / alone | ${p.toFixed(2)}x | | <= 2.5x |`);
console.log(`| the bare durable server's route p99 alone / loaded (ms), its bound | ${median(p99.bareAlone).toFixed(2)} / ${median(p99.bareLoaded).toFixed(2)} (${boundP99.toFixed(2)}x) | | |`);
console.log('');
console.log(
  `(c) ${CHURN_BATCHES.toLocaleString('en-US')} churn batches of ${CHURN_RANGES} ranges (${((CHURN_BATCHES * CHURN_RANGES) / 1e6).toFixed(0)} M range operations in ${churnSeconds.toFixed(1)} s over HTTP, 8 clients, pessimistic: every batch flushed, every job acknowledged), ${LIVE.toLocaleString('en-US')} live ranges left`
);
console.log('');
console.log('| data directory | size | restart to /readyz (median) | per run |');
console.log('|---|---:|---:|---|');
console.log(`| live state only (baseline) | ${(sizes.live / MB).toFixed(2)} MB | ${fmt(median(restartLive))} ms | ${restartLive.map(fmt).join(', ')} |`);
console.log(`| after the churn | ${(sizes.churned / MB).toFixed(2)} MB | ${fmt(median(restartChurned))} ms | ${restartChurned.map(fmt).join(', ')} |`);
console.log(`| difference (target <= 32 MB, <= 1,000 ms) | ${((sizes.churned - sizes.live) / MB).toFixed(2)} MB | ${fmt(median(restartChurned) - median(restartLive))} ms | |`);
console.log('');
console.log(`(d) server RSS under the steady VMM load (${WRITE_CONNECTIONS} connections, acks): ${(rss.warm / MB).toFixed(0)} MB after ${RSS_WARMUP_S} s of warm-up, ${(rss.end / MB).toFixed(0)} MB after a further ${RSS_MEASURE_S} s: ${(growth * 100).toFixed(1)}% (target <= 15%)`);
console.log(`    its bound, the heap a full collection leaves (--trace-gc): ${liveHeap.warm.toFixed(1)} MB after the warm-up, at most ${liveHeap.max.toFixed(1)} MB afterwards`);
console.log(
  `FIGURES ${JSON.stringify([
    {
      id: 'durable-writes-vs-bare',
      label: 'Durable single-page pin, ack, unpin, ack req/s on SQLite (FLUSH_ACKS=required) / a bare durable server, same load',
      value: r,
      display: `${r.toFixed(2)}x (${fmt(median(writeRates.service))} vs ${fmt(median(writeRates.bare))} req/s)`,
      target: '>= 0.85x',
      met: r >= 0.85
    },
    {
      id: 'ack-protocol-cost',
      label: 'Durable changes/s with acks (FLUSH_ACKS=required) / without (answered)',
      value: ackCost,
      display: `${ackCost.toFixed(2)}x (${fmt(median(changeRates.acked))} vs ${fmt(median(changeRates.answered))} changes/s)`,
      target: '',
      met: true
    },
    { id: 'decision-p99-under-writes', label: 'Decision p99 while writes and acks run / alone', value: p, display: `${p.toFixed(2)}x (bound: a bare durable server ${boundP99.toFixed(2)}x)`, target: '<= 2.5x', met: p <= 2.5 },
    {
      id: 'churn-growth',
      label: 'Data directory after 2 M range operations (1,000 live) minus live-only',
      value: (sizes.churned - sizes.live) / MB,
      display: `${((sizes.churned - sizes.live) / MB).toFixed(2)} MB, restart +${fmt(median(restartChurned) - median(restartLive))} ms`,
      target: '<= 32 MB, <= 1 s',
      met: sizes.churned - sizes.live <= 32 * MB && median(restartChurned) - median(restartLive) <= 1000
    },
    {
      id: 'rss-growth',
      label: 'Server RSS growth over a minute of steady writes and acks',
      value: growth,
      display: `${(growth * 100).toFixed(1)}% (heap after full GCs: ${liveHeap.warm.toFixed(0)} MB, then at most ${liveHeap.max.toFixed(0)} MB)`,
      target: '<= 15%',
      met: growth <= 0.15
    }
  ])}`
);
stopAll();
process.exit(0);
