/**
 * When the store cannot be reached the service fails closed: changes answer 503 and are not
 * kept, read-only decisions demand flushes and deny No Snoop, /readyz says so; it recovers by
 * itself when the store returns.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY } from '../../src/domain/index.js';
import { createRuntime } from '../../src/service/runtime.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { AuditEntry, AuditQuery, LegacyCommand, LoadedJob, LoadedState, StateStore, StoredChange, StoredJob, VmSnapshot } from '../../src/store/state-store.js';
import { build, json, readyAgain } from '../helpers/app.js';
import type { FastifyInstance } from 'fastify';

/** A store that can be taken down, like a database that stops answering. */
class FlakyStore implements StateStore {
  readonly kind = 'memory' as const;
  readonly inner = new MemoryStore();
  down = false;
  #up<T>(fn: () => Promise<T>): Promise<T> {
    return this.down ? Promise.reject(new Error('connection refused')) : fn();
  }
  load(): Promise<LoadedState> {
    return this.#up(() => this.inner.load());
  }
  legacy(): Promise<LegacyCommand[] | null> {
    return this.#up(() => this.inner.legacy());
  }
  migrated(snapshots: readonly VmSnapshot[], quirks: string, seq: number): Promise<void> {
    return this.#up(() => this.inner.migrated(snapshots, quirks, seq));
  }
  append(changes: readonly StoredChange[]): Promise<void> {
    return this.#up(() => this.inner.append(changes));
  }
  snapshot(snapshot: VmSnapshot): Promise<void> {
    return this.#up(() => this.inner.snapshot(snapshot));
  }
  saveJob(job: StoredJob): Promise<void> {
    return this.#up(() => this.inner.saveJob(job));
  }
  loadJobs(): Promise<LoadedJob[]> {
    return this.#up(() => this.inner.loadJobs());
  }
  forgetJobs(ids: readonly string[]): Promise<void> {
    return this.#up(() => this.inner.forgetJobs(ids));
  }
  trimAudit(at: number): Promise<number> {
    return this.#up(() => this.inner.trimAudit(at));
  }
  audit(query: AuditQuery): Promise<AuditEntry[]> {
    return this.#up(() => this.inner.audit(query));
  }
  probe(): Promise<void> {
    return this.#up(() => this.inner.probe());
  }
  meta(key: string, initial: string): Promise<string> {
    return this.#up(() => this.inner.meta(key, initial));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('fail closed', () => {
  it('refuses changes, fails decisions closed, reports not ready, then recovers by itself', async () => {
    const store = new FlakyStore();
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: [], store, threads: 1 });
    await runtime.service.restore();
    const a = await build({ runtime });
    app = a;
    const call = async (method: 'GET' | 'PUT' | 'POST', url: string, payload?: object) => {
      const res = await a.inject({ method, url, ...(payload === undefined ? {} : { headers: json, payload }) });
      return { status: res.statusCode, body: res.json<Record<string, unknown>>(), headers: res.headers };
    };
    await call('PUT', '/v1/vms/vm1', { arch: 'x86_64' });
    await call('PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
    await call('PUT', '/v1/vms/vm1/devices/0000:01:00.0', { domainId: 'd0', vendorId: '0x15b3', deviceId: '0x1017', nosnoop: 'disabled' });
    expect((await call('POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x0', length: '0x1000' })).body['flush']).toMatchObject({ required: false });

    store.down = true;
    const refused = await call('POST', '/v1/vms/vm1/pins', { iova: '0x1000', hpa: '0x1000', length: '0x1000' });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(refused.headers['retry-after']).toBe('5');
    expect((await call('GET', '/readyz')).status).toBe(503);
    expect((await call('PUT', '/v1/vms/vm2', { arch: 'x86_64' })).status).toBe(503);

    // Read-only decisions fail closed: this range needs no flush when the state is known.
    const query = await call('POST', '/v1/vms/vm1/decisions/flush', { op: 'unmap', ranges: [{ iova: '0x0', length: '0x1000', hpa: '0x0' }] });
    expect(query.status).toBe(200);
    expect(query.body).toMatchObject({ failClosed: 'STORE_UNAVAILABLE', flush: { required: true }, results: [{ required: true }] });
    const devctl = await call('POST', '/v1/vms/vm1/devices/0000:01:00.0/devctl', { nosnoopEnable: true, dryRun: true });
    expect(devctl.body).toMatchObject({ decision: 'deny', failClosed: 'STORE_UNAVAILABLE', hardwareValue: '0x2010' });

    store.down = false;
    expect(await readyAgain(a)).toBe(true);
    // The refused pin is not there: it was never acknowledged.
    expect((await call('GET', '/v1/vms/vm1/pins')).body['items']).toEqual([expect.objectContaining({ iova: '0x0' })]);
    const healthy = await call('POST', '/v1/vms/vm1/decisions/flush', { op: 'unmap', ranges: [{ iova: '0x0', length: '0x1000' }] });
    expect(healthy.body['failClosed']).toBeUndefined();
    expect(healthy.body).toMatchObject({ flush: { required: false } });
    expect((await call('POST', '/v1/vms/vm1/pins', { iova: '0x1000', hpa: '0x1000', length: '0x1000' })).status).toBe(200);
  });
});
