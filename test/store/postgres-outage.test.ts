/**
 * PostgreSQL going away under a running replica: the replica's connections to the real server
 * run through a TCP relay on 127.0.0.1 that the test cuts and restores (PostgreSQL itself keeps
 * serving the other tests). While cut: writes answer 503 and change nothing, decisions fail
 * closed, /readyz is 503. Once restored, service resumes by itself.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY } from '../../src/domain/index.js';
import { createRuntime } from '../../src/service/runtime.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { build, json } from '../helpers/app.js';
import { dropSchemas, freshSchema } from '../helpers/postgres.js';

class Relay {
  #server: Server | null = null;
  readonly #sockets = new Set<Socket>();
  port = 0;

  async open(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(5432, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    const address = server.address();
    if (address !== null && typeof address === 'object') this.port = address.port;
    this.#server = server;
  }

  /** Drops every connection and refuses new ones, like a database that went away. */
  async cut(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    const server = this.#server;
    this.#server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const schema = freshSchema('outage');
const relay = new Relay();
let app: FastifyInstance | undefined;
afterAll(async () => {
  await app?.close();
  await relay.cut();
  await dropSchemas([schema]);
});

async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

describe('PostgreSQL outage under a running replica', () => {
  it('fails closed while the database is unreachable and recovers when it returns', async () => {
    await relay.open();
    const store = new PostgresStore({ connectionString: `postgres://postgres@127.0.0.1:${relay.port}/test`, schema });
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

    await relay.cut();
    const refused = await call('POST', '/v1/vms/vm1/pins', { iova: '0x1000', hpa: '0x1000', length: '0x1000' });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(await until(async () => (await call('GET', '/readyz')).status === 503, 5000)).toBe(true);
    const decision = await call('POST', '/v1/vms/vm1/decisions/flush', { op: 'map', ranges: [{ iova: '0x100000', length: '0x1000' }] });
    expect(decision.body).toMatchObject({ failClosed: 'STORE_UNAVAILABLE', flush: { required: true } });
    expect((await call('PUT', '/v1/vms/vm2', { arch: 'x86_64' })).status).toBe(503);

    await relay.open();
    expect(await until(async () => (await call('GET', '/readyz')).status === 200, 10_000)).toBe(true);
    expect((await call('GET', '/v1/vms/vm1/pins')).body['items']).toEqual([expect.objectContaining({ iova: '0x0' })]);
    expect((await call('POST', '/v1/vms/vm1/pins', { iova: '0x1000', hpa: '0x1000', length: '0x1000' })).status).toBe(200);
    const healthy = await call('POST', '/v1/vms/vm1/decisions/flush', { op: 'map', ranges: [{ iova: '0x100000', length: '0x1000' }] });
    expect(healthy.body['failClosed']).toBeUndefined();
  });
});
