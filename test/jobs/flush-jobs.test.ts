/**
 * Flush jobs through the HTTP API with a real worker pool: batching, receipts, overload, drain.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, defaultQuirksFile, parseQuirkFile, parseVmId } from '../../src/domain/index.js';
import { createRuntime, type RuntimeOptions } from '../../src/service/runtime.js';
import { build, gpuVm, json } from '../helpers/app.js';

let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function start(options: Partial<RuntimeOptions> = {}): Promise<FastifyInstance> {
  app = await build({ runtime: createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), threads: 1, ...options }) });
  return app;
}

interface FlushAnswer {
  flush: { required: boolean; bytes: string; jobId?: string; receipt?: Record<string, unknown> };
}

describe('flush jobs', () => {
  it('an 8 GiB pessimistic pin with ?wait=true answers the receipt: clflushopt, 134,217,728 lines, ~1233 M cycles', async () => {
    const a = await start();
    await gpuVm(a);
    const res = await a.inject({ method: 'POST', url: '/v1/vms/vm1/pins?wait=true', headers: json, payload: { iova: '0x0', hpa: '0x100000000', length: '0x200000000' } });
    expect(res.statusCode).toBe(200);
    const body = res.json<FlushAnswer>();
    expect(body.flush.jobId).toMatch(/^fj-/);
    const receipt = body.flush.receipt as { method: string; lines: number; modeledCycles: number; state: string; bytes: string; chunks: number };
    expect(receipt).toMatchObject({ state: 'pending', method: 'clflushopt', lines: 134_217_728, bytes: '0x200000000', chunks: 8 });
    expect(Math.abs(receipt.modeledCycles - 1_233_000_000) / 1_233_000_000).toBeLessThan(0.15);
    const job = await a.inject({ method: 'GET', url: `/v1/flush-jobs/${body.flush.jobId ?? ''}` });
    expect(job.json()).toMatchObject({ id: body.flush.jobId, vmId: 'vm1', cause: 'pin', state: 'pending', decisions: 1, requestedBytes: '0x200000000', receipt: { method: 'clflushopt' }, acknowledgedAt: null });
  });

  it('WBINVD only where one demanded flush is above the threshold: two 768 MiB pins together stay per-line, each receipt its own', async () => {
    const a = await start({ windowMs: 50 });
    await a.inject({ method: 'PUT', url: '/v1/vms/vm1', headers: json, payload: { arch: 'x86_64', policy: { mode: 'pessimistic', wbinvdAbove: '0x40000000' } } });
    await a.inject({ method: 'PUT', url: '/v1/vms/vm1/domains/d0', headers: json, payload: { enforceCacheCoherency: false } });
    const MiB768 = 0x30000000;
    const pin = (iova: number, hpa: number, length: number) =>
      a.inject({ method: 'POST', url: '/v1/vms/vm1/pins?wait=true', headers: json, payload: { iova, hpa, length } }).then((r) => r.json<FlushAnswer>());
    const [x, y] = await Promise.all([pin(0, 0x100000000, MiB768), pin(MiB768, 0x200000000, MiB768)]);
    // Each answer's flush is a job of its own, planned in one batch with the other's.
    expect(x.flush.jobId).not.toBe(y.flush.jobId);
    for (const answer of [x, y]) {
      expect(answer.flush.receipt).toMatchObject({ method: 'clflushopt', bytes: '0x30000000', jobBytes: '0x60000000', jobDecisions: 2 });
    }
    // One pin above the threshold is a WBINVD of its own, in a job of its own.
    const big = await pin(0x100000000, 0x300000000, 0x80000000);
    expect(big.flush.receipt).toMatchObject({ method: 'wbinvd', bytes: '0x80000000', jobDecisions: 1 });
    expect(big.flush.jobId).not.toBe(x.flush.jobId);
  });

  it('400 concurrent single-page pins to one VM are 400 jobs of their own, planned in far fewer batches', async () => {
    const a = await start({ windowMs: 20 });
    await gpuVm(a);
    const answers = await Promise.all(
      Array.from({ length: 400 }, (_, i) =>
        a.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: json, payload: { iova: i * 0x1000, hpa: 0x10000000 + i * 0x2000, length: 0x1000 } }).then((r) => r.json<FlushAnswer>())
      )
    );
    const perJob = new Map<string, number>();
    for (const answer of answers) {
      expect(answer.flush.required).toBe(true);
      const id = answer.flush.jobId;
      expect(id).toBeDefined();
      perJob.set(id ?? '', (perJob.get(id ?? '') ?? 0) + 1);
    }
    expect(perJob.size).toBe(400);
    const jobs: { id: string; decisions: number; requestedBytes: string; state: string; receipt: { bytes: string; ranges: number } | null; batch: { id: string; decisions: number } | null }[] = [];
    let cursor: string | undefined;
    await a.policy.jobs?.drain();
    do {
      const page = (await a.inject({ method: 'GET', url: `/v1/vms/vm1/flush-jobs?limit=7${cursor === undefined ? '' : `&cursor=${cursor}`}` })).json<{ items: typeof jobs; nextCursor?: string }>();
      jobs.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    expect(jobs.map((j) => j.id).sort()).toEqual([...perJob.keys()].sort());
    let total = 0;
    const perBatch = new Map<string, { decisions: number; seen: number }>();
    for (const job of jobs) {
      expect(job.state).toBe('pending');
      expect(job.decisions).toBe(1);
      expect(job.requestedBytes).toBe('0x1000');
      expect(job.receipt).toMatchObject({ bytes: '0x1000', ranges: 1 });
      total += Number(job.receipt?.bytes ?? 0);
      const batch = job.batch as { id: string; decisions: number };
      const seen = perBatch.get(batch.id) ?? { decisions: batch.decisions, seen: 0 };
      seen.seen++;
      perBatch.set(batch.id, seen);
    }
    expect(total).toBe(400 * 0x1000);
    // Batching stays: the window planned them together, each batch naming the answers it holds.
    expect(perBatch.size).toBeLessThan(40);
    for (const b of perBatch.values()) expect(b.seen).toBe(b.decisions);
  });

  it('a replay longer than 10,000 ranges lists 10,000 in the answer and every one through its job', async () => {
    const a = await start();
    await a.inject({ method: 'PUT', url: '/v1/vms/vm1', headers: json, payload: { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } } });
    await a.inject({ method: 'PUT', url: '/v1/vms/vm1/domains/d0', headers: json, payload: { enforceCacheCoherency: false } });
    await a.inject({ method: 'PUT', url: '/v1/vms/vm1/devices/0000:01:00.0', headers: json, payload: { domainId: 'd0', vendorId: '0x15b3', deviceId: '0x1017', nosnoop: 'disabled' } });
    for (const base of [0, 6000]) {
      const ranges = Array.from({ length: 6000 }, (_, k) => ({ iova: (base + k) * 0x1000, hpa: (base + k) * 0x2000, length: 0x1000 }));
      expect((await a.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: json, payload: { ranges } })).statusCode).toBe(200);
    }
    const enable = (await a.inject({ method: 'POST', url: '/v1/vms/vm1/devices/0000:01:00.0/devctl', headers: json, payload: { nosnoopEnable: true } })).json<{
      flush: { ranges: unknown[]; rangeCount: number; rangesTruncated: boolean; jobId: string; bytes: string };
    }>();
    expect(enable.flush).toMatchObject({ rangeCount: 12_000, rangesTruncated: true, bytes: '0x2ee0000' });
    expect(enable.flush.ranges).toHaveLength(10_000);
    const all: { hpa: string }[] = [];
    let cursor: string | undefined;
    do {
      const page = (await a.inject({ method: 'GET', url: `/v1/flush-jobs/${enable.flush.jobId}/ranges?limit=5000${cursor === undefined ? '' : `&cursor=${cursor}`}` })).json<{ items: { hpa: string }[]; nextCursor?: string }>();
      all.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    expect(all).toHaveLength(12_000);
    expect(all[11_999]).toEqual({ hpa: '0x' + (11_999 * 0x2000).toString(16), length: '0x1000' });
  });

  it('a full queue answers 503 with Retry-After and changes nothing', async () => {
    const a = await start({ maxPending: 1, windowMs: 1000 });
    await gpuVm(a);
    const first = await a.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: json, payload: { iova: '0x0', hpa: '0x0', length: '0x1000' } });
    expect(first.statusCode).toBe(200);
    const before = (await a.inject({ method: 'GET', url: '/v1/vms/vm1' })).json<{ revision: number; openFlushJobs: string[] }>();
    expect(before.openFlushJobs).toEqual([first.json<FlushAnswer>().flush.jobId]);
    const second = await a.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: json, payload: { iova: '0x1000', hpa: '0x1000', length: '0x1000' } });
    expect(second.statusCode).toBe(503);
    expect(second.headers['retry-after']).toBe('1');
    expect(second.json()).toMatchObject({ code: 'OVERLOADED', status: 503 });
    expect((await a.inject({ method: 'GET', url: '/v1/vms/vm1' })).json<{ revision: number }>().revision).toBe(before.revision);
  });

  it('a job accepted before a graceful shutdown is finished when the shutdown completes', async () => {
    const a = await start({ windowMs: 60_000 });
    await gpuVm(a);
    const res = await a.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: json, payload: { iova: '0x0', hpa: '0x0', length: '0x100000' } });
    const jobId = res.json<FlushAnswer>().flush.jobId ?? '';
    const jobs = a.policy.jobs;
    expect(jobs?.get(jobId)?.state).toBe('queued');
    await a.close();
    app = undefined;
    expect(jobs?.get(jobId)?.state).toBe('pending');
    expect(jobs?.get(jobId)?.receipt?.pages).toBe(256);
  });

  it('/metrics exposes decisions, jobs, flushed bytes, cycles, bytes avoided, queue, pool, event loop and HTTP latency', async () => {
    const a = await start();
    await a.inject({ method: 'PUT', url: '/v1/vms/vm1', headers: json, payload: { arch: 'x86_64' } });
    await a.inject({ method: 'PUT', url: '/v1/vms/vm1/domains/d0', headers: json, payload: { enforceCacheCoherency: false } });
    await a.inject({ method: 'PUT', url: '/v1/vms/vm1/devices/0000:00:02.0', headers: json, payload: { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', nosnoop: 'disabled' } });
    // trap mode, device disabled: the pessimistic policy would flush this 1 MiB, trap does not.
    await a.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: json, payload: { iova: '0x0', hpa: '0x0', length: '0x100000' } });
    await a.inject({ method: 'POST', url: '/v1/vms/vm1/devices/0000:00:02.0/devctl?wait=true', headers: json, payload: { nosnoopEnable: true } });
    const text = (await a.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/coherency_decisions_total\{rule="F2"\} 1/);
    expect(text).toMatch(/coherency_decisions_total\{rule="W4"\} 1/);
    expect(text).toMatch(/coherency_flush_jobs_total\{cause="replay",state="pending"\} 1/);
    expect(text).toMatch(/coherency_flushed_bytes_total\{arch="x86_64",method="clflushopt"\} 1048576/);
    expect(text).toMatch(/coherency_flush_modeled_cycles_total\{arch="x86_64",method="clflushopt"\} \d+/);
    expect(text).toMatch(/coherency_pessimistic_bytes_total\{arch="x86_64"\} 1048576/);
    expect(text).toMatch(/coherency_flush_required_bytes_total\{arch="x86_64"\} 1048576/);
    expect(text).toMatch(/coherency_flush_avoided_bytes\{arch="x86_64"\} 0/);
    // The service's own metrics: no gauge named like a counter (Node's defaults are prom-client's).
    expect(text).not.toMatch(/# TYPE coherency_(?!nodejs_|process_)\S+_total gauge/);
    expect(text).toMatch(/coherency_flush_jobs_pending 0/);
    expect(text).toMatch(/coherency_pool_queue_depth 0/);
    expect(text).toMatch(/coherency_pool_utilization_ratio/);
    expect(text).toMatch(/coherency_nodejs_eventloop_lag_p99_seconds/);
    expect(text).toMatch(/coherency_http_request_duration_seconds_bucket\{le="0.005",method="POST",route="\/v1\/vms\/:vmId\/pins",status="200"\}/);
  });
});

describe('flush jobs after a restart', () => {
  it('an unfinished job found in the store is planned again; a finished one is listed', async () => {
    const { MemoryStore } = await import('../../src/store/memory-store.js');
    const store = new MemoryStore();
    const base = { vmId: 'vm1', arch: 'x86_64', method: 'clflushopt', cause: 'pin', decisions: 1, createdAt: 1, startedAt: 2, finishedAt: null, receipt: null, ranges: null, error: null };
    await store.saveJob({ id: 'fj-running', vmId: 'vm1', body: JSON.stringify({ job: { ...base, id: 'fj-running', state: 'running', requestedPages: 3 }, wbinvdAbovePages: null }), pairs: new Float64Array([10, 2, 12, 1]) });
    await store.saveJob({
      id: 'fj-done',
      vmId: 'vm1',
      body: JSON.stringify({ job: { ...base, id: 'fj-done', state: 'done', requestedPages: 1, finishedAt: Date.now(), receipt: { method: 'clflushopt', ranges: 1, pages: 1, lines: 64, fences: 2, chunks: 1, modeledCycles: 602, modeledNs: 134 } }, wbinvdAbovePages: null }),
      pairs: null
    });
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: [], store, threads: 1 });
    try {
      await runtime.start();
      const resumed = await runtime.jobs.wait('fj-running');
      expect(resumed.state).toBe('pending');
      expect(resumed.receipt).toMatchObject({ pages: 3, ranges: 1, lines: 192 });
      expect(runtime.jobs.get('fj-done')?.receipt?.modeledCycles).toBe(602);
      // Listed in the order they were created (the store's order).
      expect(runtime.jobs.list(parseVmId('vm1'), undefined, 10).map((j) => j.id)).toEqual(['fj-running', 'fj-done']);
      expect(runtime.jobs.list(parseVmId('vm1'), 'fj-running', 10).map((j) => j.id)).toEqual(['fj-done']);
      // A cursor naming a job that is not (or no longer) known ends the listing.
      expect(runtime.jobs.list(parseVmId('vm1'), 'fj-forgotten', 10)).toEqual([]);
    } finally {
      await runtime.close();
    }
  });
});


describe('acknowledgements (FlushJobs)', () => {
  const vmId = parseVmId('vm1');
  const policy = { flushMethod: 'clflushopt' as const, wbinvdAbovePages: null };

  it('an ack closes a job still taking flushes: a later flush joins a new job; the first ends acknowledged once planned', async () => {
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), windowMs: 50 });
    try {
      const jobs = runtime.jobs;
      const first = jobs.submit(vmId, 'x86_64', policy, 'replay', [{ hpa: 10, pages: 2 }]);
      expect(jobs.get(first)?.state).toBe('queued');
      const acked = jobs.acknowledge(first, { flushedPages: 2 });
      expect(acked?.job.state).not.toBe('acknowledged');
      const second = jobs.submit(vmId, 'x86_64', policy, 'replay', [{ hpa: 20, pages: 1 }]);
      expect(second).not.toBe(first);
      await acked?.saved;
      expect(jobs.get(first)).toMatchObject({ state: 'acknowledged', requestedPages: 2, report: { flushedPages: 2 } });
      expect(jobs.outstanding(vmId, 'replay').map((j) => j.id)).toEqual([second]);
      await jobs.wait(second);
      expect(jobs.get(second)?.state).toBe('pending');
      expect(jobs.open(vmId).map((j) => j.id)).toEqual([second]);
    } finally {
      await runtime.close();
    }
  });

  it('a job its VMM has not acknowledged is never forgotten, however many newer ones finish', async () => {
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), windowMs: 0, jobHistory: 3 });
    try {
      const jobs = runtime.jobs;
      const kept = jobs.submit(vmId, 'x86_64', policy, 'replay', [{ hpa: 1, pages: 1 }]);
      await jobs.wait(kept);
      for (let i = 0; i < 10; i++) {
        const id = jobs.submit(vmId, 'x86_64', policy, 'pin', [{ hpa: 100 + 2 * i, pages: 1 }]);
        await jobs.wait(id);
        await jobs.acknowledge(id, {})?.saved;
      }
      expect(jobs.get(kept)?.state).toBe('pending');
      expect(jobs.list(vmId, undefined, 100).length).toBeLessThanOrEqual(4);
      await jobs.acknowledge(kept, {})?.saved;
      const after = jobs.submit(vmId, 'x86_64', policy, 'pin', [{ hpa: 999, pages: 1 }]);
      await jobs.wait(after);
      // Gone from the history (and the VM's listing); acknowledging it again still answers as before.
      expect(jobs.list(vmId, undefined, 100).map((j) => j.id)).not.toContain(kept);
      expect(jobs.acknowledge(kept, {})?.job).toMatchObject({ id: kept, state: 'acknowledged' });
    } finally {
      await runtime.close();
    }
  });
});

describe('an acknowledgement covers exactly its own answer\'s flush', () => {
  it('a flush promised in the same window as an acknowledged one is a job of its own, outstanding until it is acknowledged itself', async () => {
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), windowMs: 50 });
    try {
      const jobs = runtime.jobs;
      const vmId = parseVmId('vm1');
      const policy = { flushMethod: 'clflushopt' as const, wbinvdAbovePages: null };
      const first = jobs.submit(vmId, 'x86_64', policy, 'replay', [{ hpa: 10, pages: 2 }]);
      // A second answer's flush is promised in the same window; its change is not durable yet.
      const promised = jobs.reserve(vmId, 'x86_64', policy, 'replay', 1);
      expect(promised.id).not.toBe(first);
      const acked = jobs.acknowledge(first, {});
      expect(jobs.outstanding(vmId, 'replay').map((j) => j.id)).toEqual([promised.id]);
      jobs.fill(promised.id, new Float64Array([20, 1]));
      await acked?.saved;
      expect(jobs.get(first)).toMatchObject({ state: 'acknowledged', decisions: 1, requestedPages: 2 });
      expect(Array.from(jobs.get(first)?.ranges ?? [])).toEqual([10, 2]);
      await jobs.wait(promised.id);
      // Its ranges are exactly its own, never grown by or merged into the other.
      expect(jobs.get(promised.id)).toMatchObject({ state: 'pending', decisions: 1, requestedPages: 1 });
      expect(Array.from(jobs.get(promised.id)?.ranges ?? [])).toEqual([20, 1]);
      expect(jobs.get(promised.id)?.batch?.id).toBe(jobs.get(first)?.batch?.id);
      await jobs.acknowledge(promised.id, {})?.saved;
      expect(jobs.outstanding(vmId)).toEqual([]);
    } finally {
      await runtime.close();
    }
  });
});
