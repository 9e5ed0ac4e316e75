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
});
