/**
 * PostgreSQL stopped under a running replica (a server of the test's own, so the machine's
 * server keeps serving the other tests): writes answer 503 and change nothing, decisions fail
 * closed, /readyz is 503. Once PostgreSQL is started again, service resumes by itself.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY } from '../../src/domain/index.js';
import { createRuntime } from '../../src/service/runtime.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { build, json } from '../helpers/app.js';
import { PgCluster } from '../helpers/pg-cluster.js';

const cluster = new PgCluster(25_000 + (process.pid % 5000));
let app: FastifyInstance | undefined;
afterAll(async () => {
  await app?.close();
  cluster.destroy();
});

async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

describe('PostgreSQL stopped under a running replica', () => {
  it('fails closed while PostgreSQL is stopped and recovers when it is started again', async () => {
    cluster.start();
    const store = new PostgresStore({ connectionString: cluster.url });
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: [], store, threads: 1 });
    await runtime.service.restore();
    runtime.service.follow(100);
    const a = await build({ runtime });
    app = a;
    const call = async (method: 'GET' | 'PUT' | 'POST', url: string, payload?: object) => {
      const res = await a.inject({ method, url, ...(payload === undefined ? {} : { headers: json, payload }) });
      return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
    };
    await call('PUT', '/v1/vms/vm1', { arch: 'x86_64' });
    await call('PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
    expect((await call('POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x0', length: '0x1000' })).status).toBe(200);

    cluster.stop();
    const refused = await call('POST', '/v1/vms/vm1/pins', { iova: '0x1000', hpa: '0x1000', length: '0x1000' });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(await until(async () => (await call('GET', '/readyz')).status === 503, 5000)).toBe(true);
    const decision = await call('POST', '/v1/vms/vm1/decisions/flush', { op: 'map', ranges: [{ iova: '0x100000', length: '0x1000' }] });
    expect(decision.body).toMatchObject({ failClosed: 'STORE_UNAVAILABLE', flush: { required: true } });
    expect((await call('PUT', '/v1/vms/vm2', { arch: 'x86_64' })).status).toBe(503);

    cluster.start();
    expect(await until(async () => (await call('GET', '/readyz')).status === 200, 10_000)).toBe(true);
    expect((await call('GET', '/v1/vms/vm1/pins')).body['items']).toEqual([expect.objectContaining({ iova: '0x0' })]);
    expect((await call('POST', '/v1/vms/vm1/pins', { iova: '0x1000', hpa: '0x1000', length: '0x1000' })).status).toBe(200);
    const healthy = await call('POST', '/v1/vms/vm1/decisions/flush', { op: 'map', ranges: [{ iova: '0x100000', length: '0x1000' }] });
    expect(healthy.body['failClosed']).toBeUndefined();
  });

  it('a change refused mid-batch shapes nothing kept: reads answer 503 while memory may be ahead, and afterwards hold exactly what was answered 200', async () => {
    const a = app as FastifyInstance;
    const call = async (method: 'GET' | 'PUT' | 'POST', url: string, payload?: object) => {
      const res = await a.inject({ method, url, ...(payload === undefined ? {} : { headers: json, payload }) });
      return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
    };
    expect(await until(async () => (await call('GET', '/readyz')).status === 200, 10_000)).toBe(true);
    const answered: string[] = [];
    const pin = async (i: number): Promise<number> => {
      const ranges = Array.from({ length: 100 }, (_, k) => ({ iova: `0x${((i * 100 + k + 16) * 0x1000).toString(16)}`, hpa: `0x${((i * 100 + k) * 0x2000 + 0x10000000).toString(16)}`, length: '0x1000' }));
      const res = await call('POST', '/v1/vms/vm1/pins', { ranges });
      if (res.status === 200) answered.push(...ranges.map((r) => r.iova));
      else expect(res.body).toMatchObject({ code: 'STORE_UNAVAILABLE' });
      return res.status;
    };
    // Batches committed together, then more in flight (group commit) while the server stops.
    const first = await Promise.all(Array.from({ length: 10 }, (_, i) => pin(i)));
    expect(first.every((s) => s === 200)).toBe(true);
    const inFlight = Array.from({ length: 10 }, (_, i) => pin(10 + i));
    await new Promise((r) => setImmediate(r));
    cluster.stop();
    const statuses = [...first, ...(await Promise.all(inFlight))];
    expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
    expect(statuses).toContain(503);
    if (statuses.includes(503)) expect((await call('GET', '/v1/vms/vm1')).status).toBe(503);
    cluster.start();
    expect(await until(async () => (await call('GET', '/readyz')).status === 200, 10_000)).toBe(true);
    const items: { iova: string }[] = [];
    let cursor: string | undefined;
    do {
      const page = (await call('GET', `/v1/vms/vm1/pins?limit=1000${cursor === undefined ? '' : `&cursor=${cursor}`}`)).body as { items: { iova: string }[]; nextCursor?: string };
      items.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    expect(items.map((p) => p.iova).filter((iova) => iova !== '0x0' && iova !== '0x1000').sort()).toEqual([...answered].sort());
  });
});
