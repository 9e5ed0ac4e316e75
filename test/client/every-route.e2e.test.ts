/**
 * The typed client has a method for every route, named by the route's operationId in the OpenAPI
 * document, and the methods a VMM's control plane and an operator reach for beyond the GPU
 * session: `wait` for a flush job's receipt, paging iterators, the audit trail, job ranges, the
 * policy defaults and a simulation's chart, against a real listening server.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoherencyClient } from '../../src/client/index.js';
import { DEFAULT_POLICY } from '../../src/domain/index.js';
import { buildApp } from '../../src/http/app.js';
import { createRuntime } from '../../src/service/runtime.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { OPERATION_IDS } from '../../src/http/openapi-polish.js';

let app: FastifyInstance;
let client: CoherencyClient;

beforeAll(async () => {
  // A started runtime on the memory store: it keeps the audit trail as a durable store does.
  const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: [], store: new MemoryStore(), threads: 1 });
  await runtime.start();
  app = await buildApp({ runtime });
  client = new CoherencyClient(await app.listen({ host: '127.0.0.1', port: 0 }));
});

afterAll(async () => {
  await client.close();
  await app.close();
});

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('the typed client', () => {
  it("has a method for every route's operationId", () => {
    const missing = Object.values(OPERATION_IDS).filter((id) => typeof (CoherencyClient.prototype as unknown as Record<string, unknown>)[id] !== 'function');
    expect(missing).toEqual([]);
  });

  it('waits for a receipt, pages with iterators, and reads the audit trail, job ranges, policy and a chart', async () => {
    await client.putVm('vm-a', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await client.putDomain('vm-a', 'd0', { enforceCacheCoherency: false });
    // 1,500 ranges: more than one page of pins (1,000 a page).
    const ranges = Array.from({ length: 1500 }, (_, i) => ({ iova: `0x${(i * 0x2000).toString(16)}`, hpa: `0x${(0x100000000 + i * 0x2000).toString(16)}`, length: '0x1000' }));
    const pinned = await client.pin('vm-a', { ranges }, { wait: true });
    expect(pinned.flush.receipt).toMatchObject({ jobId: pinned.flush.jobId, bytes: `0x${(1500 * 0x1000).toString(16)}` });
    const job = await client.getFlushJob(pinned.flush.jobId as string);
    expect(job.id).toBe(pinned.flush.jobId);
    expect(await client.listFlushJobRanges(job.id)).toHaveLength(1500);
    expect((await all(client.flushJobs('vm-a'))).map((j) => j.id)).toContain(job.id);
    const listed = await all(client.pins('vm-a'));
    expect(listed).toHaveLength(1500);
    expect(listed[1499]?.iova).toBe(ranges[1499]?.iova);
    await client.putVm('vm-b', { arch: 'x86_64' });
    expect((await all(client.vms())).map((v) => v.id)).toEqual(['vm-a', 'vm-b']);
    const audit = await all(client.audit({ vmId: 'vm-a' }));
    expect(audit.map((r) => r.action)).toEqual(['put-vm', 'put-domain', 'pin']);
    expect((await client.listAudit({ vmId: 'vm-b' })).items.map((r) => r.action)).toEqual(['put-vm']);
    expect((await client.getPolicy()).defaults).toBeDefined();
    const simulation = await client.simulate({ reference: 'viommu-network' });
    const chart = await client.getSimulationChart(simulation.id);
    expect(chart).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
  }, 60_000);
});
