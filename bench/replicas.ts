/**
 * Replica benchmark (npm run bench:replicas): replicas on one PostgreSQL schema should add
 * capacity. Each configuration runs its replicas as `npm start` does, each in its own process on
 * 127.0.0.1 (default configuration; STORE=postgres on a schema of its own, dropped after;
 * RATE_LIMIT=0, LOG_LEVEL=warn), under the load of a VMM that acknowledges every answer's flush
 * job as the README asks (bench/vmm-load.ts, FLUSH_ACKS=required), 32 connections in all:
 *
 *   1 VM through the only replica (the baseline);
 *   8 VMs through 2 replicas, 4 VMs routed to each (VM affinity);
 *   8 VMs through 4 replicas, 2 VMs routed to each.
 *
 * And, as the bound, the same 8 VMs through 2 and through 4 servers that share nothing (a
 * schema each): what adding processes costs on this machine by itself (smaller group-commit
 * batches, more processes sharing the cores), with no replication at all.
 *
 * Configurations alternate within each run. Figures: the machine's CPU per change (/proc/stat
 * busy time of every process, the replicas, PostgreSQL and the load generator, over the changes:
 * pins and unpins) and its ratio to the baseline (target <= 1.15x with 2 and with 4 replicas);
 * changes/s and the ratio 2 replicas / 1 (target >= 0.9x; 4 / 1 for reference); and the time from
 * a write's answer on replica A to its `decision` event on a stream of replica B (no minRevision),
 * replicas otherwise quiet: median and p99 of 200 writes per run.
 *
 * BENCH_RUNS sets the runs (default 3); BENCH_SERVER=<path to server.js> measures another build
 * (e.g. an earlier commit's, built in a worktree); BENCH_CPU_PROF=<dir> writes a CPU profile of
 * every replica into dir.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { fmt, header, median, profileArgs } from './machine.js';
import { call, setUpFlushingVm, together, vmmWrites, type Load } from './vmm-load.js';

const RUNS = Math.max(1, Number(process.env['BENCH_RUNS'] ?? 3));
const PORT = Number(process.env['BENCH_PORT'] ?? 18_981);
const PG_URL = process.env['BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const SERVER = process.env['BENCH_SERVER'] ?? 'dist/server.js';
const CONNECTIONS = 32;
const SECONDS = 5;
const WARMUP_SECONDS = 2;
const VISIBILITY_WRITES = 200;
const DEADLINE_MS = 10 * 60_000;

header('npm run bench:replicas  (node --import tsx bench/replicas.ts)');
if (process.env['BENCH_SERVER'] !== undefined) console.log(`servers: ${SERVER}`);

// The servers run the built service, as `npm start` does.
if (process.env['BENCH_SERVER'] === undefined) execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });

const children = new Set<ChildProcess>();
const schemas = new Set<string>();

async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
  schemas.delete(schema);
}

function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
process.on('exit', killAll);
setTimeout(() => {
  process.stderr.write(`bench:replicas did not finish within ${DEADLINE_MS / 60_000} minutes; stopping\n`);
  killAll();
  void Promise.all([...schemas].map((s) => dropSchema(s).catch(() => undefined))).finally(() => process.exit(1));
}, DEADLINE_MS).unref();

/** A replica on `schema`, as `npm start` runs it; resolves once /readyz answers 200. */
async function startReplica(port: number, schema: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...profileArgs(), SERVER], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), STORE: 'postgres', STORE_URL: PG_URL, STORE_SCHEMA: schema, RATE_LIMIT: '0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit']
  });
  children.add(child);
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`replica exited with ${child.exitCode}`);
    const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    if (res?.status === 200) return child;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('replica did not become ready in 12 s');
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  children.delete(child);
}

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

/** CPU seconds a process has used so far (/proc/<pid>/stat: user and system time); 0 when gone. */
function processCpu(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds PostgreSQL's processes have used so far (every process named postgres). */
function postgresCpu(): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'postgres') total += processCpu(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return total;
}

/** Where the CPU went so far: the replicas, the load generator (this process), PostgreSQL, the whole machine. */
function cpuSplit(replicas: readonly ChildProcess[]): { replicas: number; load: number; postgres: number; machine: number } {
  const own = process.cpuUsage();
  return {
    replicas: replicas.reduce((n, c) => n + processCpu(c.pid), 0),
    load: (own.user + own.system) / 1e6,
    postgres: postgresCpu(),
    machine: machineCpu().busy
  };
}

/**
 * Times from a write's answer on replica `a` to its `decision` event on a stream of replica `b`
 * (ms), for VISIBILITY_WRITES writes one after the other, on VM `vm` (set up through `a`).
 */
async function visibility(a: number, b: number, vm: string): Promise<number[]> {
  await setUpFlushingVm(vm, a);
  // B knows the VM (an earlier version follows it only as it is notified; this one catches up when asked).
  for (let i = 0; i < 250; i++) {
    const known = await fetch(`http://127.0.0.1:${b}/v1/vms/${vm}`);
    await known.arrayBuffer();
    if (known.status === 200) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const seen = new Map<number, number>();
  const stopReading = new AbortController();
  const res = await fetch(`http://127.0.0.1:${b}/v1/vms/${vm}/events`, { signal: stopReading.signal });
  if (res.status !== 200) throw new Error(`events on replica B: ${res.status}`);
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
  // The stream is open before the first write.
  await new Promise((r) => setTimeout(r, 200));
  const times: number[] = [];
  for (let i = 0; i < VISIBILITY_WRITES; i++) {
    const page = 0x200000 + i;
    const path = i % 2 === 0 ? `/v1/vms/${vm}/pins` : `/v1/vms/${vm}/unpins`;
    const body = i % 2 === 0 ? { iova: `0x${(page * 4096).toString(16)}`, hpa: `0x${(page * 8192).toString(16)}`, length: '0x1000' } : { iova: `0x${((page - 1) * 4096).toString(16)}`, length: '0x1000' };
    const answer = await call('POST', path, body, a);
    const answered = performance.now();
    const revision = answer['revision'] as number;
    // The job is acknowledged (through A), as the VMM would.
    const jobId = answer['jobId'] as string | undefined;
    if (jobId !== undefined) await call('POST', `/v1/flush-jobs/${jobId}/ack`, {}, a);
    for (let w = 0; w < 5000 && !seen.has(revision); w++) await new Promise((r) => setTimeout(r, 0.2));
    const at = seen.get(revision);
    if (at === undefined) throw new Error(`replica B never told of revision ${revision}`);
    times.push(Math.max(0, at - answered));
  }
  stopReading.abort();
  await reading;
  return times;
}

/**
 * Without VM affinity: the first request on replica `b` about a VM made through replica `a`
 * (B catches up on it first: one query) against the next one (answered from memory), ms each.
 */
async function firstRequest(a: number, b: number, count: number): Promise<{ first: number[]; next: number[] }> {
  const first: number[] = [];
  const next: number[] = [];
  for (let i = 0; i < count; i++) {
    const vm = `c${i}`;
    await call('PUT', `/v1/vms/${vm}`, { arch: 'x86_64' }, a);
    await call('PUT', `/v1/vms/${vm}/domains/d0`, { enforceCacheCoherency: true }, a);
  }
  const get = async (vm: string): Promise<number> => {
    const t = performance.now();
    const res = await fetch(`http://127.0.0.1:${b}/v1/vms/${vm}`);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`GET /v1/vms/${vm} on replica B: ${res.status}`);
    return performance.now() - t;
  };
  for (let i = 0; i < count; i++) {
    first.push(await get(`c${i}`));
    next.push(await get(`c${i}`));
  }
  return { first, next };
}

interface Measured {
  readonly load: Load;
  /** Machine CPU per change (ms). */
  readonly cpuPerChange: number;
  /** Of it (ms per change): the replicas', the load generator's, PostgreSQL's. */
  readonly split: { readonly replicas: number; readonly load: number; readonly postgres: number };
  /** Share of the machine busy. */
  readonly busy: number;
}

/**
 * `replicas` replicas on a fresh schema, 8 VMs (1 for a single replica) routed to them in turn,
 * each VM set up through its replica; a warm-up, then the measured load. With `visible`, the
 * visibility from replica 0 to replica 1 first.
 */
async function configuration(
  replicas: number,
  vmCount: number,
  run: number,
  shared: boolean,
  visible?: number[],
  unrouted?: { first: number[]; next: number[] }
): Promise<Measured> {
  // Shared: one schema for all (replicas); otherwise one each (independent servers, the bound).
  const schemaOf = (r: number): string => `bench_replicas_${process.pid}_${run}_${replicas}${shared ? '' : `_own${r}`}`;
  const ports = Array.from({ length: replicas }, (_, i) => PORT + i);
  for (let r = 0; r < replicas; r++) schemas.add(schemaOf(r));
  const started: ChildProcess[] = [];
  try {
    for (let r = 0; r < replicas; r++) started.push(await startReplica(ports[r] as number, schemaOf(r)));
    // VM i is routed to replica i mod replicas (VM affinity).
    const routed = ports.map((_, r) => Array.from({ length: vmCount }, (_, i) => `r${i}`).filter((_, i) => i % replicas === r));
    for (let r = 0; r < replicas; r++) for (const vm of routed[r] as string[]) await setUpFlushingVm(vm, ports[r] as number);
    if (visible !== undefined) visible.push(...(await visibility(ports[0] as number, ports[1] as number, 'lat')));
    if (unrouted !== undefined) {
      const { first, next } = await firstRequest(ports[0] as number, ports[1] as number, 50);
      unrouted.first.push(...first);
      unrouted.next.push(...next);
    }
    const loads = (seconds: number): Promise<Load> =>
      Promise.all(ports.map((port, r) => vmmWrites({ port, vms: routed[r] as string[], connections: CONNECTIONS / replicas, seconds, acks: true }))).then(together);
    await loads(WARMUP_SECONDS);
    const before = machineCpu();
    const splitBefore = cpuSplit(started);
    const load = await loads(SECONDS);
    const splitAfter = cpuSplit(started);
    const after = machineCpu();
    if (load.errors > 0) {
      // Which answers they were, per replica (the service's own request counts).
      for (const port of ports) {
        const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const failed = metrics.split('\n').filter((l) => l.includes('_count{') && /status="[45]\d\d"/.test(l) && !l.includes('/readyz'));
        process.stderr.write(`replica on port ${port}:\n${failed.join('\n')}\n`);
      }
      throw new Error(`${load.errors} errors under load (${replicas} replicas)`);
    }
    const busy = after.busy - before.busy;
    const changes = Math.max(1, load.changesPerSec * load.seconds);
    const per = (k: 'replicas' | 'load' | 'postgres'): number => ((splitAfter[k] - splitBefore[k]) * 1000) / changes;
    return {
      load,
      cpuPerChange: (busy * 1000) / changes,
      split: { replicas: per('replicas'), load: per('load'), postgres: per('postgres') },
      busy: busy / Math.max(1e-9, after.all - before.all)
    };
  } finally {
    for (const child of started) await stop(child);
    for (let r = 0; r < replicas; r++) if (schemas.has(schemaOf(r))) await dropSchema(schemaOf(r));
  }
}

/**
 * The bounds: the same load through 2 and 4 servers that share nothing (a schema each), which
 * is what replicas that add capacity would cost at best on this machine.
 */
const CONFIGS = [
  { key: 'one', replicas: 1, vms: 1, shared: true, label: '1 VM through the only replica (baseline)' },
  { key: 'two', replicas: 2, vms: 8, shared: true, label: '8 VMs through 2 replicas (4 each)' },
  { key: 'four', replicas: 4, vms: 8, shared: true, label: '8 VMs through 4 replicas (2 each)' },
  { key: 'twoApart', replicas: 2, vms: 8, shared: false, label: 'bound: 8 VMs through 2 servers sharing nothing' },
  { key: 'fourApart', replicas: 4, vms: 8, shared: false, label: 'bound: 8 VMs through 4 servers sharing nothing' }
] as const;
type Key = (typeof CONFIGS)[number]['key'];

const results: Record<Key, Measured[]> = { one: [], two: [], four: [], twoApart: [], fourApart: [] };
const visible: number[] = [];
const unrouted = { first: [] as number[], next: [] as number[] };
for (let run = 0; run < RUNS; run++) {
  // Alternating within each run (rotated between runs), so that whatever else the machine does falls on all alike.
  for (let k = 0; k < CONFIGS.length; k++) {
    const c = CONFIGS[(k + run) % CONFIGS.length] as (typeof CONFIGS)[number];
    const watched = c.key === 'two';
    results[c.key].push(await configuration(c.replicas, c.vms, run, c.shared, watched ? visible : undefined, watched ? unrouted : undefined));
  }
}

// ---- report ---------------------------------------------------------------------------------

const cpu = (k: Key): number => median(results[k].map((m) => m.cpuPerChange));
const rate = (k: Key): number => median(results[k].map((m) => m.load.changesPerSec));
const cpuTwo = cpu('two') / cpu('one');
const cpuFour = cpu('four') / cpu('one');
const rateTwo = rate('two') / rate('one');
const rateFour = rate('four') / rate('one');
const sortedVisible = [...visible].sort((x, y) => x - y);
const visMedian = median(sortedVisible);
const visP99 = sortedVisible[Math.floor(sortedVisible.length * 0.99)] ?? 0;

console.log('');
console.log(`PostgreSQL replicas, single-page pin, ack, unpin, ack (FLUSH_ACKS=required), ${CONNECTIONS} connections in all, autocannon ${SECONDS} s windows; median of ${RUNS}`);
console.log('');
console.log('| configuration | CPU per change, ms (median) | per run | changes/s (median) | per run | machine busy (median) |');
console.log('|---|---:|---|---:|---|---:|');
for (const c of CONFIGS) {
  const m = results[c.key];
  console.log(
    `| ${c.label} | ${cpu(c.key).toFixed(2)} | ${m.map((x) => x.cpuPerChange.toFixed(2)).join(', ')} | ${fmt(rate(c.key))} | ${m.map((x) => fmt(x.load.changesPerSec)).join(', ')} | ${(median(m.map((x) => x.busy)) * 100).toFixed(0)}% |`
  );
}
console.log('');
console.log('Where it went (ms per change, median): the replicas\' processes, the load generator, PostgreSQL (all its processes), the rest of the machine (other processes):');
console.log('');
console.log('| configuration | replicas | load generator | PostgreSQL | rest |');
console.log('|---|---:|---:|---:|---:|');
for (const c of CONFIGS) {
  const m = results[c.key];
  const part = (k: 'replicas' | 'load' | 'postgres'): number => median(m.map((x) => x.split[k]));
  const rest = median(m.map((x) => x.cpuPerChange - x.split.replicas - x.split.load - x.split.postgres));
  console.log(`| ${c.label} | ${part('replicas').toFixed(2)} | ${part('load').toFixed(2)} | ${part('postgres').toFixed(2)} | ${rest.toFixed(2)} |`);
}
console.log('');
console.log('| figure | value | target |');
console.log('|---|---:|---|');
console.log(`| CPU per change, 2 replicas / 1 | ${cpuTwo.toFixed(2)}x | <= 1.15x |`);
console.log(`| CPU per change, 4 replicas / 1 | ${cpuFour.toFixed(2)}x | <= 1.15x |`);
console.log(`| changes/s, 2 replicas / 1 | ${rateTwo.toFixed(2)}x | >= 0.9x |`);
console.log(`| changes/s, 4 replicas / 1 | ${rateFour.toFixed(2)}x | (reference) |`);
console.log(`| bound: CPU per change, 2 / 4 servers sharing nothing / 1 | ${(cpu('twoApart') / cpu('one')).toFixed(2)}x / ${(cpu('fourApart') / cpu('one')).toFixed(2)}x | |`);
console.log(`| bound: changes/s, 2 / 4 servers sharing nothing / 1 | ${(rate('twoApart') / rate('one')).toFixed(2)}x / ${(rate('fourApart') / rate('one')).toFixed(2)}x | |`);
console.log(`| write on A to its event on B's stream, ms (median / p99 of ${sortedVisible.length}) | ${visMedian.toFixed(2)} / ${visP99.toFixed(2)} | |`);
console.log(
  `| without affinity: GET /v1/vms/{vmId} on B of a VM made through A, first request / next, ms (median of ${unrouted.first.length}) | ${median(unrouted.first).toFixed(2)} / ${median(unrouted.next).toFixed(2)} | |`
);
console.log('');
console.log(
  `FIGURES ${JSON.stringify([
    {
      id: 'replicas-cpu-2',
      label: 'PostgreSQL: CPU per change, 8 VMs through 2 replicas / 1 VM through the only replica',
      value: cpuTwo,
      display: `${cpuTwo.toFixed(2)}x (${cpu('two').toFixed(2)} vs ${cpu('one').toFixed(2)} ms)`,
      target: '<= 1.15x',
      met: cpuTwo <= 1.15
    },
    {
      id: 'replicas-cpu-4',
      label: 'PostgreSQL: CPU per change, 8 VMs through 4 replicas / 1 VM through the only replica',
      value: cpuFour,
      display: `${cpuFour.toFixed(2)}x (${cpu('four').toFixed(2)} ms)`,
      target: '<= 1.15x',
      met: cpuFour <= 1.15
    },
    {
      id: 'replicas-throughput',
      label: 'PostgreSQL: changes/s, 2 replicas / 1 (4 replicas / 1 for reference)',
      value: rateTwo,
      display: `${rateTwo.toFixed(2)}x (${fmt(rate('one'))} -> ${fmt(rate('two'))} -> ${fmt(rate('four'))} changes/s; 4/1 ${rateFour.toFixed(2)}x)`,
      target: '>= 0.9x',
      met: rateTwo >= 0.9
    },
    {
      id: 'replica-visibility',
      label: "PostgreSQL: write on replica A to its event on replica B's stream (median, p99)",
      value: visMedian,
      display: `${visMedian.toFixed(2)} ms, p99 ${visP99.toFixed(2)} ms`,
      target: '',
      met: true
    }
  ])}`
);
killAll();
process.exit(0);
