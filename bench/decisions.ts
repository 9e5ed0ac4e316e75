/**
 * Decision-route benchmark (npm run bench:decisions). Servers run as child processes on
 * 127.0.0.1; the load comes from autocannon in this process.
 *
 * (a) One-range decisions against a bare Fastify route: POST decisions/flush with one range on
 *     the real server in its default configuration (the SQLite store in a directory of its own,
 *     the default rate limit, overload protection, metrics and request ids, no tokens) and, as
 *     the baseline, the same POST to a bare Fastify 5 app (bench/bare-fastify.ts: same logger
 *     settings, one route, no schema) answering the JSON the real route gave. Both without
 *     access logs: LOG_LEVEL=warn for both (the service's access line is at info). Rounds
 *     alternate decision, bare, decision, bare ... in one run; any answer but 200 (a 429 from
 *     the rate limit, a 503 from overload protection) fails the run. Target: median(decision) /
 *     median(bare) >= 0.85.
 * (b) Batched decisions: bodies of 10,000 ranges (hex strings; unmaps of pinned ranges, maps of
 *     pinned ranges and gaps mixed, as the changes they preview would accept them) against a
 *     VM holding 120,000 pinned ranges, half of them flagged flushOnUnpin and a tenth of them
 *     UC mmio, from several connections in fixed windows, against a bare Fastify route in its
 *     own process that parses the same bodies and sends the same answer bytes (the cost of moving
 *     the JSON at all). Targets: >= 0.6x the bare route; >= 2,000,000 range decisions/s.
 * (c) Serializing one pin or unpin answer listing 10,000 flush ranges, in this process: the
 *     decision turned into its wire form and written by the serializer compiled from the Decision
 *     schema, as the routes do, against the zod serializer. Target: <= 5 ms.
 * (d) Batched pins and unpins on the embedded store (SQLite, its own directory) as users run
 *     them, with the default FLUSH_ACKS=required: connections each pinning 10,000 ranges of their
 *     own, acknowledging the answer's flush job as a VMM does, unpinning them again and
 *     acknowledging that job, every range flushed and every answer listing its flush ranges, in
 *     range operations/s against part (b)'s range decisions/s. Target: >= 0.5x.
 * (e) One-range decision latency over the service's Unix domain socket (SOCKET_PATH) against TCP
 *     loopback, same server: one client sending one request at a time, p50 and p99 (reference).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { fmt, header, median, profileArgs } from './machine.js';

const RUNS = Math.max(3, Number(process.env['BENCH_RUNS'] ?? 3));
const PORT = Number(process.env['BENCH_PORT'] ?? 18_941);
const BARE_PORT = PORT + 1;
const SINGLE_CONNECTIONS = 10;
const SINGLE_SECONDS = 4;
const BATCH_CONNECTIONS = 4;
const BATCH_SECONDS = 5;
const BATCH_RANGES = 10_000;
const BATCH_BODIES = 4;
const PINNED = 120_000;
/** Pinned range k: IOVA k * 16 KiB, 8 KiB long, so an 8 KiB gap follows each one. */
const STRIDE = 0x4000;
const HPA_BASE = 0x1_0000_0000;
const RATIO_TARGET = 0.85;
const BATCH_TARGET = 2_000_000;
const BATCH_RATIO_TARGET = 0.6;
const BATCH_WRITES_TARGET = 0.5;
const SERIALIZED_RANGES = 10_000;
const SERIALIZE_RUNS = 51;
const SERIALIZE_TARGET_MS = 5;
/** Requests a round of part (e), one at a time. */
const SOCKET_REQUESTS = 3000;
/** Whatever happens, the run ends (and its servers with it) after this long. */
const DEADLINE_MS = 10 * 60_000;
/** BENCH_PARTS=a, b, c, d or e (or a list: b,d) runs those parts only; BENCH_CPU_PROF=<dir> profiles the servers into dir. */
const PARTS = new Set((process.env['BENCH_PARTS'] ?? 'a,b,c,d,e').split(','));

header('npm run bench:decisions  (node --import tsx bench/decisions.ts)');

// ---- child servers: started here, always stopped on the way out ------------------------------

const children = new Set<ChildProcess>();

function stopAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
process.on('exit', stopAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stopAll();
    process.exit(130);
  });
}
setTimeout(() => {
  process.stderr.write(`bench:decisions did not finish within ${DEADLINE_MS / 60_000} minutes; stopping\n`);
  stopAll();
  process.exit(1);
}, DEADLINE_MS).unref();

async function waitFor(port: number, path: string, child: ChildProcess): Promise<void> {
  const client = new Pool(`http://127.0.0.1:${port}`);
  try {
    for (let i = 0; i < 300; i++) {
      if (child.exitCode !== null) throw new Error(`server on port ${port} exited with code ${child.exitCode}`);
      try {
        const res = await client.request({ method: 'GET', path });
        await res.body.dump();
        if (res.statusCode < 500) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`server on port ${port} did not become ready in 30 s`);
  } finally {
    await client.close();
  }
}

/**
 * Starts a server in a process of its own. Unless `env` says otherwise: the in-memory store, no
 * rate limit, and the service's default log level (LOG_LEVEL unset, so info; the baseline the
 * same) to /dev/null, so both servers pay the same per-request logging. An `env` value of
 * undefined leaves that variable unset, so the service takes its default.
 */
async function start(script: string, port: number, readyPath: string, env: Record<string, string | undefined> = {}): Promise<ChildProcess> {
  const childEnv: Record<string, string | undefined> = { ...process.env, HOST: '127.0.0.1', PORT: String(port), STORE: 'memory', RATE_LIMIT: '0', LOG_LEVEL: undefined, ...env };
  for (const [name, value] of Object.entries(childEnv)) if (value === undefined) delete childEnv[name];
  const child = spawn(process.execPath, ['--import', 'tsx', ...profileArgs(), script], {
    env: childEnv,
    stdio: ['ignore', 'ignore', 'inherit']
  });
  children.add(child);
  await waitFor(port, readyPath, child);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
  children.delete(child);
}

async function call(pool: Pool, method: 'PUT' | 'POST', path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await pool.request({ method, path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

interface Load {
  reqPerSec: number;
  p99: number;
}

/** A load with the number of requests answered in its window. */
interface CountedLoad extends Load {
  total: number;
}

async function drive(port: number, path: string, bodies: readonly string[], connections: number, seconds: number): Promise<CountedLoad> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections,
    duration: seconds,
    requests: bodies.map((body) => ({ method: 'POST' as const, path, headers: { 'content-type': 'application/json' }, body }))
  });
  const failed = result.non2xx + result.errors + result.timeouts;
  // A 429 (rate limit) or 503 (overloaded) answer is a failure too: the figures are of answered decisions.
  if (failed > 0) {
    throw new Error(`${failed} of ${result.requests.total} requests to port ${port} failed (non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}; statuses ${JSON.stringify(result.statusCodeStats)})`);
  }
  return { reqPerSec: result.requests.total / result.duration, p99: result.latency.p99, total: result.requests.total };
}

interface Figure {
  id: string;
  label: string;
  value: number;
  display: string;
  target: string;
  met: boolean;
}
const figures: Figure[] = [];
/** Part (b)'s range decisions/s, the baseline of part (d). */
let batchedRangesPerSec: number | null = null;

// ---- (c) serializing one answer listing 10,000 flush ranges ---------------------------------
// First, in a process whose heap holds nothing else yet (no load generator, no bodies).

if (PARTS.has('c')) {
  const { DecisionBuilder } = await import('../src/domain/index.js');
  const { decisionWire } = await import('../src/http/wire.js');
  const { compileSerializer } = await import('../src/http/compiled-wire.js');
  const { Decision } = await import('../src/contract/decision.js');
  const { serializerCompiler } = await import('fastify-type-provider-zod');
  // An unpin of 10,000 ranges scattered in host memory: every one flushed, none coalesced.
  const out = new DecisionBuilder();
  for (let i = 0; i < SERIALIZED_RANGES; i++) out.flush(HPA_BASE / 4096 + 2 * i * 512, 512, 'unpin');
  out.reason('F3', `unmap, then flush ${SERIALIZED_RANGES} range(s) before the pages are released: flushOnUnpin is set`);
  const decision = out.build(true);
  const compiled = compileSerializer(Decision);
  const zod = serializerCompiler({ schema: Decision, method: 'POST', url: '/v1/vms/:vmId/unpins' });
  const time = (serialize: (data: unknown) => string): number[] => {
    const times: number[] = [];
    for (let i = 0; i < 5 + SERIALIZE_RUNS; i++) {
      const t = performance.now();
      const bytes = serialize(decisionWire(decision, 7, { jobId: 'fj-00000000-0000-4000-8000-000000000000' }));
      if (bytes.length < SERIALIZED_RANGES * 30) throw new Error('the answer does not list every range');
      if (i >= 5) times.push(performance.now() - t);
    }
    return times;
  };
  const fast = median(time(compiled));
  const slow = median(time(zod));
  const bytes = compiled(decisionWire(decision, 7)).length;
  console.log('');
  console.log(`(c) one pin or unpin answer listing ${SERIALIZED_RANGES.toLocaleString('en-US')} flush ranges (${(bytes / 1024).toFixed(0)} KiB): decision to wire form to JSON, in this process; median of ${SERIALIZE_RUNS} after 5 warm-up runs`);
  console.log('');
  console.log('| serializer | ms per answer |');
  console.log('|---|---:|');
  console.log(`| compiled from the Decision schema (what the routes use) | ${fast.toFixed(2)} |`);
  console.log(`| zod serializer (baseline) | ${slow.toFixed(2)} |`);
  console.log(`| ratio zod / compiled | ${(slow / fast).toFixed(1)}x |`);
  figures.push({
    id: 'answer-10k-ranges-ms',
    label: 'Serializing one pin answer listing 10,000 flush ranges',
    value: Math.round(fast * 100) / 100,
    display: `${fast.toFixed(2)} ms (zod serializer ${slow.toFixed(1)} ms)`,
    target: `<= ${SERIALIZE_TARGET_MS} ms`,
    met: fast <= SERIALIZE_TARGET_MS
  });
}

// ---- (a) one range: the decision route against a bare Fastify route --------------------------
// The service as a user runs it: the default store (SQLite, here in a directory of its own), the
// default rate limit, overload protection and metrics, no tokens; only its access log is off
// (LOG_LEVEL=warn), and the baseline's too.

if (PARTS.has('a')) {
  const dataDir = mkdtempSync(join(tmpdir(), 'coherency-bench-decisions-'));
  const quiet = { LOG_LEVEL: 'warn' };
  const service = await start('src/server.ts', PORT, '/readyz', { ...quiet, STORE: undefined, DATA_DIR: dataDir, RATE_LIMIT: undefined, MAX_EVENT_LOOP_DELAY_MS: undefined });
  const setup = new Pool(`http://127.0.0.1:${PORT}`, { connections: 2 });
  try {
    const vm = 'single';
    const decisionPath = `/v1/vms/${vm}/decisions/flush`;
    await call(setup, 'PUT', `/v1/vms/${vm}`, { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    await call(setup, 'PUT', `/v1/vms/${vm}/domains/d0`, { enforceCacheCoherency: false });
    await call(setup, 'PUT', `/v1/vms/${vm}/devices/0000:00:02.0`, { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'enabled' });
    const pins = Array.from({ length: 64 }, (_, k) => ({ iova: `0x${(k * STRIDE).toString(16)}`, hpa: `0x${(HPA_BASE + k * STRIDE).toString(16)}`, length: '0x2000' }));
    await call(setup, 'POST', `/v1/vms/${vm}/pins`, { ranges: pins });
    const single = JSON.stringify({ op: 'unmap', ranges: [{ iova: '0x8000', length: '0x2000' }] });
    const answer = await call(setup, 'POST', decisionPath, JSON.parse(single));
    const bare = await start('bench/bare-fastify.ts', BARE_PORT, '/', { ...quiet, BARE_ANSWER: JSON.stringify(answer) });
    const rounds: { decision: CountedLoad[]; bare: Load[] } = { decision: [], bare: [] };
    let warm: CountedLoad | undefined;
    try {
      // Warm both (JIT) before measuring.
      warm = await drive(PORT, decisionPath, [single], SINGLE_CONNECTIONS, 2);
      await drive(BARE_PORT, decisionPath, [single], SINGLE_CONNECTIONS, 2);
      for (let round = 0; round < RUNS; round++) {
        rounds.decision.push(await drive(PORT, decisionPath, [single], SINGLE_CONNECTIONS, SINGLE_SECONDS));
        rounds.bare.push(await drive(BARE_PORT, decisionPath, [single], SINGLE_CONNECTIONS, SINGLE_SECONDS));
      }
    } finally {
      await stop(bare);
    }
    const decisionRps = median(rounds.decision.map((r) => r.reqPerSec));
    const bareRps = median(rounds.bare.map((r) => r.reqPerSec));
    const ratio = decisionRps / bareRps;
    console.log('');
    console.log(`(a) one-range decision (POST decisions/flush, op unmap, F3 flush answer) vs a bare Fastify route answering the same JSON;`);
    console.log(`    the service in its default configuration (SQLite store, rate limit, overload protection, metrics, request ids; no tokens), both servers without access logs (LOG_LEVEL=warn);`);
    console.log(`    autocannon, ${SINGLE_CONNECTIONS} connections, ${SINGLE_SECONDS} s per round, rounds alternating; median of ${RUNS} rounds each; every answer 200 (no 429, no 503)`);
    console.log('');
    console.log('| server | req/s (median) | req/s per round | p99 ms (median) |');
    console.log('|---|---:|---|---:|');
    for (const [name, loads] of [
      ['decision route', rounds.decision],
      ['bare Fastify route (baseline)', rounds.bare]
    ] as const) {
      console.log(`| ${name} | ${fmt(median(loads.map((r) => r.reqPerSec)))} | ${loads.map((r) => fmt(r.reqPerSec)).join(', ')} | ${median(loads.map((r) => r.p99)).toFixed(2)} |`);
    }
    console.log(`| ratio decision / bare | ${ratio.toFixed(3)} | | |`);
    // All of this load comes from one address without a token: one rate-limit key. It stays
    // under the default limit (600,000 a minute), so no answer was a 429 (drive checks).
    const sent = (warm?.total ?? 0) + rounds.decision.reduce((n, r) => n + r.total, 0);
    console.log('');
    console.log(`    ${sent.toLocaleString('en-US')} decisions in all from one client address (one rate-limit key), under the default limit of 600,000 a minute`);
    figures.push({
      id: 'decision-ratio',
      label: 'One-range decision req/s as a fraction of a bare Fastify route (default configuration, no access logs)',
      value: Math.round(ratio * 1000) / 1000,
      display: `${ratio.toFixed(2)} (${fmt(decisionRps)} vs ${fmt(bareRps)} req/s)`,
      target: `>= ${RATIO_TARGET}`,
      met: ratio >= RATIO_TARGET
    });
  } finally {
    await setup.close();
    await stop(service);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const server = PARTS.has('b') ? await start('src/server.ts', PORT, '/readyz') : null;
const pool = new Pool(`http://127.0.0.1:${PORT}`, { connections: 2 });
try {
  // ---- (b) batched decisions: 10,000 ranges a request -----------------------------------------

  if (PARTS.has('b')) {
    const big = 'batched';
    const batchPath = `/v1/vms/${big}/decisions/flush`;
    const hex = (n: number): string => `0x${n.toString(16)}`;
    const pinBatch = (from: number, to: number): { iova: string; hpa: string; length: string; memType?: 'UC'; mmio?: boolean }[] => {
      const ranges = [];
      for (let k = from; k < to; k++) {
        const mmio = k % 10 === 9;
        ranges.push({ iova: hex(k * STRIDE), hpa: hex(HPA_BASE + k * STRIDE), length: '0x2000', ...(mmio ? { memType: 'UC' as const, mmio: true } : {}) });
      }
      return ranges;
    };
    await call(pool, 'PUT', `/v1/vms/${big}`, { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    await call(pool, 'PUT', `/v1/vms/${big}/domains/d0`, { enforceCacheCoherency: false });
    await call(pool, 'PUT', `/v1/vms/${big}/devices/0000:00:02.0`, { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'disabled' });
    for (let k = 0; k < PINNED / 2; k += BATCH_RANGES) await call(pool, 'POST', `/v1/vms/${big}/pins`, { ranges: pinBatch(k, k + BATCH_RANGES) });
    // Enabling No Snoop exposes d0: the replay flags the first half; disabling it again leaves
    // those flags set (F3) and lets the second half be pinned unflagged.
    await call(pool, 'POST', `/v1/vms/${big}/devices/0000:00:02.0/devctl?wait=true`, { nosnoopEnable: true });
    await call(pool, 'POST', `/v1/vms/${big}/devices/0000:00:02.0/devctl?wait=true`, { nosnoopEnable: false });
    for (let k = PINNED / 2; k < PINNED; k += BATCH_RANGES) await call(pool, 'POST', `/v1/vms/${big}/pins`, { ranges: pinBatch(k, k + BATCH_RANGES) });

    // Deterministic bodies: half hits (a pinned range or its first page), half misses (a gap);
    // three unmap bodies and one map body.
    let seed = 0x2545f491;
    const rand = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const bodies: string[] = [];
    /** The real route's answer to each body, by the body's first iova: what the bare route sends. */
    const answers: Record<string, string> = {};
    const mix = { required: 0, results: 0 };
    for (let b = 0; b < BATCH_BODIES; b++) {
      // The query is a dry run of its change: an unmap names whole pinned ranges (as an unpin
      // must); a map mixes pinned ranges (a replay preview) and gaps (a pin preview).
      const map = b === BATCH_BODIES - 1;
      const ranges = [];
      for (let i = 0; i < BATCH_RANGES; i++) {
        // A map's gaps are distinct (a pin batch may not overlap itself): one per 12 slots.
        const k = map ? i * 12 + rand(12) : rand(PINNED);
        const hit = !map || rand(2) === 0;
        ranges.push(hit ? { iova: hex(k * STRIDE), length: '0x2000' } : { iova: hex(k * STRIDE + 0x2000), length: '0x1000' });
      }
      const body = JSON.stringify({ op: map ? 'map' : 'unmap', ranges });
      const res = await pool.request({ method: 'POST', path: batchPath, headers: { 'content-type': 'application/json' }, body });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`POST ${batchPath}: ${res.statusCode} ${text.slice(0, 300)}`);
      const first = (ranges[0] as { iova: string }).iova;
      if (first in answers) throw new Error('two bodies start with the same range');
      answers[first] = text;
      const check = JSON.parse(text) as Record<string, unknown>;
      const results = check['results'] as { required: boolean }[];
      if (results.length !== BATCH_RANGES) throw new Error(`expected ${BATCH_RANGES} results, got ${results.length}`);
      mix.results += results.length;
      mix.required += results.filter((r) => r.required).length;
      bodies.push(body);
    }
    const bodyKiB = bodies.reduce((s, b) => s + b.length, 0) / bodies.length / 1024;
    await drive(PORT, batchPath, bodies, BATCH_CONNECTIONS, 2);
    const batched: Load[] = [];
    for (let run = 0; run < RUNS; run++) batched.push(await drive(PORT, batchPath, bodies, BATCH_CONNECTIONS, BATCH_SECONDS));
    const reqPerSec = median(batched.map((r) => r.reqPerSec));
    const rangesPerSec = reqPerSec * BATCH_RANGES;
    // The bare route: parses the same bodies and sends the same answer bytes, in its own process.
    const answersFile = join(mkdtempSync(join(tmpdir(), 'coherency-bench-answers-')), 'answers.json');
    writeFileSync(answersFile, JSON.stringify(answers));
    const bareBatch = await start('bench/bare-fastify.ts', BARE_PORT, '/', { BARE_ANSWERS_FILE: answersFile });
    const bareRuns: Load[] = [];
    try {
      await drive(BARE_PORT, batchPath, bodies, BATCH_CONNECTIONS, 2);
      for (let run = 0; run < RUNS; run++) bareRuns.push(await drive(BARE_PORT, batchPath, bodies, BATCH_CONNECTIONS, BATCH_SECONDS));
    } finally {
      await stop(bareBatch);
      rmSync(dirname(answersFile), { recursive: true, force: true });
    }
    batchedRangesPerSec = rangesPerSec;
    const bareReqPerSec = median(bareRuns.map((r) => r.reqPerSec));
    const batchRatio = reqPerSec / bareReqPerSec;
    console.log('');
    console.log(`(b) batched decisions: ${BATCH_BODIES} distinct bodies of ${BATCH_RANGES.toLocaleString('en-US')} ranges (${bodyKiB.toFixed(0)} KiB each; 3 unmap, 1 map; half hits, half misses; ${((100 * mix.required) / mix.results).toFixed(0)}% of ranges require a flush)`);
    console.log(`    against a VM of ${PINNED.toLocaleString('en-US')} pinned ranges (half flagged flushOnUnpin, a tenth UC mmio); autocannon, ${BATCH_CONNECTIONS} connections, ${BATCH_SECONDS} s windows; median of ${RUNS}`);
    console.log('');
    console.log('| figure | median | per run |');
    console.log('|---|---:|---|');
    console.log(`| requests/s | ${fmt(reqPerSec)} | ${batched.map((r) => fmt(r.reqPerSec)).join(', ')} |`);
    console.log(`| range decisions/s | ${fmt(rangesPerSec)} | ${batched.map((r) => fmt(r.reqPerSec * BATCH_RANGES)).join(', ')} |`);
    console.log(`| p99 latency ms | ${median(batched.map((r) => r.p99)).toFixed(1)} | ${batched.map((r) => r.p99.toFixed(1)).join(', ')} |`);
    console.log(`| bare route parsing the same bodies, sending the same answer bytes, requests/s (baseline) | ${fmt(bareReqPerSec)} | ${bareRuns.map((r) => fmt(r.reqPerSec)).join(', ')} |`);
    console.log(`| ratio decisions / bare | ${batchRatio.toFixed(2)}x | |`);
    figures.push({
      id: 'batched-vs-bare',
      label: 'Batched decisions (10,000 ranges) req/s as a fraction of a bare route moving the same JSON',
      value: Math.round(batchRatio * 1000) / 1000,
      display: `${batchRatio.toFixed(2)}x (${fmt(reqPerSec)} vs ${fmt(bareReqPerSec)} req/s)`,
      target: `>= ${BATCH_RATIO_TARGET}x`,
      met: batchRatio >= BATCH_RATIO_TARGET
    });
    figures.push({
      id: 'batched-range-decisions-per-s',
      label: 'Range decisions per second, batches of 10,000 ranges',
      value: Math.round(rangesPerSec),
      display: `${fmt(rangesPerSec)} /s`,
      target: `>= ${BATCH_TARGET.toLocaleString('en-US')} /s`,
      met: rangesPerSec >= BATCH_TARGET
    });
  }
} finally {
  await pool.close();
  if (server !== null) await stop(server);
}

// ---- (d) batched pins and unpins on the durable store ----------------------------------------

if (PARTS.has('d')) {
  const dataDir = mkdtempSync(join(tmpdir(), 'coherency-bench-batched-writes-'));
  const durable = await start('src/server.ts', PORT, '/readyz', { STORE: 'sqlite', DATA_DIR: dataDir });
  const writes = new Pool(`http://127.0.0.1:${PORT}`, { connections: 2 });
  try {
    const vm = 'writes';
    await call(writes, 'PUT', `/v1/vms/${vm}`, { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    await call(writes, 'PUT', `/v1/vms/${vm}/domains/d0`, { enforceCacheCoherency: false });
    await call(writes, 'PUT', `/v1/vms/${vm}/devices/0000:00:02.0`, { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'enabled' });
    // Each connection pins 10,000 ranges of a region of its own (every one flushed: the domain is
    // exposed) and unpins them again (every one flushed again: flushOnUnpin), over and over.
    const hex = (n: number): string => `0x${n.toString(16)}`;
    // Regions are handed out at a pin and taken back once its unpin was answered (autocannon
    // starts each pin-unpin round with a fresh context); twice as many as connections.
    const regions = Array.from({ length: 2 * BATCH_CONNECTIONS }, (_, c) => {
      const base = (c + 1) * 0x40_0000_0000;
      const pins = [];
      const unpins = [];
      for (let k = 0; k < BATCH_RANGES; k++) {
        pins.push({ iova: hex(base + k * STRIDE), hpa: hex(HPA_BASE + base + 2 * k * STRIDE), length: '0x2000' });
        unpins.push({ iova: hex(base + k * STRIDE), length: '0x2000' });
      }
      return { pin: JSON.stringify({ ranges: pins }), unpin: JSON.stringify({ ranges: unpins }) };
    });
    let free: number[] = [];
    // Each answer's flush job is acknowledged before the next change, as a VMM does (a missing
    // job id acknowledges `none`: a 404, counted as a failure).
    const JOB_ID = /"jobId":"([^"]+)"/;
    const ack = (key: 'pinJob' | 'unpinJob') => ({
      method: 'POST' as const,
      path: '/v1/flush-jobs/none/ack',
      setupRequest: (req: autocannon.Request, context: object) => ({ ...req, path: `/v1/flush-jobs/${(context as Record<string, string | undefined>)[key] ?? 'none'}/ack` })
    });
    const load = async (seconds: number): Promise<Load> => {
      free = regions.map((_, i) => i);
      await unpinAll();
      const result = await autocannon({
        url: `http://127.0.0.1:${PORT}`,
        connections: BATCH_CONNECTIONS,
        duration: seconds,
        requests: [
          {
            method: 'POST',
            path: `/v1/vms/${vm}/pins`,
            headers: { 'content-type': 'application/json' },
            setupRequest: (req, context) => {
              const c = context as { region?: number };
              const region = free.pop();
              if (region === undefined) throw new Error('no free region: more pins in flight than regions');
              c.region = region;
              return { ...req, body: (regions[c.region] as { pin: string }).pin };
            },
            onResponse: (_status, body, context) => {
              (context as { pinJob?: string }).pinJob = JOB_ID.exec(body)?.[1];
            }
          },
          ack('pinJob'),
          {
            method: 'POST',
            path: `/v1/vms/${vm}/unpins`,
            headers: { 'content-type': 'application/json' },
            setupRequest: (req, context) => ({ ...req, body: (regions[(context as { region: number }).region] as { unpin: string }).unpin }),
            onResponse: (_status, body, context) => {
              (context as { unpinJob?: string }).unpinJob = JOB_ID.exec(body)?.[1];
              free.push((context as { region: number }).region);
            }
          },
          ack('unpinJob')
        ]
      });
      const failed = result.non2xx + result.errors + result.timeouts;
      if (failed > 0) {
        throw new Error(`${failed} of ${result.requests.total} batched writes failed (non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}; statuses ${JSON.stringify(result.statusCodeStats)})`);
      }
      // Pins and unpins (half the requests; the others are their acknowledgements).
      return { reqPerSec: result.requests.total / 2 / result.duration, p99: result.latency.p99 };
    };
    // Each answer lists every flush range.
    const probe = await call(writes, 'POST', `/v1/vms/${vm}/pins`, JSON.parse((regions[0] as { pin: string }).pin));
    const listed = (probe['flush'] as { rangeCount: number; rangesTruncated: boolean }).rangeCount;
    if (listed !== BATCH_RANGES || (probe['flush'] as { rangesTruncated: boolean }).rangesTruncated) throw new Error(`a batched pin answer lists ${listed} ranges`);
    await call(writes, 'POST', `/v1/flush-jobs/${(probe['flush'] as { jobId: string }).jobId}/ack`, {});
    const probed = await call(writes, 'POST', `/v1/vms/${vm}/unpins`, JSON.parse((regions[0] as { unpin: string }).unpin));
    await call(writes, 'POST', `/v1/flush-jobs/${(probed['flush'] as { jobId: string }).jobId}/ack`, {});
    // A window may end between a pin and its unpin: each starts with every region unpinned.
    const unpinAll = async (): Promise<void> => {
      for (const r of regions) {
        const res = await writes.request({ method: 'POST', path: `/v1/vms/${vm}/unpins`, headers: { 'content-type': 'application/json' }, body: r.unpin });
        const jobId = JOB_ID.exec(await res.body.text())?.[1];
        if (res.statusCode === 200 && jobId !== undefined) await (await writes.request({ method: 'POST', path: `/v1/flush-jobs/${jobId}/ack` })).body.dump();
      }
    };
    await load(2);
    const runs: Load[] = [];
    for (let run = 0; run < RUNS; run++) runs.push(await load(BATCH_SECONDS));
    const rangesPerSec = median(runs.map((r) => r.reqPerSec)) * BATCH_RANGES;
    console.log('');
    console.log(`(d) batched pins and unpins on the embedded store (SQLite, FLUSH_ACKS=required): ${BATCH_CONNECTIONS} connections, each pinning ${BATCH_RANGES.toLocaleString('en-US')} ranges of its own, acknowledging`);
    console.log(`    the answer's flush job, unpinning them again and acknowledging that job; every range flushed both ways, every answer listing its`);
    console.log(`    ${BATCH_RANGES.toLocaleString('en-US')} flush ranges; ${BATCH_SECONDS} s windows; median of ${RUNS}`);
    console.log('');
    console.log('| figure | median | per run |');
    console.log('|---|---:|---|');
    console.log(`| ranges pinned or unpinned /s | ${fmt(rangesPerSec)} | ${runs.map((r) => fmt(r.reqPerSec * BATCH_RANGES)).join(', ')} |`);
    console.log(`| p99 latency ms | ${median(runs.map((r) => r.p99)).toFixed(1)} | ${runs.map((r) => r.p99.toFixed(1)).join(', ')} |`);
    if (batchedRangesPerSec !== null) {
      const ratio = rangesPerSec / batchedRangesPerSec;
      console.log(`| ratio to batched decisions (part b, ${fmt(batchedRangesPerSec)} ranges/s) | ${ratio.toFixed(2)}x | |`);
      figures.push({
        id: 'batched-writes-vs-decisions',
        label: 'Batched pins + unpins (10,000 ranges, SQLite, each job acknowledged) as a fraction of batched decisions',
        value: Math.round(ratio * 1000) / 1000,
        display: `${ratio.toFixed(2)}x (${fmt(rangesPerSec)} vs ${fmt(batchedRangesPerSec)} ranges/s)`,
        target: `>= ${BATCH_WRITES_TARGET}x`,
        met: ratio >= BATCH_WRITES_TARGET
      });
    }
  } finally {
    await writes.close();
    await stop(durable);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---- (e) one-range decision latency over a Unix socket against TCP loopback ------------------

if (PARTS.has('e')) {
  const socketDir = mkdtempSync(join(tmpdir(), 'coherency-bench-socket-'));
  const socketPath = join(socketDir, 'api.sock');
  const local = await start('src/server.ts', PORT, '/readyz', { SOCKET_PATH: socketPath });
  const tcp = new Pool(`http://127.0.0.1:${PORT}`, { connections: 1 });
  const unix = new Pool('http://localhost', { connections: 1, socketPath });
  try {
    const vm = 'local';
    const path = `/v1/vms/${vm}/decisions/flush`;
    await call(tcp, 'PUT', `/v1/vms/${vm}`, { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    await call(tcp, 'PUT', `/v1/vms/${vm}/domains/d0`, { enforceCacheCoherency: false });
    await call(tcp, 'PUT', `/v1/vms/${vm}/devices/0000:00:02.0`, { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'enabled' });
    await call(tcp, 'POST', `/v1/vms/${vm}/pins`, { ranges: [{ iova: '0x8000', hpa: `0x${HPA_BASE.toString(16)}`, length: '0x2000' }] });
    const body = JSON.stringify({ op: 'unmap', ranges: [{ iova: '0x8000', length: '0x2000' }] });
    /** One client, one request at a time (a VMM asking before each unmap): each request's latency, ms. */
    const latencies = async (client: Pool, n: number): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        const res = await client.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body });
        await res.body.text();
        if (res.statusCode !== 200) throw new Error(`decision over ${client === unix ? 'the socket' : 'TCP'}: ${res.statusCode}`);
        out.push(performance.now() - t);
      }
      return out.sort((x, y) => x - y);
    };
    const at = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0;
    await latencies(tcp, 1000);
    await latencies(unix, 1000);
    const rounds: { tcp: number[][]; unix: number[][] } = { tcp: [], unix: [] };
    for (let round = 0; round < RUNS; round++) {
      rounds.tcp.push(await latencies(tcp, SOCKET_REQUESTS));
      rounds.unix.push(await latencies(unix, SOCKET_REQUESTS));
    }
    const p = (list: number[][], q: number): number => median(list.map((l) => at(l, q)));
    console.log('');
    console.log(`(e) one-range decision latency (POST decisions/flush, op unmap), one client, one request at a time (undici, keep-alive): ${SOCKET_REQUESTS.toLocaleString('en-US')} requests a round, rounds alternating; median of ${RUNS} rounds`);
    console.log('');
    console.log('| transport | p50 ms | p99 ms | p50 per round | p99 per round |');
    console.log('|---|---:|---:|---|---|');
    for (const [name, list] of [
      ['TCP loopback (baseline)', rounds.tcp],
      ['Unix domain socket (SOCKET_PATH)', rounds.unix]
    ] as const) {
      console.log(`| ${name} | ${p(list, 0.5).toFixed(3)} | ${p(list, 0.99).toFixed(3)} | ${list.map((l) => at(l, 0.5).toFixed(3)).join(', ')} | ${list.map((l) => at(l, 0.99).toFixed(3)).join(', ')} |`);
    }
    console.log(`| socket / TCP | ${(p(rounds.unix, 0.5) / p(rounds.tcp, 0.5)).toFixed(2)}x | ${(p(rounds.unix, 0.99) / p(rounds.tcp, 0.99)).toFixed(2)}x | | |`);
    figures.push({
      id: 'socket-latency',
      label: 'One-range decision latency over the Unix socket, p50 / p99 (TCP loopback in brackets)',
      value: Math.round(p(rounds.unix, 0.5) * 1000) / 1000,
      display: `${p(rounds.unix, 0.5).toFixed(3)} / ${p(rounds.unix, 0.99).toFixed(3)} ms (TCP ${p(rounds.tcp, 0.5).toFixed(3)} / ${p(rounds.tcp, 0.99).toFixed(3)} ms)`,
      target: '(reference)',
      met: true
    });
  } finally {
    await tcp.close();
    await unix.close();
    await stop(local);
    rmSync(socketDir, { recursive: true, force: true });
  }
}

console.log('');
console.log(`FIGURES ${JSON.stringify(figures)}`);
