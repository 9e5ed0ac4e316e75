/**
 * Store benchmark (npm run bench:store): the durable path as users run it, each server in its
 * own process on 127.0.0.1, the load from autocannon in this one.
 *
 * (a) Durable single-page pin+unpin req/s on SQLite (32 connections, each pinning a page and
 *     unpinning it again) against the read-only decision route alone (one-range map questions),
 *     same server, same run. Target: >= 0.8x.
 * (b) Decision p99 while those writes run, against its p99 alone (4 connections asking).
 *     Target: <= 2x.
 *     Both are measured again against their bound, a bare Fastify server in its own process
 *     (bench/bare-durable.ts) keeping each write as one row through a SQLite worker thread with
 *     group commit: what a durable write costs on this machine before any policy work.
 * (c) Growth: 20,000 churn batches (2,000,000 range operations) over HTTP to a server on SQLite,
 *     leaving 1,000 live ranges, against a data directory that only ever held those 1,000:
 *     directory size (target <= live-only + 32 MB) and restart of a server to /readyz (target
 *     <= live-only + 1 s).
 * (d) RSS of a server under steady durable writes: after 20 s of warm-up, growth over a further
 *     60 s. Target: <= 15%.
 * (e) Replicas on PostgreSQL: single-page pin+unpin req/s with 8 VMs written through 2 replicas
 *     against 1 VM through 1 replica, same connections (32), same run. Target: >= 4x. With the
 *     machine's CPU per request in each (every process), and the cores 4x would take. And the
 *     time from a write's answer on replica A to its event on a stream of replica B (no
 *     minRevision), replicas otherwise quiet: median and p99 of 200 writes.
 *
 * The servers run with FLUSH_ACKS=answered: these figures are the durable write path, and the
 * load generator plays no VMM acknowledging its flush jobs (with acknowledgements required, a
 * VMM that never sends them is refused after MAX_UNACKED_JOBS).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { fmt, header, median } from './machine.js';

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
/** BENCH_PARTS=ab (or c, d, e): only those parts, for a quick look; the bar runs them all. */
const PARTS = process.env['BENCH_PARTS'] ?? 'abcde';

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

/** A server process on `dataDir`; resolves once /readyz answers 200, with the time that took. */
async function startServer(
  dataDir: string,
  port = PORT,
  store: Record<string, string> = { STORE: 'sqlite', DATA_DIR: dataDir },
  args: readonly string[] = ['dist/server.js']
): Promise<{ child: ChildProcess; readyMs: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, args, {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), ...store, RATE_LIMIT: '0', LOG_LEVEL: 'warn', MAX_EVENT_LOOP_DELAY_MS: '0', FLUSH_ACKS: 'answered' },
    stdio: ['ignore', 'ignore', 'inherit']
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

async function call(method: string, path: string, body?: unknown, port = PORT): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}

/** A VM whose one non-coherent domain has a device that may no-snoop: every pin is flushed. */
async function setUp(vm = 'bench', port = PORT): Promise<void> {
  await call('PUT', `/v1/vms/${vm}`, { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } }, port);
  await call('PUT', `/v1/vms/${vm}/domains/d0`, { enforceCacheCoherency: false }, port);
  await call('PUT', `/v1/vms/${vm}/devices/0000:01:00.0`, { domainId: 'd0', vendorId: '0x10ee', deviceId: '0x903f', function: 'pf', nosnoop: 'enabled' }, port);
}

interface Load {
  reqPerSec: number;
  p99: number;
  errors: number;
}

/** Pages handed to connections, never twice (a run may end between a pin and its unpin). */
let nextPage = 0x100000;

/**
 * Each connection pins a page of its own and unpins it again, over and over; with several `vms`,
 * each connection writes to one of them (handed out in turn). Paths and headers are fixed per
 * connection: the load generator shares the cores with the servers, so it builds no more than
 * each request's body.
 */
function writes(seconds: number, connections = WRITE_CONNECTIONS, port = PORT, vms: readonly string[] = ['bench']): Promise<Load> {
  const runs = vms.map((vm, i) =>
    run(
      {
        connections: Math.floor(connections / vms.length) + (i < connections % vms.length ? 1 : 0),
        duration: seconds,
        requests: [
          {
            method: 'POST',
            path: `/v1/vms/${vm}/pins`,
            headers: { 'content-type': 'application/json' },
            setupRequest: (req: Record<string, unknown>, context: Record<string, unknown>) => {
              context['page'] ??= nextPage += 16;
              const page = context['page'] as number;
              return { ...req, body: `{"iova":"0x${(page * 4096).toString(16)}","hpa":"0x${(page * 8192).toString(16)}","length":"0x1000"}` };
            }
          },
          {
            method: 'POST',
            path: `/v1/vms/${vm}/unpins`,
            headers: { 'content-type': 'application/json' },
            setupRequest: (req: Record<string, unknown>, context: Record<string, unknown>) => ({ ...req, body: `{"iova":"0x${((context['page'] as number) * 4096).toString(16)}","length":"0x1000"}` })
          }
        ]
      },
      port
    )
  );
  return Promise.all(runs).then((loads) => ({
    reqPerSec: loads.reduce((n, l) => n + l.reqPerSec, 0),
    p99: Math.max(...loads.map((l) => l.p99)),
    errors: loads.reduce((n, l) => n + l.errors, 0)
  }));
}

/** One-range map questions about a page never pinned: answered as a pin of it would be. */
function decisions(seconds: number, connections: number): Promise<Load> {
  return run({
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        path: '/v1/vms/bench/decisions/flush',
        headers: { 'content-type': 'application/json' },
        body: '{"op":"map","ranges":[{"iova":"0x7000000000","length":"0x1000","hpa":"0x9000000000"}]}'
      }
    ]
  });
}

/**
 * Decision latency with microsecond resolution (autocannon reports whole milliseconds):
 * `connections` loops asking one after the other for `seconds`; returns the p99 in ms.
 */
async function decisionP99(seconds: number, connections: number): Promise<number> {
  const pool = new Pool(`http://127.0.0.1:${PORT}`, { connections });
  const times: number[] = [];
  const until = performance.now() + seconds * 1000;
  const body = '{"op":"map","ranges":[{"iova":"0x7000000000","length":"0x1000","hpa":"0x9000000000"}]}';
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        const res = await pool.request({ method: 'POST', path: '/v1/vms/bench/decisions/flush', headers: { 'content-type': 'application/json' }, body });
        await res.body.dump();
        if (res.statusCode !== 200) throw new Error(`decision answered ${res.statusCode}`);
        times.push(performance.now() - t);
      }
    })
  );
  await pool.close();
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length * 0.99)] ?? 0;
}

async function run(options: Record<string, unknown>, port = PORT): Promise<Load> {
  const result = await autocannon({ url: `http://127.0.0.1:${port}`, ...options });
  const bad = result.non2xx + result.errors;
  return { reqPerSec: result.requests.total / result.duration, p99: result.latency.p99, errors: bad };
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

const ratio: number[] = [];
const writeRates: number[] = [];
const readRates: number[] = [];
const p99Alone: number[] = [];
const p99Loaded: number[] = [];
/** The same figures for the bound: a bare Fastify server keeping each write durably (bench/bare-durable.ts). */
const bound = { ratio: [] as number[], writeRates: [] as number[], readRates: [] as number[], p99Alone: [] as number[], p99Loaded: [] as number[] };
/** Part (a) and (b) against the server listening on PORT, into `into`. */
async function writesAgainstDecisions(into: typeof bound): Promise<void> {
  await writes(2);
  await decisions(2, WRITE_CONNECTIONS);
  for (let i = 0; i < RUNS; i++) {
    const w = await writes(SECONDS);
    const r = await decisions(SECONDS, WRITE_CONNECTIONS);
    if (w.errors > 0 || r.errors > 0) throw new Error(`errors under load: ${w.errors} writes, ${r.errors} decisions`);
    into.writeRates.push(w.reqPerSec);
    into.readRates.push(r.reqPerSec);
    into.ratio.push(w.reqPerSec / r.reqPerSec);
    into.p99Alone.push(await decisionP99(SECONDS, READ_CONNECTIONS));
    const [, loaded] = await Promise.all([writes(SECONDS, WRITE_CONNECTIONS - READ_CONNECTIONS), decisionP99(SECONDS, READ_CONNECTIONS)]);
    into.p99Loaded.push(loaded);
  }
}
if (PARTS.includes('a')) {
  const { child } = await startServer(tempDir('ab'));
  await setUp();
  await writesAgainstDecisions({ ratio, writeRates, readRates, p99Alone, p99Loaded });
  await stop(child);
  const bare = await startServer('', PORT, { DATA_DIR: tempDir('bare') }, ['--import', 'tsx', 'bench/bare-durable.ts']);
  await writesAgainstDecisions(bound);
  await stop(bare.child);
}

// ---- (c) growth -------------------------------------------------------------------------------

/** Ranges as the API takes them: `n` single pages from page `start`, every other page. */
function ranges(start: number, n: number): { iova: string; hpa: string; length: string }[] {
  return Array.from({ length: n }, (_, k) => ({ iova: `0x${((start + k) * 2 * 4096).toString(16)}`, hpa: `0x${((start + k) * 4096).toString(16)}`, length: '0x1000' }));
}

/**
 * A server on `dataDir` as users run it: a pessimistic VM (every pin flushed, so every change
 * carries a flush job), `churn` batches of pins and their unpins from 8 clients, then LIVE
 * ranges left pinned.
 */
async function fill(dataDir: string, churn: number): Promise<void> {
  const { child } = await startServer(dataDir);
  await call('PUT', '/v1/vms/bench', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
  await call('PUT', '/v1/vms/bench/domains/d0', { enforceCacheCoherency: false });
  const clients = 8;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const base = 10_000_000 + c * CHURN_RANGES;
      for (let b = c * 2; b < churn; b += 2 * clients) {
        await call('POST', '/v1/vms/bench/pins', { ranges: ranges(base, CHURN_RANGES) });
        await call('POST', '/v1/vms/bench/unpins', { ranges: ranges(base, CHURN_RANGES).map(({ iova, length }) => ({ iova, length })) });
      }
    })
  );
  await call('POST', '/v1/vms/bench/pins', { ranges: ranges(0, LIVE) });
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

// ---- (d) RSS under steady writes ------------------------------------------------------------

const rss: { warm: number; end: number } = { warm: 0, end: 0 };
if (PARTS.includes('d')) {
  const { child } = await startServer(tempDir('rss'));
  await setUp();
  await writes(RSS_WARMUP_S);
  rss.warm = rssOf(child);
  const samples: number[] = [];
  for (let t = 0; t < RSS_MEASURE_S; t += 10) {
    await writes(10);
    samples.push(rssOf(child));
  }
  rss.end = median(samples.slice(-3));
  await stop(child);
}

// ---- (e) replicas on PostgreSQL --------------------------------------------------------------

const PG_URL = process.env['BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const VISIBILITY_WRITES = 200;

/**
 * Times from a write's answer on replica `a` to its `decision` event on a stream of replica `b`
 * (ms), for VISIBILITY_WRITES writes one after the other.
 */
async function visibility(a: number, b: number): Promise<number[]> {
  await setUp('lat', a);
  const seen = new Map<number, number>();
  const stop = new AbortController();
  const res = await fetch(`http://127.0.0.1:${b}/v1/vms/lat/events`, { signal: stop.signal });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (frame.includes('event: decision') && data !== undefined) seen.set((JSON.parse(data) as { revision: number }).revision, performance.now());
      }
    }
  })();
  const times: number[] = [];
  for (let i = 0; i < VISIBILITY_WRITES; i++) {
    const page = 0x200000 + i;
    const path = i % 2 === 0 ? '/v1/vms/lat/pins' : '/v1/vms/lat/unpins';
    const body = i % 2 === 0 ? { iova: `0x${(page * 4096).toString(16)}`, hpa: `0x${(page * 8192).toString(16)}`, length: '0x1000' } : { iova: `0x${((page - 1) * 4096).toString(16)}`, length: '0x1000' };
    const answer = await call('POST', path, body, a);
    const answered = performance.now();
    const revision = answer['revision'] as number;
    for (let w = 0; w < 5000 && !seen.has(revision); w++) await new Promise((r) => setTimeout(r, 0.2));
    const at = seen.get(revision);
    if (at === undefined) throw new Error(`replica B never told of revision ${revision}`);
    times.push(Math.max(0, at - answered));
  }
  stop.abort();
  await reading;
  return times.sort((x, y) => x - y);
}

const replicaRates = { one: [] as number[], eight: [] as number[] };
/** Machine CPU (all processes: servers, PostgreSQL, the load generator) per request, ms, and the share of the machine busy. */
const replicaCpu = { one: [] as number[], eight: [] as number[], busyOne: [] as number[], busyEight: [] as number[] };

/** Busy and total CPU seconds of the whole machine so far (/proc/stat; zeros where there is none). */
function machineCpu(): { busy: number; all: number } {
  try {
    const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const all = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: (all - idle) / 100, all: all / 100 };
  } catch {
    return { busy: 0, all: 0 };
  }
}

/** Runs `load` and says the machine CPU it took per request (ms) and the share of the machine busy. */
async function withCpu(load: () => Promise<Load>): Promise<{ load: Load; perRequest: number; busy: number }> {
  const before = machineCpu();
  const result = await load();
  const after = machineCpu();
  const busy = after.busy - before.busy;
  return { load: result, perRequest: (busy * 1000) / Math.max(1, result.reqPerSec * SECONDS), busy: busy / Math.max(1e-9, after.all - before.all) };
}
let visible: number[] = [];
if (PARTS.includes('e')) {
  const schema = `bench_replicas_${process.pid}`;
  const pg = await import('pg');
  const dropSchema = async (): Promise<void> => {
    const client = new pg.default.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  };
  try {
    const store = { STORE: 'postgres', STORE_URL: PG_URL, STORE_SCHEMA: schema };
    const portB = PORT + 1;
    const a = await startServer('', PORT, store);
    const b = await startServer('', portB, store);
    const vms = Array.from({ length: 8 }, (_, i) => `r${i}`);
    for (const vm of vms) await setUp(vm);
    // Visibility on quiet replicas: right after a load, B is still applying what A wrote.
    visible = await visibility(PORT, portB);
    await writes(2, WRITE_CONNECTIONS, PORT, ['r0']);
    for (let i = 0; i < RUNS; i++) {
      const one = await withCpu(() => writes(SECONDS, WRITE_CONNECTIONS, PORT, ['r0']));
      // Each replica writes to its own 4 VMs (a route per VM), half the connections each.
      const eight = await withCpu(async () => {
        const [ea, eb] = await Promise.all([writes(SECONDS, WRITE_CONNECTIONS / 2, PORT, vms.slice(0, 4)), writes(SECONDS, WRITE_CONNECTIONS / 2, portB, vms.slice(4))]);
        return { reqPerSec: ea.reqPerSec + eb.reqPerSec, p99: Math.max(ea.p99, eb.p99), errors: ea.errors + eb.errors };
      });
      if (one.load.errors + eight.load.errors > 0) throw new Error(`errors under load: ${one.load.errors}, ${eight.load.errors}`);
      replicaRates.one.push(one.load.reqPerSec);
      replicaRates.eight.push(eight.load.reqPerSec);
      replicaCpu.one.push(one.perRequest);
      replicaCpu.eight.push(eight.perRequest);
      replicaCpu.busyOne.push(one.busy);
      replicaCpu.busyEight.push(eight.busy);
    }
    await stop(a.child);
    await stop(b.child);
  } finally {
    await dropSchema();
  }
}

// ---- report ---------------------------------------------------------------------------------

const MB = 1024 * 1024;
const r = median(ratio);
const p = median(p99Loaded) / median(p99Alone);
const growth = rss.end / rss.warm - 1;
console.log('');
console.log(`(a, b) SQLite, server in its own process; autocannon ${SECONDS} s windows; median of ${RUNS}`);
console.log('');
console.log('| figure | median | per run | target |');
console.log('|---|---:|---|---|');
console.log(`| durable pin+unpin req/s, ${WRITE_CONNECTIONS} connections | ${fmt(median(writeRates))} | ${writeRates.map(fmt).join(', ')} | |`);
console.log(`| read-only decisions req/s alone, ${WRITE_CONNECTIONS} connections (baseline) | ${fmt(median(readRates))} | ${readRates.map(fmt).join(', ')} | |`);
console.log(`| writes / decisions | ${r.toFixed(2)}x | ${ratio.map((x) => x.toFixed(2)).join(', ')} | >= 0.8x |`);
console.log(`| decision p99 alone, ${READ_CONNECTIONS} connections (ms) | ${median(p99Alone).toFixed(2)} | ${p99Alone.map((x) => x.toFixed(2)).join(', ')} | |`);
console.log(`| decision p99 while ${WRITE_CONNECTIONS - READ_CONNECTIONS} connections write (ms) | ${median(p99Loaded).toFixed(2)} | ${p99Loaded.map((x) => x.toFixed(2)).join(', ')} | |`);
console.log(`| p99 loaded / alone | ${p.toFixed(2)}x | | <= 2x |`);
const boundRatio = median(bound.ratio);
const boundP99 = median(bound.p99Loaded) / median(bound.p99Alone);
console.log('');
console.log('The bound: the same load against a bare Fastify server (bench/bare-durable.ts) whose pin and unpin routes keep each body');
console.log('as one row, committed by a worker thread owning SQLite (WAL, synchronous=FULL), one transaction per turn, before answering:');
console.log('');
console.log('| bound | median | per run |');
console.log('|---|---:|---|');
console.log(`| bare durable writes req/s | ${fmt(median(bound.writeRates))} | ${bound.writeRates.map(fmt).join(', ')} |`);
console.log(`| bare route without a write req/s | ${fmt(median(bound.readRates))} | ${bound.readRates.map(fmt).join(', ')} |`);
console.log(`| writes / route | ${boundRatio.toFixed(2)}x | ${bound.ratio.map((x) => x.toFixed(2)).join(', ')} |`);
console.log(`| route p99 alone / while writes run (ms) | ${median(bound.p99Alone).toFixed(2)} / ${median(bound.p99Loaded).toFixed(2)} (${boundP99.toFixed(2)}x) | |`);
console.log(`| the service's writes / the bare durable writes | ${(median(writeRates) / median(bound.writeRates)).toFixed(2)}x | |`);
console.log('');
console.log(
  `(c) ${CHURN_BATCHES.toLocaleString('en-US')} churn batches of ${CHURN_RANGES} ranges (${((CHURN_BATCHES * CHURN_RANGES) / 1e6).toFixed(0)} M range operations in ${churnSeconds.toFixed(1)} s over HTTP, 8 clients, pessimistic: every batch flushed), ${LIVE.toLocaleString('en-US')} live ranges left`
);
console.log('');
console.log('| data directory | size | restart to /readyz (median) | per run |');
console.log('|---|---:|---:|---|');
console.log(`| live state only (baseline) | ${(sizes.live / MB).toFixed(2)} MB | ${fmt(median(restartLive))} ms | ${restartLive.map(fmt).join(', ')} |`);
console.log(`| after the churn | ${(sizes.churned / MB).toFixed(2)} MB | ${fmt(median(restartChurned))} ms | ${restartChurned.map(fmt).join(', ')} |`);
console.log(`| difference (target <= 32 MB, <= 1,000 ms) | ${((sizes.churned - sizes.live) / MB).toFixed(2)} MB | ${fmt(median(restartChurned) - median(restartLive))} ms | |`);
console.log('');
console.log(`(d) server RSS under steady durable writes (${WRITE_CONNECTIONS} connections): ${(rss.warm / MB).toFixed(0)} MB after ${RSS_WARMUP_S} s of warm-up, ${(rss.end / MB).toFixed(0)} MB after a further ${RSS_MEASURE_S} s: ${(growth * 100).toFixed(1)}% (target <= 15%)`);
const scale = median(replicaRates.eight) / median(replicaRates.one);
const q = (list: number[], at: number): number => list[Math.min(list.length - 1, Math.floor(list.length * at))] ?? 0;
console.log('');
console.log(`(e) PostgreSQL replicas, single-page pin+unpin, ${WRITE_CONNECTIONS} connections, autocannon ${SECONDS} s windows; median of ${RUNS}`);
console.log('');
console.log('| figure | median | per run | target |');
console.log('|---|---:|---|---|');
console.log(`| 1 VM through 1 replica, req/s (baseline) | ${fmt(median(replicaRates.one))} | ${replicaRates.one.map(fmt).join(', ')} | |`);
console.log(`| 8 VMs through 2 replicas, req/s | ${fmt(median(replicaRates.eight))} | ${replicaRates.eight.map(fmt).join(', ')} | |`);
console.log(`| 8 VMs, 2 replicas / 1 VM, 1 replica | ${scale.toFixed(2)}x | | >= 4x |`);
console.log(`| write on A to its event on B's stream, ${VISIBILITY_WRITES} writes (ms) | median ${q(visible, 0.5).toFixed(2)}, p99 ${q(visible, 0.99).toFixed(2)} | | |`);
const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
const cores = availableParallelism();
const needed = (4 * median(replicaRates.one) * median(replicaCpu.eight)) / 1000;
console.log('');
console.log('The bound: the machine\'s CPU (/proc/stat, every process: the replicas, PostgreSQL, the load generator) during the same runs:');
console.log('');
console.log('| figure | 1 VM, 1 replica | 8 VMs, 2 replicas |');
console.log('|---|---:|---:|');
console.log(`| machine busy (median) | ${pct(median(replicaCpu.busyOne))} | ${pct(median(replicaCpu.busyEight))} |`);
console.log(`| CPU per request, ms (median; per run) | ${median(replicaCpu.one).toFixed(2)} (${replicaCpu.one.map((x) => x.toFixed(2)).join(', ')}) | ${median(replicaCpu.eight).toFixed(2)} (${replicaCpu.eight.map((x) => x.toFixed(2)).join(', ')}) |`);
console.log(`| 4x the baseline at the 8-VM CPU per request would take | | ${needed.toFixed(1)} cores (the machine has ${cores}) |`);
console.log(
  `FIGURES ${JSON.stringify([
    {
      id: 'replicas-scale',
      label: 'PostgreSQL: pin+unpin req/s, 8 VMs through 2 replicas / 1 VM through 1 replica',
      value: scale,
      display: `${scale.toFixed(2)}x (bound: 4x takes ${needed.toFixed(1)} cores of ${cores})`,
      target: '>= 4x',
      met: scale >= 4
    },
    {
      id: 'replica-visibility',
      label: 'PostgreSQL: write on replica A to its event on replica B (median, p99)',
      value: q(visible, 0.5),
      display: `${q(visible, 0.5).toFixed(1)} ms, p99 ${q(visible, 0.99).toFixed(1)} ms`,
      target: '',
      met: true
    },
    {
      id: 'durable-writes-vs-decisions',
      label: 'Durable single-page pin+unpin req/s on SQLite / read-only decision req/s',
      value: r,
      display: `${r.toFixed(2)}x (bound: a bare durable server ${boundRatio.toFixed(2)}x)`,
      target: '>= 0.8x',
      met: r >= 0.8
    },
    { id: 'decision-p99-under-writes', label: 'Decision p99 while writes run / alone', value: p, display: `${p.toFixed(2)}x (bound: a bare durable server ${boundP99.toFixed(2)}x)`, target: '<= 2x', met: p <= 2 },
    {
      id: 'churn-growth',
      label: 'Data directory after 2 M range operations (1,000 live) minus live-only',
      value: (sizes.churned - sizes.live) / MB,
      display: `${((sizes.churned - sizes.live) / MB).toFixed(2)} MB, restart +${fmt(median(restartChurned) - median(restartLive))} ms`,
      target: '<= 32 MB, <= 1 s',
      met: sizes.churned - sizes.live <= 32 * MB && median(restartChurned) - median(restartLive) <= 1000
    },
    { id: 'rss-growth', label: 'Server RSS growth over a minute of steady writes', value: growth, display: `${(growth * 100).toFixed(1)}%`, target: '<= 15%', met: growth <= 0.15 }
  ])}`
);
stopAll();
process.exit(0);
