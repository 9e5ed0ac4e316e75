/**
 * The audit trail bounded by size (AUDIT_MAX_MB): on SQLite and PostgreSQL, a trail written past
 * a small budget is brought back under it at each check, its oldest records going first, and
 * the service counts what was removed and why (coherency_audit_pruned_total).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, defaultQuirksFile, parseQuirkFile, parseVmId, type Command } from '../../src/domain/index.js';
import { createRuntime } from '../../src/service/runtime.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { AUDIT_PRUNE_TO, type StateStore, type StoredChange } from '../../src/store/state-store.js';
import { dropSchemas, freshSchema, PG_URL } from '../helpers/postgres.js';

const dirs: string[] = [];
const schemas: string[] = [];
afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await dropSchemas(schemas);
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'coherency-audit-'));
  dirs.push(dir);
  return dir;
}

const T0 = 1_700_000_000_000;

/** Single-range pins and unpins of a few VMs, as a busy host's VMMs make them: changes `from`..`to`. */
function churn(from: number, to: number): StoredChange[] {
  const out: StoredChange[] = [];
  for (let seq = from; seq <= to; seq++) {
    const command = { type: seq % 2 === 0 ? 'unpin' : 'pin', vmId: parseVmId(`vm${seq % 7}`), ranges: [{ iova: 4096 + 8 * seq, pages: 1 }] } as unknown as Command;
    out.push({ seq, at: T0 + seq, command, effects: [], actor: 'anonymous', rules: [seq % 2 === 0 ? 'F3' : 'F1'] });
  }
  return out;
}

/** The revisions the trail holds, in order. */
async function revisions(store: StateStore): Promise<number[]> {
  const out: number[] = [];
  for (;;) {
    const page = await store.audit({ afterSeq: out[out.length - 1] ?? 0, limit: 1000 });
    if (page.length === 0) return out;
    out.push(...page.map((e) => e.seq));
  }
}

const BUDGET = 100_000;
const WRITTEN = 4000;

/** Writes WRITTEN changes in rounds of 250, a size check after each: the trail stays within its budget, oldest first. */
async function boundedBySize(store: StateStore): Promise<void> {
  let removed = 0;
  let through = 0;
  for (let from = 1; from <= WRITTEN; from += 250) {
    await store.append(churn(from, from + 249));
    const size = await (store.pruneAudit as (b: number) => Promise<{ auditBytes: number; storeBytes: number; removed: number; removedThrough: number }>)(BUDGET);
    expect(size.auditBytes).toBeLessThanOrEqual(BUDGET);
    expect(size.storeBytes).toBeGreaterThan(0);
    removed += size.removed;
    if (size.removed > 0) {
      expect(size.auditBytes).toBeLessThanOrEqual(BUDGET * AUDIT_PRUNE_TO);
      expect(size.removedThrough).toBeGreaterThan(through);
      through = size.removedThrough;
    }
  }
  const kept = await revisions(store);
  // The newest records are kept, without a gap; exactly the oldest ones went, and were counted.
  expect(kept[kept.length - 1]).toBe(WRITTEN);
  expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => WRITTEN - kept.length + 1 + i));
  expect(removed).toBe(WRITTEN - kept.length);
  expect(removed).toBeGreaterThan(WRITTEN / 2);
  // The last record removed is the one before the first kept.
  expect(through).toBe(T0 + kept[0]! - 1);
  // Under budget, a check removes nothing.
  const again = await store.pruneAudit!(BUDGET);
  expect(again.removed).toBe(0);
}

describe('the audit trail bounded by size on SQLite', () => {
  it('removes the oldest records, so that the trail stays within its budget', async () => {
    const store = new SqliteStore(tempDir());
    await boundedBySize(store);
    await store.close();
  });

  it('estimates the bytes its records take on disk (within 15% of their pages)', async () => {
    const dir = tempDir();
    const store = new SqliteStore(dir);
    for (let from = 1; from <= 20_000; from += 1000) await store.append(churn(from, from + 999));
    const size = await store.pruneAudit(1e12);
    expect(size.removed).toBe(0);
    await store.close();
    const db = new Database(join(dir, 'coherency.db'), { readonly: true });
    const pages = (db.prepare("SELECT sum(pgsize) AS bytes FROM dbstat WHERE name IN ('commands', 'commands_vm', 'commands_at')").get() as { bytes: number }).bytes;
    db.close();
    expect(size.auditBytes / pages).toBeGreaterThan(0.85);
    expect(size.auditBytes / pages).toBeLessThan(1.15);
  });

  it('counts a trail written before it started a chunk at a time, to the same bytes as it counted them while writing', async () => {
    const dir = tempDir();
    const store = new SqliteStore(dir);
    for (let from = 1; from <= 60_000; from += 5000) await store.append(churn(from, from + 4999));
    // The first check counts what is there (two chunks), the next ones only what is added.
    await store.pruneAudit(1e12);
    for (let from = 60_001; from <= 110_000; from += 5000) await store.append(churn(from, from + 4999));
    const written = (await store.pruneAudit(1e12)).auditBytes;
    await store.close();
    const reopened = new SqliteStore(dir);
    const counted = await reopened.pruneAudit(1e12);
    expect(counted.auditBytes).toBe(written);
    expect(counted.removed).toBe(0);
    // Over budget at the first check: counted in full, then pruned.
    const pruned = await reopened.pruneAudit(written / 2);
    expect(pruned.auditBytes).toBeLessThanOrEqual((written / 2) * AUDIT_PRUNE_TO);
    expect(pruned.removed).toBeGreaterThan(50_000);
    await reopened.close();
  });

  it('counts what it removes, by reason, and exports the sizes (coherency_audit_*, coherency_store_bytes)', async () => {
    const store = new SqliteStore(tempDir());
    const clock = { now: T0 + 40 * 86_400_000 };
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), store, auditMaxBytes: BUDGET, auditRetentionMs: 30 * 86_400_000, simThreads: 0, clock: () => clock.now });
    await runtime.start();
    // 100 records older than the retention, then 3,000 more, recent (ages: 40 days, then none).
    await store.append(churn(1, 100));
    await store.append(churn(101, 3100).map((c) => ({ ...c, at: clock.now })));
    runtime.service.auditBudget.start();
    await runtime.service.auditBudget.check();
    // The first round of trimming by age runs at once; wait until it has been counted.
    let text = '';
    for (let i = 0; i < 100 && !/coherency_audit_pruned_total\{reason="age"\} 100\b/.test(text); i++) {
      await new Promise((r) => setTimeout(r, 20));
      text = await runtime.metrics.registry.metrics();
    }
    const kept = await revisions(store);
    const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(value('coherency_audit_pruned_total\\{reason="age"\\}')).toBe(100);
    // The age trim and the size check ran together: every record gone is counted once, as one or the other.
    expect(value('coherency_audit_pruned_total\\{reason="age"\\}') + value('coherency_audit_pruned_total\\{reason="size"\\}')).toBe(3100 - kept.length);
    expect(value('coherency_audit_pruned_total\\{reason="size"\\}')).toBeGreaterThan(0);
    expect(value('coherency_audit_budget_bytes')).toBe(BUDGET);
    expect(value('coherency_audit_bytes')).toBeGreaterThan(0);
    expect(value('coherency_audit_bytes')).toBeLessThanOrEqual(BUDGET);
    expect(value('coherency_store_bytes')).toBeGreaterThan(value('coherency_audit_bytes'));
    // GET /v1/audit says the trail no longer covers what the size check removed.
    expect(runtime.service.auditBudget.keptSince).toBeGreaterThan(clock.now - 30 * 86_400_000);
    await runtime.close();
  });
});

describe('the audit trail bounded by size on PostgreSQL', () => {
  it('removes the oldest records, so that the trail stays within its budget', async () => {
    const schema = freshSchema('audit_size');
    schemas.push(schema);
    const store = new PostgresStore({ connectionString: PG_URL, schema });
    await boundedBySize(store);
    await store.close();
  });

  it('estimates the bytes its records take in the relations (within 25% before any removal)', async () => {
    const schema = freshSchema('audit_est');
    schemas.push(schema);
    const store = new PostgresStore({ connectionString: PG_URL, schema });
    for (let from = 1; from <= 20_000; from += 1000) await store.append(churn(from, from + 999));
    const size = await store.pruneAudit(1e12);
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    const rel = Number((await client.query<{ b: string }>(`SELECT pg_total_relation_size('"${schema}".commands')::text AS b`)).rows[0]?.b);
    await client.end();
    await store.close();
    expect(size.auditBytes / rel).toBeGreaterThan(0.75);
    expect(size.auditBytes / rel).toBeLessThan(1.25);
    expect(size.storeBytes).toBeGreaterThanOrEqual(rel);
  });
});

