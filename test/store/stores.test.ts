import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { parseVmId } from '../../src/domain/index.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { AUDIT_RANGES, auditOf } from '../../src/store/state-store.js';
import { runStoreContract } from './state-store.contract.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'coherency-store-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('memory store', () => {
  runStoreContract({ open: () => new MemoryStore() });
});

describe('sqlite store', () => {
  let dir = '';
  runStoreContract({
    open: () => {
      dir = tempDir();
      return new SqliteStore(dir);
    },
    reopen: () => new SqliteStore(dir)
  });

  it('runs in WAL mode with synchronous=FULL and a schema version', async () => {
    const d = tempDir();
    const store = new SqliteStore(d);
    await store.close();
    const db = new Database(join(d, 'coherency.db'), { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.prepare('SELECT version FROM schema_version').get()).toEqual({ version: 8 });
    db.close();
    const probe = new Database(join(d, 'coherency.db'));
    probe.pragma('synchronous = FULL');
    expect(probe.pragma('synchronous', { simple: true })).toBe(2);
    probe.close();
  });

  it('group commit: appends from one event-loop turn share one transaction', async () => {
    const store = new SqliteStore(tempDir());
    const vmId = parseVmId('vm1');
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.append([{ seq: i + 1, at: i, command: { type: 'delete-vm', vmId }, effects: [] }])));
    expect(store.transactions).toBe(1);
    await store.append([{ seq: 201, at: 201, command: { type: 'delete-vm', vmId }, effects: [] }]);
    expect(store.transactions).toBe(2);
    await store.close();
  });

  it('refuses a data file from a newer schema', async () => {
    const d = tempDir();
    await new SqliteStore(d).close();
    const db = new Database(join(d, 'coherency.db'));
    db.prepare('UPDATE schema_version SET version = 99').run();
    db.close();
    expect(() => new SqliteStore(d)).toThrow(/newer than this service/);
  });
});

describe('audit entries', () => {
  it('keep a small batch whole and summarise a large one: count, pages, IOVA span', () => {
    const vmId = parseVmId('vm1');
    const small = { type: 'pin' as const, vmId, ranges: [{ iova: 4, pages: 2, hpa: 9 }] };
    expect(auditOf(small)).toBe(small);
    const big = { type: 'unpin' as const, vmId, ranges: Array.from({ length: AUDIT_RANGES + 1 }, (_, i) => ({ iova: 100 + 4 * i, pages: 2 })) };
    expect(auditOf(big)).toEqual({ type: 'unpin', vmId: 'vm1', summary: { ranges: AUDIT_RANGES + 1, pages: 2 * (AUDIT_RANGES + 1), iovaFrom: 100, iovaTo: 100 + 4 * AUDIT_RANGES + 2 } });
  });
});
