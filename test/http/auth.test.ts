/**
 * Bearer tokens and scopes over real HTTP (a listening server on 127.0.0.1).
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenTable } from '../../src/http/auth.js';
import { build, LogSink } from '../helpers/app.js';

const ADMIN = 'admin-token-0123456789';
const READER = 'reader-token-0123456789';
const VMM_A = 'vmm-a-token-0123456789';
const sha = (t: string): string => createHash('sha256').update(t).digest('hex');

let app: FastifyInstance;
let base = '';
const sink = new LogSink();

beforeAll(async () => {
  const tokens = new TokenTable([
    { id: 'ops', token: ADMIN, scopes: ['admin'] },
    { id: 'dashboard', token: `sha256:${sha(READER)}`, scopes: ['read'] },
    { id: 'vmm-a', token: VMM_A, scopes: ['vmm'], vms: ['vm-a*'] }
  ]);
  app = await build({ tokens, logger: { level: 'info', stream: sink } });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app.close();
});

async function call(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(base + path, {
    method,
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  });
  const text = await res.text();
  return { status: res.status, body: (text.startsWith('{') ? JSON.parse(text) : {}) as Record<string, unknown>, headers: res.headers };
}

const pin = { iova: '0x0', hpa: '0x0', length: '0x1000' };

describe('authentication and scopes', () => {
  it('no token or an unknown token is 401 on /v1; health, readiness, docs and the document stay open', async () => {
    const none = await call('GET', '/v1/vms');
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await call('GET', '/v1/vms', 'not-a-token')).status).toBe(401);
    expect((await call('PUT', '/v1/vms/vm-a1', undefined, { arch: 'x86_64' })).status).toBe(401);
    for (const open of ['/healthz', '/readyz', '/openapi.json', '/docs/']) expect((await call('GET', open)).status, open).toBe(200);
  });

  it("a vmm token for vm-a* works on its VMs and cannot read or change vm-b1 (403, unchanged)", async () => {
    for (const vm of ['vm-a1', 'vm-b1']) {
      expect((await call('PUT', `/v1/vms/${vm}`, ADMIN, { arch: 'x86_64', policy: { mode: 'pessimistic' } })).status).toBe(201);
      expect((await call('PUT', `/v1/vms/${vm}/domains/d0`, ADMIN, { enforceCacheCoherency: false })).status).toBe(201);
    }
    expect((await call('POST', '/v1/vms/vm-a1/pins', VMM_A, pin)).status).toBe(200);
    expect((await call('GET', '/v1/vms/vm-a1', VMM_A)).status).toBe(200);
    expect((await call('PUT', '/v1/vms/vm-a2', VMM_A, { arch: 'aarch64' })).status).toBe(201);
    const before = (await call('GET', '/v1/vms/vm-b1', ADMIN)).body;
    const read = await call('GET', '/v1/vms/vm-b1', VMM_A);
    expect(read.status).toBe(403);
    expect(read.body).toMatchObject({ code: 'FORBIDDEN' });
    expect((await call('POST', '/v1/vms/vm-b1/pins', VMM_A, pin)).status).toBe(403);
    expect((await call('POST', '/v1/vms/vm-b1/decisions/flush', VMM_A, { op: 'map', ranges: [{ iova: '0x0', length: '0x1000' }] })).status).toBe(403);
    expect((await call('DELETE', '/v1/vms/vm-b1', VMM_A)).status).toBe(403);
    expect((await call('GET', '/v1/vms', VMM_A)).status).toBe(403);
    expect((await call('GET', '/v1/vms/vm-b1', ADMIN)).body).toEqual(before);
  });

  it('a read token reads everything and changes nothing', async () => {
    expect((await call('GET', '/v1/vms', READER)).status).toBe(200);
    expect((await call('GET', '/v1/vms/vm-b1', READER)).status).toBe(200);
    const before = (await call('GET', '/v1/vms/vm-a1', ADMIN)).body;
    expect((await call('POST', '/v1/vms/vm-a1/unpins', READER, { iova: '0x0', length: '0x1000' })).status).toBe(403);
    expect((await call('PUT', '/v1/vms/vm-a1', READER, { arch: 'x86_64' })).status).toBe(403);
    expect((await call('GET', '/v1/vms/vm-a1', ADMIN)).body).toEqual(before);
  });

  it('only admin changes quirks', async () => {
    const quirks = { quirks: [{ vendorId: '0x1234', deviceId: '0x5678', flags: ['needs-nosnoop'] }] };
    expect((await call('PUT', '/v1/quirks', READER, quirks)).status).toBe(403);
    expect((await call('PUT', '/v1/quirks', VMM_A, quirks)).status).toBe(403);
    const before = (await call('GET', '/v1/quirks', READER)).body;
    expect(before['quirks']).not.toEqual(quirks.quirks);
    expect((await call('PUT', '/v1/quirks', ADMIN, quirks)).status).toBe(200);
    expect((await call('GET', '/v1/quirks', READER)).body).toMatchObject({ quirks: [{ vendorId: '0x1234' }] });
  });

  it('a token put in the query string is neither echoed in the problem nor logged', async () => {
    const res = await call('GET', `/v1/vms?token=${READER}&limit=2&access_token=${ADMIN}`);
    expect(res.status).toBe(401);
    expect(res.body['instance']).toBe('/v1/vms?token=[redacted]&limit=2&access_token=[redacted]');
    const text = JSON.stringify(res.body) + sink.lines.map((l) => JSON.stringify(l)).join('\n');
    for (const t of [ADMIN, READER]) expect(text).not.toContain(t);
  });

  it('never logs a token', () => {
    const text = sink.lines.map((l) => JSON.stringify(l)).join('\n');
    expect(sink.lines.length).toBeGreaterThan(10);
    for (const t of [ADMIN, READER, VMM_A]) expect(text).not.toContain(t);
  });

  it('limits requests per token: over the limit is 429 with Retry-After, other tokens unaffected', async () => {
    const limited = await build({
      tokens: new TokenTable([
        { id: 'a', token: ADMIN, scopes: ['admin'] },
        { id: 'r', token: READER, scopes: ['read'] }
      ]),
      rateLimit: 5
    });
    try {
      const get = (token: string) => limited.inject({ method: 'GET', url: '/v1/policy', headers: { authorization: `Bearer ${token}` } });
      for (let i = 0; i < 5; i++) expect((await get(ADMIN)).statusCode).toBe(200);
      const over = await get(ADMIN);
      expect(over.statusCode).toBe(429);
      expect(over.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(over.json()).toMatchObject({ code: 'RATE_LIMITED' });
      expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
      expect((await get(READER)).statusCode).toBe(200);
      expect((await limited.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await limited.close();
    }
  });

  it('rejects malformed token files and accepts sha256 digests', () => {
    expect(() => new TokenTable([{ token: 'short', scopes: ['read'] }])).toThrow(/at least 16/);
    expect(() => new TokenTable([{ token: ADMIN, scopes: ['root'] }])).toThrow(/invalid token file/);
    const t = new TokenTable([{ token: `sha256:${sha(READER)}`, scopes: ['read'] }]);
    expect(t.authenticate(READER)?.id).toBe('token-1');
    expect(t.authenticate(ADMIN)).toBeUndefined();
  });
});

describe('overload protection', () => {
  it('answers /v1 with 503 OVERLOADED and Retry-After while the event loop is stalled, and the probes and metrics as usual', async () => {
    const stressed = await build({ maxEventLoopDelayMs: 20 });
    try {
      let overloaded = false;
      for (let attempt = 0; attempt < 20 && !overloaded; attempt++) {
        const end = Date.now() + 300;
        while (Date.now() < end) {
          // Stall the event loop, as a runaway synchronous task would.
        }
        await new Promise((r) => setTimeout(r, 5));
        const res = await stressed.inject({ method: 'GET', url: '/v1/policy' });
        if (res.statusCode === 503) {
          overloaded = true;
          expect(res.json()).toMatchObject({ code: 'OVERLOADED' });
          expect(res.headers['retry-after']).toBe('5');
          // The probes and the metrics still answer, each with its own schema, while /v1 sheds.
          const [ready, live, metrics] = await Promise.all(['/readyz', '/healthz', '/metrics'].map((url) => stressed.inject({ method: 'GET', url })));
          expect(ready?.statusCode).toBe(200);
          expect(ready?.json()).toMatchObject({ status: 'ready' });
          expect(live?.statusCode).toBe(200);
          expect(metrics?.statusCode).toBe(200);
        }
      }
      expect(overloaded).toBe(true);
    } finally {
      await stressed.close();
    }
  });
});

describe('audit trail', () => {
  it('records who changed what, the rules, the revision; readable by read and admin, filtered by VM and time', async () => {
    const { MemoryStore } = await import('../../src/store/memory-store.js');
    const { createRuntime } = await import('../../src/service/runtime.js');
    const { DEFAULT_POLICY } = await import('../../src/domain/index.js');
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: [], store: new MemoryStore(), threads: 1 });
    await runtime.start();
    const audited = await build({
      runtime,
      tokens: new TokenTable([
        { id: 'ops', token: ADMIN, scopes: ['admin'] },
        { id: 'dashboard', token: READER, scopes: ['read'] },
        { id: 'vmm-a', token: VMM_A, scopes: ['vmm'], vms: ['vm-a*'] }
      ])
    });
    try {
      const as = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });
      const t0 = new Date().toISOString();
      await audited.inject({ method: 'PUT', url: '/v1/vms/vm-a1', headers: as(VMM_A), payload: { arch: 'x86_64', policy: { mode: 'pessimistic' } } });
      await audited.inject({ method: 'PUT', url: '/v1/vms/vm-a1/domains/d0', headers: as(VMM_A), payload: { enforceCacheCoherency: false } });
      await audited.inject({ method: 'POST', url: '/v1/vms/vm-a1/pins', headers: as(VMM_A), payload: { iova: '0x0', hpa: '0x0', length: '0x1000' } });
      await audited.inject({ method: 'PUT', url: '/v1/quirks', headers: as(ADMIN), payload: { quirks: [] } });
      // A refused change leaves no trace.
      await audited.inject({ method: 'POST', url: '/v1/vms/vm-a1/pins', headers: as(VMM_A), payload: { iova: '0x0', hpa: '0x0', length: '0x1000' } });
      const all = await audited.inject({ method: 'GET', url: '/v1/audit', headers: as(READER) });
      expect(all.statusCode).toBe(200);
      const items = all.json<{ items: { revision: number; actor: string; vmId: string | null; action: string; rules: string[] }[] }>().items;
      expect(items.map((i) => [i.revision, i.actor, i.vmId, i.action])).toEqual([
        [1, 'vmm-a', 'vm-a1', 'put-vm'],
        [2, 'vmm-a', 'vm-a1', 'put-domain'],
        [3, 'vmm-a', 'vm-a1', 'pin'],
        [4, 'ops', null, 'put-quirks']
      ]);
      expect(items[2]?.rules).toEqual(['F1']);
      const vmOnly = await audited.inject({ method: 'GET', url: `/v1/audit?vmId=vm-a1&since=${encodeURIComponent(t0)}&limit=2`, headers: as(ADMIN) });
      const page1 = vmOnly.json<{ items: { revision: number }[]; nextCursor?: string }>();
      expect(page1.items.map((i) => i.revision)).toEqual([1, 2]);
      const page2 = await audited.inject({ method: 'GET', url: `/v1/audit?vmId=vm-a1&limit=2&cursor=${page1.nextCursor ?? ''}`, headers: as(ADMIN) });
      const last = page2.json<{ items: { revision: number }[]; nextCursor?: string; retention: { days: number; keptSince: string } }>();
      expect(last).toEqual({ items: [expect.objectContaining({ revision: 3 })], retention: { days: 30, keptSince: expect.any(String) as unknown } });
      // It says what it no longer has: changes older than AUDIT_RETENTION days.
      expect(Date.now() - Date.parse(last.retention.keptSince)).toBeGreaterThan(29 * 86_400_000);
      expect((await audited.inject({ method: 'GET', url: '/v1/audit', headers: as(VMM_A) })).statusCode).toBe(403);
    } finally {
      await audited.close();
    }
  });
});
