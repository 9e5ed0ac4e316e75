/**
 * Store benchmark (npm run bench:store): acknowledged pins per second through the policy
 * service (decision + durable store, no HTTP), single pins and 1,000-range batches, for the
 * memory store (the baseline), SQLite and PostgreSQL in one run; and the restart time of a VM
 * with 1 M pinned ranges (load + replay).
 *
 * Targets: SQLite batched pins >= 50% of memory throughput; restart of 1 M ranges <= 5 s.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { DEFAULT_POLICY, parseDomainId, parseVmId, type PinInput } from '../src/domain/index.js';
import { PolicyService } from '../src/service/policy-service.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { PostgresStore } from '../src/store/postgres-store.js';
import { SqliteStore } from '../src/store/sqlite-store.js';
import type { StateStore } from '../src/store/state-store.js';
import { fmt, header, median } from './machine.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const PG_URL = process.env['BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const SINGLE = 2_000;
const BATCHES = 100;
const RESTART_RANGES = 1_000_000;
const vmId = parseVmId('bench');

header('npm run bench:store  (node --import tsx bench/store.ts)');

const cleanups: (() => Promise<void>)[] = [];
let schemaCount = 0;

function makeStore(kind: 'memory' | 'sqlite' | 'postgres'): StateStore {
  if (kind === 'memory') return new MemoryStore();
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'coherency-bench-'));
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    return new SqliteStore(dir);
  }
  const schema = `bench_${process.pid}_${schemaCount++}`;
  cleanups.push(async () => {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  });
  return new PostgresStore({ connectionString: PG_URL, schema });
}

async function service(store: StateStore): Promise<PolicyService> {
  const s = new PolicyService({ defaults: DEFAULT_POLICY, quirks: [], store });
  await s.restore();
  await s.apply({ type: 'put-vm', vmId, arch: 'x86_64', policy: { mode: 'pessimistic' } });
  await s.apply({ type: 'put-domain', vmId, domainId: parseDomainId('d0'), enforceCacheCoherency: false });
  return s;
}

function batch(start: number, n: number): PinInput[] {
  return Array.from({ length: n }, (_, k) => ({ iova: (start + k) * 2, pages: 1, hpa: start + k }));
}

/** Acknowledged single pins/s: 16 in flight at a time, as concurrent requests would be. */
async function singles(kind: 'memory' | 'sqlite' | 'postgres'): Promise<number> {
  const store = makeStore(kind);
  const s = await service(store);
  const t = performance.now();
  for (let i = 0; i < SINGLE; i += 16) {
    await Promise.all(Array.from({ length: 16 }, (_, k) => s.apply({ type: 'pin', vmId, ranges: batch(i + k, 1) })));
  }
  const rate = SINGLE / ((performance.now() - t) / 1000);
  await store.close();
  return rate;
}

/** Acknowledged pins/s in 1,000-range batches, `inflight` batches at a time. */
async function batches(kind: 'memory' | 'sqlite' | 'postgres', inflight: number): Promise<number> {
  const store = makeStore(kind);
  const s = await service(store);
  const t = performance.now();
  for (let b = 0; b < BATCHES; b += inflight) {
    await Promise.all(Array.from({ length: inflight }, (_, k) => s.apply({ type: 'pin', vmId, ranges: batch((b + k) * 1000, 1000) })));
  }
  const rate = (BATCHES * 1000) / ((performance.now() - t) / 1000);
  await store.close();
  return rate;
}

/** Time to load and replay a VM of 1 M pinned ranges (10,000-range batches) from SQLite. */
async function restart(kind: 'sqlite' | 'postgres'): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'coherency-restart-'));
  cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
  const schema = `bench_restart_${process.pid}_${schemaCount++}`;
  const open = (): StateStore => (kind === 'sqlite' ? new SqliteStore(dir) : new PostgresStore({ connectionString: PG_URL, schema }));
  if (kind === 'postgres') {
    cleanups.push(async () => {
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    });
  }
  const first = open();
  const s = await service(first);
  for (let i = 0; i < RESTART_RANGES; i += 10_000) await s.apply({ type: 'pin', vmId, ranges: batch(i, 10_000) });
  await first.close();
  const second = open();
  const t = performance.now();
  const fresh = new PolicyService({ defaults: DEFAULT_POLICY, quirks: [], store: second });
  await fresh.restore();
  const ms = performance.now() - t;
  if (fresh.vm(vmId).pinned.ranges !== RESTART_RANGES) throw new Error('restart lost ranges');
  await second.close();
  return ms;
}

const kinds = ['memory', 'sqlite', 'postgres'] as const;
const single: Record<string, number[]> = { memory: [], sqlite: [], postgres: [] };
const batched: Record<string, number[]> = { memory: [], sqlite: [], postgres: [] };
const sequential: Record<string, number[]> = { memory: [], sqlite: [], postgres: [] };
const restarts: Record<string, number[]> = { sqlite: [], postgres: [] };
try {
  for (let run = 0; run < RUNS; run++) {
    for (const kind of kinds) {
      single[kind]?.push(await singles(kind));
      batched[kind]?.push(await batches(kind, 4));
      sequential[kind]?.push(await batches(kind, 1));
    }
    restarts['sqlite']?.push(await restart('sqlite'));
    restarts['postgres']?.push(await restart('postgres'));
  }
} finally {
  for (const c of cleanups) await c();
}

const base = { single: median(single['memory'] ?? []), batched: median(batched['memory'] ?? []), sequential: median(sequential['memory'] ?? []) };
console.log('');
console.log(`acknowledged pins/s through the policy service (pessimistic mode: every pin decided and flushed); median of ${RUNS}`);
console.log('');
console.log('| store | single pins/s (16 in flight) | vs memory | pins/s, 1,000-range batches (4 in flight) | vs memory | pins/s, 1,000-range batches one at a time | vs memory |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const kind of kinds) {
  const s = median(single[kind] ?? []);
  const b = median(batched[kind] ?? []);
  const q = median(sequential[kind] ?? []);
  console.log(`| ${kind}${kind === 'memory' ? ' (baseline)' : ''} | ${fmt(s)} | ${(s / base.single).toFixed(2)}x | ${fmt(b)} | ${(b / base.batched).toFixed(2)}x | ${fmt(q)} | ${(q / base.sequential).toFixed(2)}x |`);
}
console.log('');
console.log(`restart (load + replay) of a VM with ${RESTART_RANGES.toLocaleString('en-US')} pinned ranges: SQLite ${fmt(median(restarts['sqlite'] ?? []))} ms, PostgreSQL ${fmt(median(restarts['postgres'] ?? []))} ms (median of ${RUNS})`);
