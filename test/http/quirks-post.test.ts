/**
 * POST /v1/quirks: adds entries to the quirk list in force, or replaces its entry for the same
 * devices (vendor id, mask and device id under it, compared as numbers), keeping every other
 * entry (the shipped ones too). It is the same command as PUT (put-quirks, merged by the core
 * when applied): same answer, same replay flushes, same scope (admin), same audit trail.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { serializerCompiler } from 'fastify-type-provider-zod';
import { afterEach, describe, expect, it } from 'vitest';
import { PutQuirksAnswer } from '../../src/contract/quirk.js';
import { DEFAULT_POLICY, defaultQuirksFile, parseQuirkFile, quirkToWire } from '../../src/domain/index.js';
import { TokenTable } from '../../src/http/auth.js';
import { createRuntime } from '../../src/service/runtime.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { build, json, quirkVm } from '../helpers/app.js';

const SHIPPED = parseQuirkFile(defaultQuirksFile).map(quirkToWire);

const apps: FastifyInstance[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function app(options: Parameters<typeof build>[0] = {}): Promise<FastifyInstance> {
  const a = await build(options);
  apps.push(a);
  return a;
}

type Wire = { vendorId: string; deviceId: string; deviceMask?: string; flags: string[]; note?: string; source?: string };
interface Answer {
  status: number;
  body: Record<string, unknown> & { quirks?: Wire[]; vms?: Record<string, unknown>[]; revision?: number; code?: string };
}

async function call(a: FastifyInstance, method: 'GET' | 'PUT' | 'POST', url: string, payload?: unknown, token?: string): Promise<Answer> {
  const headers = { ...(payload === undefined ? {} : json), ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) };
  const res = await a.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) });
  return { status: res.statusCode, body: res.json() };
}

async function inForce(a: FastifyInstance): Promise<Wire[]> {
  return (await call(a, 'GET', '/v1/quirks')).body.quirks ?? [];
}

/** As the service shows an entry: ids lower-case, the mask explicit, the device id under it. */
const shown = (q: Wire): Wire => ({ deviceMask: '0xffff', ...q });

describe('POST /v1/quirks', () => {
  it('adds an entry and keeps the shipped list, answering the list in force (200)', async () => {
    const a = await app();
    expect(SHIPPED.length).toBeGreaterThan(20);
    const added = { vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'], note: 'no-snoops whatever its bit says' };
    const res = await call(a, 'POST', '/v1/quirks', { quirks: [added] });
    expect(res.status).toBe(200);
    expect(res.body.quirks).toEqual([...SHIPPED, shown(added)]);
    expect(res.body.vms).toEqual([]);
    expect(res.body.revision).toEqual(expect.any(Number));
    expect(await inForce(a)).toEqual([...SHIPPED, shown(added)]);
  });

  it('replaces the entry for the same vendor, device id and mask where it stood, ids compared as numbers', async () => {
    const a = await app();
    await call(a, 'POST', '/v1/quirks', { quirks: [{ vendorId: '0x1D0F', deviceId: '0xABC', flags: ['needs-nosnoop'] }] });
    await call(a, 'POST', '/v1/quirks', { quirks: [{ vendorId: '0x10de', deviceId: '0x1', flags: ['needs-nosnoop'] }] });
    // The same device, spelt otherwise: it replaces the entry in place.
    const again = await call(a, 'POST', '/v1/quirks', { quirks: [{ vendorId: '0x1d0f', deviceId: '0x0abc', deviceMask: '0xFFFF', flags: ['ignores-nosnoop-enable'], note: 'corrected' }] });
    expect(again.status).toBe(200);
    expect(again.body.quirks).toEqual([
      ...SHIPPED,
      { vendorId: '0x1d0f', deviceId: '0x0abc', deviceMask: '0xffff', flags: ['ignores-nosnoop-enable'], note: 'corrected' },
      { vendorId: '0x10de', deviceId: '0x0001', deviceMask: '0xffff', flags: ['needs-nosnoop'] }
    ]);
  });

  it('a shipped family entry is replaced by an entry with its mask and a device id under it; one device of the family is a new entry', async () => {
    const a = await app();
    const family = SHIPPED.findIndex((q) => q.vendorId === '0x8086' && q.deviceId === '0x0400' && q.deviceMask === '0xff00');
    expect(family).toBeGreaterThanOrEqual(0);
    const res = await call(a, 'POST', '/v1/quirks', {
      quirks: [
        { vendorId: '0x8086', deviceId: '0x04ff', deviceMask: '0xff00', flags: ['needs-nosnoop'], note: 'Haswell GT, reviewed' },
        { vendorId: '0x8086', deviceId: '0x0412', flags: ['ignores-nosnoop-enable'] }
      ]
    });
    expect(res.status).toBe(200);
    const expected = SHIPPED.map((q, i) => (i === family ? { vendorId: '0x8086', deviceId: '0x0400', deviceMask: '0xff00', flags: ['needs-nosnoop'], note: 'Haswell GT, reviewed' } : q));
    expect(res.body.quirks).toEqual([...expected, { vendorId: '0x8086', deviceId: '0x0412', deviceMask: '0xffff', flags: ['ignores-nosnoop-enable'] }]);
  });

  it('refuses an invalid body (400) and changes nothing', async () => {
    const a = await app();
    const ok = { vendorId: '0x1d0f', deviceId: '0x1234', flags: ['needs-nosnoop'] };
    const invalid: [unknown, string][] = [
      [{ quirks: [] }, 'VALIDATION_FAILED'],
      [{}, 'VALIDATION_FAILED'],
      [{ quirks: [{ ...ok, flags: [] }] }, 'VALIDATION_FAILED'],
      [{ quirks: [{ ...ok, flags: ['fast'] }] }, 'VALIDATION_FAILED'],
      [{ quirks: [{ ...ok, vendorId: '8086' }] }, 'VALIDATION_FAILED'],
      [{ quirks: [{ ...ok, deviceId: '0x12345' }] }, 'VALIDATION_FAILED'],
      [{ quirks: [{ ...ok, vendor: '0x1d0f' }] }, 'VALIDATION_FAILED'],
      [{ quirks: [ok], replace: true }, 'VALIDATION_FAILED'],
      // Two entries for the same devices: which one was meant is not guessed.
      [{ quirks: [ok, { ...ok, deviceId: '0x1234', vendorId: '0x1D0F', flags: ['ignores-nosnoop-enable'] }] }, 'INVALID_QUIRK']
    ];
    for (const [body, code] of invalid) {
      const res = await call(a, 'POST', '/v1/quirks', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.code, JSON.stringify(body)).toBe(code);
    }
    expect(await inForce(a)).toEqual(SHIPPED);
  });

  it('needs the admin scope, as PUT does: read and vmm tokens get 403, no token 401, and nothing changes', async () => {
    const tokens = new TokenTable([
      { id: 'ops', token: 'admin-token-0123456789', scopes: ['admin'] },
      { id: 'dashboard', token: 'reader-token-0123456789', scopes: ['read'] },
      { id: 'vmm', token: 'vmm-token-0123456789', scopes: ['vmm', 'read'], vms: ['*'] }
    ]);
    const a = await app({ tokens });
    const body = { quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['needs-nosnoop'] }] };
    expect((await call(a, 'POST', '/v1/quirks', body)).status).toBe(401);
    for (const token of ['reader-token-0123456789', 'vmm-token-0123456789']) {
      const refused = await call(a, 'POST', '/v1/quirks', body, token);
      expect(refused.status).toBe(403);
      expect(refused.body.code).toBe('FORBIDDEN');
    }
    expect((await call(a, 'GET', '/v1/quirks', undefined, 'reader-token-0123456789')).body.quirks).toEqual(SHIPPED);
    expect((await call(a, 'POST', '/v1/quirks', body, 'admin-token-0123456789')).status).toBe(200);
    expect((await call(a, 'GET', '/v1/quirks', undefined, 'reader-token-0123456789')).body.quirks).toHaveLength(SHIPPED.length + 1);
  });

  it('is audited as the put-quirks it is, with the entries asked for and `merge`', async () => {
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: [], store: new MemoryStore(), threads: 1 });
    await runtime.start();
    const a = await app({ runtime });
    await call(a, 'PUT', '/v1/quirks', { quirks: [{ vendorId: '0x10de', deviceId: '0x0001', flags: ['needs-nosnoop'] }] });
    const posted = await call(a, 'POST', '/v1/quirks', { quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['needs-nosnoop'] }] });
    const audit = (await call(a, 'GET', '/v1/audit')).body['items'] as { revision: number; action: string; change: Record<string, unknown> }[];
    expect(audit.map((e) => [e.action, e.change['merge']])).toEqual([
      ['put-quirks', undefined],
      ['put-quirks', true]
    ]);
    expect(audit[1]).toMatchObject({ revision: posted.body.revision, change: { quirks: [{ vendorId: 0x1d0f, deviceId: 0x1234, deviceMask: 0xffff, flags: ['needs-nosnoop'] }] } });
  });

  it('keeps every entry of POSTs in flight at once, and a restart finds them all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coherency-quirks-'));
    dirs.push(dir);
    const start = async (): Promise<FastifyInstance> => {
      const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), store: new SqliteStore(dir), threads: 1 });
      await runtime.start();
      return app({ runtime });
    };
    const a = await start();
    const entries = Array.from({ length: 12 }, (_, i) => ({ vendorId: '0x1d0f', deviceId: `0x${(0x100 + i).toString(16).padStart(4, '0')}`, deviceMask: '0xffff', flags: ['needs-nosnoop'] }));
    const answers = await Promise.all(entries.map((q) => call(a, 'POST', '/v1/quirks', { quirks: [q] })));
    expect(answers.map((r) => r.status)).toEqual(entries.map(() => 200));
    // Each answer's list holds its own entry, and the last change's holds every one.
    for (const [i, r] of answers.entries()) expect(r.body.quirks).toContainEqual(entries[i]);
    const last = answers.reduce((x, y) => ((x.body.revision ?? 0) > (y.body.revision ?? 0) ? x : y));
    expect(new Set(answers.map((r) => r.body.revision)).size).toBe(entries.length);
    expect(last.body.quirks).toHaveLength(SHIPPED.length + entries.length);
    expect(await inForce(a)).toEqual(last.body.quirks);
    const held = await inForce(a);
    expect(held.slice(0, SHIPPED.length)).toEqual(SHIPPED);
    expect(held.slice(SHIPPED.length)).toEqual(expect.arrayContaining(entries));

    await a.close();
    apps.splice(apps.indexOf(a), 1);
    const restarted = await start();
    expect(await inForce(restarted)).toEqual(held);
  });
});

/** An answer with its flush jobs' ids (random per process) replaced. */
function withoutJobIds(body: Answer['body']): unknown {
  return JSON.parse(JSON.stringify(body).replace(/fj-[0-9a-f-]+/g, 'fj-…'));
}

describe('a POST that exposes a domain', () => {
  it('answers the replay flush a PUT of the merged list answers, on a twin service', async () => {
    const [posted, put] = [await app(), await app()];
    await quirkVm(posted);
    await quirkVm(put);
    const added = { vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'] };
    const raw = await posted.inject({ method: 'POST', url: '/v1/quirks', headers: json, payload: { quirks: [added] } });
    const byPost: Answer = { status: raw.statusCode, body: raw.json() };
    const byPut = await call(put, 'PUT', '/v1/quirks', { quirks: [...SHIPPED, added] });
    expect(byPost.status).toBe(200);
    expect(byPut.status).toBe(200);
    expect(byPost.body.vms).toHaveLength(1);
    expect(byPost.body.vms?.[0]).toMatchObject({
      vmId: 'vmq',
      flush: { required: true, cause: 'replay', when: 'before-map', bytes: '0x200000', ranges: [{ hpa: '0x40000000', length: '0x200000' }], jobId: expect.stringMatching(/^fj-/) as unknown },
      reasons: [expect.objectContaining({ rule: 'F2' })]
    });
    expect(withoutJobIds(byPost.body)).toEqual(withoutJobIds(byPut.body));
    // Written by the serializer compiled from PutQuirksAnswer, as PUT's: the zod serializer's bytes.
    expect(raw.body).toBe(serializerCompiler({ schema: PutQuirksAnswer, method: 'POST', url: '/v1/quirks' })(byPost.body));
    // And each service holds the job it named, pending its VMM's acknowledgement.
    const job = byPost.body.vms?.[0]?.['flush'] as { jobId: string };
    expect((await call(posted, 'GET', `/v1/flush-jobs/${job.jobId}`)).body).toMatchObject({ vmId: 'vmq', cause: 'replay' });
  });
});
