/**
 * Flush jobs survive a restart whole. The job an answer names is stored with the change it
 * belongs to, so a kill -9 right after the answer loses neither; its ranges stay readable for as
 * long as the job is kept, across restarts (a replay of 10,050 ranges, answered with only 10,000
 * listed, is paged in full from GET /v1/flush-jobs/{id}/ranges before and after).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { callServer, startServer, type ServerProcess } from '../helpers/server-process.js';

const dir = mkdtempSync(join(tmpdir(), 'coherency-jobs-'));
const running: ServerProcess[] = [];
afterAll(async () => {
  for (const s of running) await s.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const call = callServer;

/** Every range of a job, paged. */
async function jobRanges(server: ServerProcess, jobId: string): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const page = (await call(server, 'GET', `/v1/flush-jobs/${jobId}/ranges?limit=10000${cursor === undefined ? '' : `&cursor=${cursor}`}`)).body;
    for (const r of page['items'] as { hpa: string; length: string }[]) out.push(`${r.hpa}+${r.length}`);
    cursor = page['nextCursor'] as string | undefined;
  } while (cursor !== undefined);
  return out;
}

describe('flush jobs across restarts (SQLite)', () => {
  it('a replay job named in an answer survives kill -9 right after it, with every one of its 10,050 ranges, pending until its VMM acknowledges it', async () => {
    const dataDir = join(dir, 'data');
    const first = await startServer({ STORE: 'sqlite', DATA_DIR: dataDir });
    running.push(first);
    await call(first, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    await call(first, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
    await call(first, 'PUT', '/v1/vms/vm1/devices/0000:01:00.0', { domainId: 'd0', vendorId: '0x10ee', deviceId: '0x903f', function: 'pf', nosnoop: 'disabled' });
    // 10,050 single pages, none adjacent on the host, so the replay has 10,050 ranges.
    const ranges = Array.from({ length: 10_050 }, (_, i) => ({ iova: `0x${(i * 0x1000).toString(16)}`, hpa: `0x${(0x100000000 + i * 0x2000).toString(16)}`, length: '0x1000' }));
    expect((await call(first, 'POST', '/v1/vms/vm1/pins', { ranges: ranges.slice(0, 10_000) })).status).toBe(200);
    expect((await call(first, 'POST', '/v1/vms/vm1/pins', { ranges: ranges.slice(10_000) })).status).toBe(200);
    const enable = await call(first, 'POST', '/v1/vms/vm1/devices/0000:01:00.0/devctl', { nosnoopEnable: true });
    const flush = enable.body['flush'] as { rangeCount: number; rangesTruncated: boolean; jobId: string };
    expect(flush).toMatchObject({ rangeCount: 10_050, rangesTruncated: true });
    await first.kill('SIGKILL');

    const second = await startServer({ STORE: 'sqlite', DATA_DIR: dataDir });
    running.push(second);
    // A restart plans the job again (running) before it is the VMM's to perform (pending).
    const planned = async (server: typeof second): Promise<Record<string, unknown>> => {
      let job: Record<string, unknown> = {};
      for (let i = 0; i < 50; i++) {
        job = (await call(server, 'GET', `/v1/flush-jobs/${flush.jobId}`)).body;
        if (job['state'] === 'pending') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      return job;
    };
    const job = await planned(second);
    // Planned again after the crash, and still the VMM's to perform: pending until acknowledged.
    expect(job).toMatchObject({ id: flush.jobId, vmId: 'vm1', cause: 'replay', state: 'pending', decisions: 1 });
    expect((await call(second, 'GET', '/v1/vms/vm1')).body['openFlushJobs']).toEqual([flush.jobId]);
    const expected = ranges.map((r) => `${r.hpa}+${r.length}`);
    expect(await jobRanges(second, flush.jobId)).toEqual(expected);
    await second.kill('SIGKILL');

    // Still pending after a second crash; the acknowledgement, once answered, survives one too.
    const third = await startServer({ STORE: 'sqlite', DATA_DIR: dataDir });
    running.push(third);
    expect(await planned(third)).toMatchObject({ state: 'pending' });
    expect(await jobRanges(third, flush.jobId)).toEqual(expected);
    const ack = await call(third, 'POST', `/v1/flush-jobs/${flush.jobId}/ack`, { flushedBytes: '0x2748000', durationNs: 1200 });
    expect(ack.status).toBe(200);
    expect(ack.body).toMatchObject({ state: 'acknowledged', report: { flushedBytes: '0x2748000', durationNs: 1200 } });
    await third.kill('SIGKILL');

    const fourth = await startServer({ STORE: 'sqlite', DATA_DIR: dataDir });
    running.push(fourth);
    expect((await call(fourth, 'GET', `/v1/flush-jobs/${flush.jobId}`)).body).toMatchObject({ state: 'acknowledged', report: { flushedBytes: '0x2748000' } });
    expect((await call(fourth, 'GET', '/v1/vms/vm1')).body['openFlushJobs']).toEqual([]);
    expect(await jobRanges(fourth, flush.jobId)).toEqual(expected);
  });
});
