/**
 * High-rate pins and unpins of one VM folded in the audit trail: per VM, actor and kind, the
 * first AUDIT_FOLD_AFTER changes of a window are recorded whole, the later ones in one summary
 * (a valid audit entry, kept under its first folded change's revision and rewritten with each
 * change folded into it), so the trail grows by a bounded number of records per window however
 * fast a VM pins. On every store, through GET /v1/audit, and not counting a change the store
 * refused.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, parseVmId, type Command } from '../../src/domain/index.js';
import { createRuntime } from '../../src/service/runtime.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { AUDIT_FOLD_AFTER, AuditFolder, type StateStore, type StoredChange } from '../../src/store/state-store.js';
import { build, json, readyAgain } from '../helpers/app.js';
import { dropSchemas, freshSchema, PG_URL } from '../helpers/postgres.js';

const dirs: string[] = [];
const schemas: string[] = [];
let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});
afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await dropSchemas(schemas);
});

const T0 = 1_700_000_000_000;
const vm1 = parseVmId('vm1');
const pin = (iova: number, pages = 1): Command => ({ type: 'pin', vmId: vm1, ranges: [{ iova, pages }] }) as unknown as Command;
const unpin = (iova: number, pages = 1): Command => ({ type: 'unpin', vmId: vm1, ranges: [{ iova, pages }] }) as unknown as Command;
const summaryOf = (command: Command): Record<string, number> => (command as unknown as { summary: Record<string, number> }).summary;

describe('AuditFolder', () => {
  it('records the first changes of a window whole, then folds the others into one summary with their totals', () => {
    const folder = new AuditFolder();
    const records = Array.from({ length: 100 }, (_, i) => folder.record(pin(1000 + 10 * i, 1 + (i % 3)), i + 1, T0 + i, 'vmm', ['F1']));
    expect(records.slice(0, AUDIT_FOLD_AFTER).every((r) => r.auditSeq === undefined && 'ranges' in r.command)).toBe(true);
    const folded = records.slice(AUDIT_FOLD_AFTER);
    // Every folded change rewrites one record, under the first folded change's revision.
    expect(new Set(folded.map((r) => r.auditSeq))).toEqual(new Set([AUDIT_FOLD_AFTER + 1]));
    const last = folded[folded.length - 1]!;
    let pages = 0;
    for (let i = AUDIT_FOLD_AFTER; i < 100; i++) pages += 1 + (i % 3);
    expect(last.command).toEqual({
      type: 'pin',
      vmId: 'vm1',
      summary: { ranges: 100 - AUDIT_FOLD_AFTER, pages, iovaFrom: 1000 + 10 * AUDIT_FOLD_AFTER, iovaTo: 1000 + 10 * 99 + 1 + (99 % 3), changes: 100 - AUDIT_FOLD_AFTER, fromRevision: AUDIT_FOLD_AFTER + 1, toRevision: 100 }
    });
    expect(last.rules).toEqual(['F1']);
  });

  it('keeps pins, unpins and actors apart, starts a new window when one is over, and drops a VM\'s windows on forget', () => {
    const folder = new AuditFolder({ after: 2, windowMs: 1000 });
    let seq = 0;
    const kinds = [pin(0), unpin(0), pin(8), unpin(8), pin(16), unpin(16)].map((c) => folder.record(c, ++seq, T0, 'vmm', []));
    expect(kinds.map((r) => r.auditSeq)).toEqual([undefined, undefined, undefined, undefined, 5, 6]);
    expect(folder.record(pin(24), ++seq, T0, 'other', []).auditSeq).toBeUndefined();
    // The window is over: two whole records again, then a new summary.
    expect([1, 2, 3].map((i) => folder.record(pin(100 + i), ++seq, T0 + 1000, 'vmm', []).auditSeq)).toEqual([undefined, undefined, seq]);
    folder.forget(vm1);
    expect(folder.record(pin(200), ++seq, T0 + 1001, 'vmm', []).auditSeq).toBeUndefined();
    // Other commands are never folded.
    expect(folder.record({ type: 'delete-vm', vmId: vm1 }, ++seq, T0, 'vmm', []).auditSeq).toBeUndefined();
  });
});

/** 60 pins then 60 unpins of vm1, appended as the folder records them, 7 changes per append (one transaction). */
async function foldedInto(store: StateStore): Promise<void> {
  const folder = new AuditFolder();
  const changes: StoredChange[] = [];
  for (let i = 0; i < 120; i++) {
    const seq = i + 1;
    const command = i < 60 ? pin(8 * i) : unpin(8 * (i - 60));
    const r = folder.record(command, seq, T0 + seq, 'vmm', [i < 60 ? 'F1' : 'F3']);
    changes.push({ seq, at: T0 + seq, command: r.command, ...(r.auditSeq === undefined ? {} : { auditSeq: r.auditSeq }), effects: [], actor: 'vmm', rules: r.rules });
  }
  for (let i = 0; i < changes.length; i += 7) await store.append(changes.slice(i, i + 7));
  const trail = await store.audit({ limit: 1000 });
  const folded = 60 - AUDIT_FOLD_AFTER;
  expect(trail).toHaveLength(2 * (AUDIT_FOLD_AFTER + 1));
  const summaries = trail.filter((e) => 'summary' in e.command);
  expect(summaries.map((e) => [e.seq, e.at, e.command.type, e.actor, e.rules])).toEqual([
    [AUDIT_FOLD_AFTER + 1, T0 + AUDIT_FOLD_AFTER + 1, 'pin', 'vmm', ['F1']],
    [60 + AUDIT_FOLD_AFTER + 1, T0 + 60 + AUDIT_FOLD_AFTER + 1, 'unpin', 'vmm', ['F3']]
  ]);
  expect(summaryOf(summaries[0]!.command)).toEqual({ ranges: folded, pages: folded, iovaFrom: 8 * AUDIT_FOLD_AFTER, iovaTo: 8 * 59 + 1, changes: folded, fromRevision: AUDIT_FOLD_AFTER + 1, toRevision: 60 });
  expect(summaryOf(summaries[1]!.command)).toMatchObject({ changes: folded, fromRevision: 60 + AUDIT_FOLD_AFTER + 1, toRevision: 120 });
}

describe('folded records in the stores', () => {
  it('memory', async () => {
    await foldedInto(new MemoryStore());
  });

  it('SQLite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coherency-fold-'));
    dirs.push(dir);
    const store = new SqliteStore(dir);
    await foldedInto(store);
    await store.close();
    // The summary is durable as it stands after each change folded into it.
    const again = new SqliteStore(dir);
    expect((await again.audit({ limit: 1000 })).filter((e) => 'summary' in e.command)).toHaveLength(2);
    await again.close();
  });

  it('PostgreSQL', async () => {
    const schema = freshSchema('audit_fold');
    schemas.push(schema);
    const store = new PostgresStore({ connectionString: PG_URL, schema });
    await foldedInto(store);
    await store.close();
  });
});

describe('the byte rate of a VM pinning fast', () => {
  it('one VM\'s 2,000 single-range pins and unpins in a window take the bytes of 2 × (AUDIT_FOLD_AFTER + 1) records', async () => {
    /** The trail's bytes (SqliteStore's estimate: within 15% of its pages) after 2,000 changes recorded by `folder`. */
    const bytesOf = async (folder: AuditFolder): Promise<number> => {
      const dir = mkdtempSync(join(tmpdir(), 'coherency-fold-'));
      dirs.push(dir);
      const store = new SqliteStore(dir);
      const changes: StoredChange[] = [];
      for (let i = 0; i < 2000; i++) {
        const seq = i + 1;
        const command = { type: i % 2 === 0 ? 'pin' : 'unpin', vmId: parseVmId('vm-4f1c2a7e-9b3d-4e8a-b6c1-000000000001'), ranges: [{ iova: 0x40000 + 8 * (i >> 1), pages: 1, ...(i % 2 === 0 ? { hpa: 0x900000 + 8 * (i >> 1) } : {}) }] } as unknown as Command;
        const r = folder.record(command, seq, T0 + seq, 'anonymous', [i % 2 === 0 ? 'F1' : 'F3']);
        changes.push({ seq, at: T0 + seq, command: r.command, ...(r.auditSeq === undefined ? {} : { auditSeq: r.auditSeq }), effects: [], actor: 'anonymous', rules: r.rules });
      }
      for (let i = 0; i < changes.length; i += 100) await store.append(changes.slice(i, i + 100));
      const size = await store.pruneAudit(1e12);
      await store.close();
      return size.auditBytes;
    };
    const whole = await bytesOf(new AuditFolder({ after: Number.POSITIVE_INFINITY }));
    const folded = await bytesOf(new AuditFolder());
    const perRecord = whole / 2000;
    // Whole records and a summary (a little longer: its totals) each, per kind.
    expect(folded).toBeLessThanOrEqual(2 * (AUDIT_FOLD_AFTER + 1) * perRecord * 1.2);
    expect(folded).toBeGreaterThanOrEqual(2 * AUDIT_FOLD_AFTER * perRecord);
    // AUDIT_DISK_REPORT=1: the bytes a single-range change takes, recorded whole and folded.
    if (process.env['AUDIT_DISK_REPORT'] !== undefined) process.stdout.write(`${JSON.stringify({ perChangeWhole: Math.round(perRecord), perWindowFolded: Math.round(folded), perChangeFolded: +(folded / 2000).toFixed(1) })}\n`);
  });
});

/** A memory store whose writes can be refused, like a full disk. */
class RefusingStore extends MemoryStore {
  down = false;
  override append(changes: readonly StoredChange[]): Promise<void> {
    return this.down ? Promise.reject(new Error('disk full')) : super.append(changes);
  }
  override probe(): Promise<void> {
    return this.down ? Promise.reject(new Error('disk full')) : super.probe();
  }
}

type Call = (method: 'GET' | 'PUT' | 'POST', url: string, payload?: object) => Promise<{ status: number; body: Record<string, unknown> }>;

/** An app on `store` holding vm1 (a non-coherent d0, a NIC), and a JSON call to it. */
async function served(store: StateStore): Promise<{ app: FastifyInstance; call: Call }> {
  const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: [], store, threads: 1, simThreads: 0 });
  await runtime.service.restore();
  const a = await build({ runtime });
  app = a;
  const call = async (method: 'GET' | 'PUT' | 'POST', url: string, payload?: object) => {
    const res = await a.inject({ method, url, ...(payload === undefined ? {} : { headers: json, payload }) });
    return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
  };
  await call('PUT', '/v1/vms/vm1', { arch: 'x86_64' });
  await call('PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
  await call('PUT', '/v1/vms/vm1/devices/0000:01:00.0', { domainId: 'd0', vendorId: '0x15b3', deviceId: '0x1017', nosnoop: 'disabled' });
  return { app: a, call };
}

const hex = (n: number): string => `0x${n.toString(16)}`;

describe('GET /v1/audit with folded records', () => {
  it('shows a VM pinning and unpinning 100 ranges one by one as a bounded number of entries, the summaries with the right totals', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coherency-fold-'));
    dirs.push(dir);
    const { call } = await served(new SqliteStore(dir));
    for (let i = 0; i < 100; i++) expect((await call('POST', '/v1/vms/vm1/pins', { iova: hex(0x10000 * i), hpa: hex(0x10000 * i), length: '0x2000' })).status).toBe(200);
    for (let i = 0; i < 100; i++) expect((await call('POST', '/v1/vms/vm1/unpins', { iova: hex(0x10000 * i), length: '0x2000' })).status).toBe(200);
    const page = await call('GET', '/v1/audit?vmId=vm1&limit=1000');
    expect(page.status).toBe(200);
    const items = page.body['items'] as { revision: number; action: string; change: Record<string, unknown> }[];
    // Three set-up changes, then per kind AUDIT_FOLD_AFTER whole records and one summary.
    expect(items).toHaveLength(3 + 2 * (AUDIT_FOLD_AFTER + 1));
    const summaries = items.filter((e) => 'summary' in e.change);
    expect(summaries.map((e) => e.action)).toEqual(['pin', 'unpin']);
    const folded = 100 - AUDIT_FOLD_AFTER;
    // Revisions 1-3 set the VM up; pins are 4-103, unpins 104-203.
    expect(summaries[0]).toMatchObject({
      revision: 3 + AUDIT_FOLD_AFTER + 1,
      change: { vmId: 'vm1', summary: { changes: folded, ranges: folded, pages: 2 * folded, iovaFrom: 16 * AUDIT_FOLD_AFTER, iovaTo: 16 * 99 + 2, fromRevision: 3 + AUDIT_FOLD_AFTER + 1, toRevision: 103 } }
    });
    expect(summaries[1]).toMatchObject({ revision: 103 + AUDIT_FOLD_AFTER + 1, change: { summary: { changes: folded, pages: 2 * folded, toRevision: 203 } } });
  });

  it('never counts a change the store refused: the window ends with it, and its summary keeps what was kept', async () => {
    const store = new RefusingStore();
    const { app: a, call } = await served(store);
    const pins = (from: number, n: number) => Array.from({ length: n }, (_, i) => call('POST', '/v1/vms/vm1/pins', { iova: hex(0x10000 * (from + i)), hpa: hex(0x10000 * (from + i)), length: '0x1000' }));
    for (const p of pins(0, AUDIT_FOLD_AFTER + 4)) expect((await p).status).toBe(200);
    store.down = true;
    expect((await call('POST', '/v1/vms/vm1/pins', { iova: hex(0x10000 * 500), hpa: '0x0', length: '0x1000' })).status).toBe(503);
    store.down = false;
    expect(await readyAgain(a)).toBe(true);
    for (const p of pins(100, AUDIT_FOLD_AFTER + 2)) expect((await p).status).toBe(200);
    const items = (await call('GET', '/v1/audit?vmId=vm1&limit=1000')).body['items'] as { change: Record<string, unknown> }[];
    const summaries = items.filter((e) => 'summary' in e.change).map((e) => e.change['summary'] as Record<string, number>);
    // Before the refusal: 4 folded. After the reload a new window: AUDIT_FOLD_AFTER whole records, then 2 folded.
    expect(summaries.map((s) => s['changes'])).toEqual([4, 2]);
    expect(items).toHaveLength(3 + 2 * (AUDIT_FOLD_AFTER + 1));
  });
});

