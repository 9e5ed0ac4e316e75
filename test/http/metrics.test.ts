/**
 * The metrics an operator watches, against a real listening server on the embedded store (and
 * on PostgreSQL for its change transactions and an outage): store commits are timed once per
 * commit, `coherency_store_up` follows the store check of /readyz, open event streams are
 * counted as they open and end, flushes awaiting their VMM's ack are counted until acknowledged
 * or covered by a teardown, and acknowledged bytes are counted once, apart from planned ones.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, parseDomainId, parsePciAddress, parseQuirkFile, parseVmId } from '../../src/domain/index.js';
import { createRuntime, type Runtime, type RuntimeOptions } from '../../src/service/runtime.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { build } from '../helpers/app.js';
import { dropSchemas, freshSchema, PG_URL } from '../helpers/postgres.js';

const apps: FastifyInstance[] = [];
const runtimes: Runtime[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
  for (const r of runtimes.splice(0)) await r.close();
});
const dirs: string[] = [];
const schemas: string[] = [];
afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await dropSchemas(schemas);
});

type Body = Record<string, unknown> & { flush?: { jobId?: string; required?: boolean } };

/** A real server on 127.0.0.1 (an ephemeral port) over `options`' store, restored and ready. */
async function serve(options: Partial<RuntimeOptions>): Promise<{ base: string; app: FastifyInstance }> {
  const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile({ quirks: [] }), threads: 1, windowMs: 0, ...options });
  const app = await build({ runtime });
  apps.push(app);
  await runtime.start();
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  return { base, app };
}

async function call(base: string, method: string, path: string, payload?: object): Promise<{ status: number; body: Body }> {
  const res = await fetch(base + path, { method, ...(payload === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) }) });
  return { status: res.status, body: (await res.json()) as Body };
}

async function ok(base: string, method: string, path: string, payload?: object): Promise<Body> {
  const res = await call(base, method, path, payload);
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** The value of one series in GET /metrics (labels as written, in order), or undefined when absent. */
async function sample(base: string, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Waits (at most 5 s) until the series reads `value`. */
async function reads(base: string, series: string, value: number): Promise<void> {
  let last: number | undefined;
  for (let i = 0; i < 100; i++) {
    last = await sample(base, series);
    if (last === value) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${series} reads ${String(last)}, not ${value}`);
}

const X = '0000:01:00.0';
const NIC = { vendorId: '0x10ee', deviceId: '0x903f', function: 'pf' };

/** vm1 (trap, onEnable allow): X in non-coherent d0, its bit clear, one page pinned: nothing flushed yet. */
async function quietVm(base: string): Promise<void> {
  await ok(base, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
  await ok(base, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
  await ok(base, 'PUT', `/v1/vms/vm1/devices/${X}`, { domainId: 'd0', ...NIC, nosnoop: 'disabled' });
  expect((await ok(base, 'POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x100000', length: '0x3000' })).flush?.required).toBe(false);
}

/** Enables X: its replay of the pinned pages is a job the VMM must acknowledge; returns its id, once planned. */
async function replay(base: string): Promise<string> {
  const enable = await ok(base, 'POST', `/v1/vms/vm1/devices/${X}/devctl`, { nosnoopEnable: true });
  expect(enable.flush?.required).toBe(true);
  const id = enable.flush?.jobId as string;
  await ok(base, 'GET', `/v1/flush-jobs/${id}/ranges`); // planned
  return id;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'coherency-metrics-'));
  dirs.push(dir);
  return dir;
}

const FLUSHED = 'coherency_flushed_bytes_total{arch="x86_64",method="clflushopt"}';
const ACKED = 'coherency_flush_acknowledged_bytes_total{arch="x86_64",method="clflushopt"}';

describe('metrics an operator watches', () => {
  it('coherency_store_commit_seconds: one observation per commit of the embedded store, not per change', async () => {
    const { base } = await serve({ store: new SqliteStore(tempDir()) });
    const before = (await sample(base, 'coherency_store_commit_seconds_count')) ?? 0;
    await ok(base, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await ok(base, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
    const after = (await sample(base, 'coherency_store_commit_seconds_count')) ?? 0;
    // Each change waits for its commit before it is answered: two changes, at least two commits.
    expect(after - before).toBeGreaterThanOrEqual(2);
    expect(await sample(base, 'coherency_store_commit_seconds_sum')).toBeGreaterThan(0);
    expect(await sample(base, 'coherency_store_commit_seconds_bucket{le="+Inf"}')).toBe(after);
    // 50 pins sent at once share group commits: fewer commits than changes.
    const from = after;
    const pins = await Promise.all(Array.from({ length: 50 }, (_, i) => call(base, 'POST', '/v1/vms/vm1/pins', { iova: `0x${(i * 0x1000).toString(16)}`, hpa: `0x${(0x1000000 + i * 0x2000).toString(16)}`, length: '0x1000' })));
    expect(pins.every((p) => p.status === 200)).toBe(true);
    const commits = ((await sample(base, 'coherency_store_commit_seconds_count')) ?? 0) - from;
    expect(commits).toBeGreaterThanOrEqual(1);
    expect(commits).toBeLessThan(50);
  });

  it('coherency_event_subscribers counts open event streams as they open and end', async () => {
    const { base } = await serve({});
    await ok(base, 'PUT', '/v1/vms/vm1', { arch: 'x86_64' });
    await ok(base, 'PUT', '/v1/vms/vm2', { arch: 'x86_64' });
    expect(await sample(base, 'coherency_event_subscribers')).toBe(0);
    const streams = ['vm1', 'vm1', 'vm2'].map((vm) => {
      const controller = new AbortController();
      const opened = fetch(`${base}/v1/vms/${vm}/events`, { signal: controller.signal });
      return { controller, opened };
    });
    for (const s of streams) expect((await s.opened).status).toBe(200);
    await reads(base, 'coherency_event_subscribers', 3);
    streams[0]?.controller.abort();
    await reads(base, 'coherency_event_subscribers', 2);
    // A stream refused (an unknown VM) is never counted.
    expect((await fetch(`${base}/v1/vms/vm-unknown/events`)).status).toBe(404);
    expect(await sample(base, 'coherency_event_subscribers')).toBe(2);
    for (const s of streams.slice(1)) s.controller.abort();
    await reads(base, 'coherency_event_subscribers', 0);
  });

  it('coherency_flushes_awaiting_ack counts planned jobs until acknowledged; acknowledged bytes are counted once, apart from planned ones', async () => {
    const { base } = await serve({ store: new SqliteStore(tempDir()) });
    await quietVm(base);
    expect(await sample(base, 'coherency_flushes_awaiting_ack')).toBe(0);
    expect(await sample(base, ACKED)).toBeUndefined();
    const id = await replay(base);
    const job = await ok(base, 'GET', `/v1/flush-jobs/${id}`);
    expect(job['state']).toBe('pending');
    const bytes = Number((job['receipt'] as { bytes: string }).bytes);
    expect(bytes).toBe(0x3000);
    expect(await sample(base, 'coherency_flushes_awaiting_ack')).toBe(1);
    // Planned, not acknowledged: counted as flushed, not as acknowledged; not queued or running.
    expect(await sample(base, FLUSHED)).toBe(bytes);
    expect(await sample(base, 'coherency_flush_jobs_pending')).toBe(0);
    expect(await sample(base, ACKED)).toBeUndefined();

    await ok(base, 'POST', `/v1/flush-jobs/${id}/ack`);
    expect(await sample(base, 'coherency_flushes_awaiting_ack')).toBe(0);
    expect(await sample(base, ACKED)).toBe(bytes);
    // Acknowledging again changes nothing.
    await ok(base, 'POST', `/v1/flush-jobs/${id}/ack`);
    expect(await sample(base, ACKED)).toBe(bytes);
    expect(await sample(base, FLUSHED)).toBe(bytes);
  });

  it('a job a teardown covers awaits no ack any more and its bytes are counted as flushed once', async () => {
    const { base } = await serve({});
    await quietVm(base);
    const id = await replay(base);
    expect(await sample(base, 'coherency_flushes_awaiting_ack')).toBe(1);
    const planned = (await sample(base, FLUSHED)) ?? 0;
    const deleted = await ok(base, 'DELETE', '/v1/vms/vm1');
    const teardown = deleted.flush?.jobId as string;
    const own = await ok(base, 'GET', `/v1/flush-jobs/${teardown}`);
    expect((await ok(base, 'GET', `/v1/flush-jobs/${id}`))['state']).toBe('done');
    // The teardown's own job awaits its ack; the covered one does not.
    expect(await sample(base, 'coherency_flushes_awaiting_ack')).toBe(1);
    // Flushed bytes grew by the teardown job's own receipt only: the covered job was counted once, when planned.
    expect(await sample(base, FLUSHED)).toBe(planned + Number((own['receipt'] as { bytes: string }).bytes));
    await ok(base, 'POST', `/v1/flush-jobs/${teardown}/ack`);
    expect(await sample(base, 'coherency_flushes_awaiting_ack')).toBe(0);
  });

  it('replicas: a job counts on the replica that promised it, not again on one that adopted it with the change', async () => {
    const schema = freshSchema('metrics_replicas');
    schemas.push(schema);
    const replica = async (): Promise<Runtime> => {
      const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile({ quirks: [] }), store: new PostgresStore({ connectionString: PG_URL, schema }), threads: 1 });
      runtimes.push(runtime);
      await runtime.start();
      runtime.service.follow(100);
      return runtime;
    };
    const a = await replica();
    const b = await replica();
    const read = async (r: Runtime, series: string): Promise<number | undefined> => {
      const line = (await r.metrics.registry.metrics()).split('\n').find((l) => l.startsWith(series + ' '));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const vmId = parseVmId('vm1');
    const d0 = parseDomainId('d0');
    const x = parsePciAddress(X);
    await a.service.apply({ type: 'put-vm', vmId, arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    await a.service.apply({ type: 'put-domain', vmId, domainId: d0, enforceCacheCoherency: false });
    await a.service.apply({ type: 'put-device', vmId, device: { bdf: x, domainId: d0, vendorId: 0x10ee, deviceId: 0x903f, function: 'pf', physfn: null, nosnoop: 'disabled' } });
    await a.service.apply({ type: 'pin', vmId, ranges: [{ iova: 0, pages: 3, hpa: 0x100 }] });
    const enable = await a.service.apply({ type: 'devctl', vmId, bdf: x, write: { nosnoopEnable: true } });
    const id = enable.jobId as string;
    await a.jobs.wait(id);
    // B catches up on the VM (as it does before serving it) and plans the job too: its VMM may acknowledge it there.
    await b.service.catchUp(0, vmId);
    for (let i = 0; i < 100 && b.jobs.get(id)?.state !== 'pending'; i++) await new Promise((r) => setTimeout(r, 50));
    expect(b.jobs.get(id)?.state).toBe('pending');
    expect(await read(a, 'coherency_flushes_awaiting_ack')).toBe(1);
    expect(await read(b, 'coherency_flushes_awaiting_ack')).toBe(0);
    expect(await read(a, FLUSHED)).toBe(0x3000);
    expect(await read(b, FLUSHED)).toBeUndefined();

    // Acknowledged through B: counted once, by A, when it learns of it.
    expect((await b.service.acknowledgeFlushJob(id, {}))?.state).toBe('acknowledged');
    for (let i = 0; i < 100 && (await read(a, ACKED)) === undefined; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await read(a, ACKED)).toBe(0x3000);
    expect(await read(a, 'coherency_flushes_awaiting_ack')).toBe(0);
    expect(await read(b, ACKED)).toBeUndefined();
    expect(await read(b, 'coherency_flushes_awaiting_ack')).toBe(0);
  });

  it('PostgreSQL: change transactions are timed, and coherency_store_up is 0 while the store refuses writes, 1 once it takes them again', async () => {
    const schema = freshSchema('metrics');
    schemas.push(schema);
    const { base } = await serve({ store: new PostgresStore({ connectionString: PG_URL, schema }) });
    expect(await sample(base, 'coherency_store_up')).toBe(1);
    const before = (await sample(base, 'coherency_store_commit_seconds_count')) ?? 0;
    await ok(base, 'PUT', '/v1/vms/vm1', { arch: 'x86_64' });
    await ok(base, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
    expect(((await sample(base, 'coherency_store_commit_seconds_count')) ?? 0) - before).toBe(2);

    // The database refuses every new audit entry and meta row (the recovery's probe): the next
    // change is refused, and the store is down until it takes writes again.
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    const tables = ['commands', 'meta'];
    try {
      for (const t of tables) await admin.query(`ALTER TABLE "${schema}".${t} ADD CONSTRAINT refuse CHECK (false) NOT VALID`);
      const counted = await sample(base, 'coherency_store_commit_seconds_count');
      const refused = await call(base, 'PUT', '/v1/vms/vm2', { arch: 'x86_64' });
      expect(refused.status).toBe(503);
      expect(await sample(base, 'coherency_store_up')).toBe(0);
      expect((await call(base, 'GET', '/readyz')).status).toBe(503);
      // A refused transaction is not a commit.
      expect(await sample(base, 'coherency_store_commit_seconds_count')).toBe(counted);
      // Recovery is tried every second; it fails while the store refuses writes.
      await new Promise((r) => setTimeout(r, 1500));
      expect(await sample(base, 'coherency_store_up')).toBe(0);
      for (const t of tables) await admin.query(`ALTER TABLE "${schema}".${t} DROP CONSTRAINT refuse`);
    } finally {
      await admin.end();
    }
    await reads(base, 'coherency_store_up', 1);
    expect((await call(base, 'PUT', '/v1/vms/vm2', { arch: 'x86_64' })).status).toBe(201);
  });
});
