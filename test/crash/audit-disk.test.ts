/**
 * The acceptance test of a data directory bounded under churn: a real server (STORE=sqlite,
 * AUDIT_MAX_MB=1) takes single-range pin/ack/unpin/ack of 200 VMs (too many for folding to
 * help: each makes fewer than AUDIT_FOLD_AFTER pins a window, so every change is a record) at up
 * to 400 changes/s for 30 s. Its trail starts at 90% of the budget (records of an earlier day,
 * written before it starts), so that it reaches the budget within seconds even on a slow
 * machine, and the level-off is seen for most of the run. Every second the test measures the
 * directory's files and, with dbstat on a read-only connection, what its pages hold.
 *
 * The directory is the state the store keeps (snapshots, the effects after them, flush jobs:
 * bounded by the VMs and their snapshots, not by this budget: measured apart, not asserted), the
 * WAL, and the rest: the audit trail, the pages a prune freed (reused by the next records), and
 * the store's few fixed pages (schema, meta, the WAL's index). Asserted, at every sample:
 * - the audit trail's pages stay within the budget plus what it may exceed it by between two
 *   checks (2 s of records: 230 KB at 400 changes/s) and the estimate's error (10-15% on pages
 *   reused after pruning): 1.5 MiB;
 * - the WAL stays under 5 MiB (SQLite checkpoints it at 1,000 pages of 4 KiB: 4 MiB; 1 MiB more
 *   for the transactions committed while a checkpoint runs);
 * - the rest stays under 1.5 MiB + 10% of the budget (freed pages) + 128 KiB (fixed pages);
 * and the rest levels off: once the trail is at its budget (2 s after it first holds 85% of
 * it), its highest in the second half of the run is at most 64 KiB above its highest in the
 * first half, while the records written in the second half take over 256 KiB.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { parseVmId, type Command } from '../../src/domain/index.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { StoredChange } from '../../src/store/state-store.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const running: ServerProcess[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const s of running) await s.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const MiB = 1024 * 1024;
const BUDGET = 1 * MiB;
const VMS = 200;
const WORKERS = 16;
const RATE = 400;
const SECONDS = 30;

const hex = (n: number): string => `0x${n.toString(16)}`;
/** VM ids as a host names them (a UUID). */
const vmName = (n: number): string => `vm-4f1c2a7e-9b3d-4e8a-b6c1-${n.toString(16).padStart(12, '0')}`;

interface Sample {
  readonly t: number;
  /** The directory's files. */
  readonly dir: number;
  /** Pages of the audit trail (its table and indexes), of the rest of the state, and free. */
  readonly audit: number;
  readonly state: number;
  readonly changes: number;
  /** The WAL file, and the free pages of the database file. */
  readonly wal: number;
  readonly free: number;
}

describe('the data directory under churn, with AUDIT_MAX_MB=1', () => {
  it(`levels off: the audit trail within its budget, the rest within the store's fixed overhead (${VMS} VMs, pin/ack/unpin/ack, up to ${RATE} changes/s, ${SECONDS} s)`, { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coherency-audit-disk-'));
    dirs.push(dir);
    // Yesterday's trail: single-range pins and unpins, up to 90% of the budget.
    const seed = new SqliteStore(dir);
    const yesterday = Date.now() - 86_400_000;
    let seeded = 0;
    while ((await seed.pruneAudit(1e12)).auditBytes < 0.9 * BUDGET) {
      const batch: StoredChange[] = [];
      for (let i = 0; i < 100; i++, seeded++) {
        const command = { type: seeded % 2 === 0 ? 'pin' : 'unpin', vmId: parseVmId(vmName(1000 + (seeded % VMS))), ranges: [{ iova: seeded, pages: 1, hpa: 0x100 + seeded }] } as unknown as Command;
        batch.push({ seq: seeded + 1, at: yesterday + seeded, command, effects: [], actor: 'anonymous', rules: ['F1'] });
      }
      await seed.append(batch);
    }
    await seed.close();
    const server = await startServer({ STORE: 'sqlite', DATA_DIR: dir, AUDIT_MAX_MB: '1' });
    running.push(server);
    const call = async (method: string, path: string, body?: unknown): Promise<Record<string, unknown>> => {
      const res = await fetch(`${server.url}${path}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
      const parsed = (await res.json()) as Record<string, unknown>;
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(parsed)}`);
      return parsed;
    };
    const inWorkers = (fn: (vm: number) => Promise<void>): Promise<void[]> =>
      Promise.all(
        Array.from({ length: WORKERS }, async (_, w) => {
          for (let vm = w; vm < VMS; vm += WORKERS) await fn(vm);
        })
      );
    // Pessimistic VMs with a device that may no-snoop: every pin and unpin is a flush to acknowledge.
    await inWorkers(async (vm) => {
      await call('PUT', `/v1/vms/${vmName(vm)}`, { arch: 'x86_64', policy: { mode: 'pessimistic' } });
      await call('PUT', `/v1/vms/${vmName(vm)}/domains/d0`, { enforceCacheCoherency: false });
      await call('PUT', `/v1/vms/${vmName(vm)}/devices/0000:00:02.0`, { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', nosnoop: 'enabled' });
    });
    const ack = async (answer: Record<string, unknown>): Promise<void> => {
      const jobId = (answer['flush'] as { jobId?: string }).jobId;
      if (jobId !== undefined) await call('POST', `/v1/flush-jobs/${jobId}/ack`);
    };

    const db = new Database(join(dir, 'coherency.db'), { readonly: true });
    const pagesOf = db.prepare('SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name');
    const samples: Sample[] = [];
    let changes = 0;
    const start = performance.now();
    const sample = (): void => {
      let files = 0;
      for (const f of readdirSync(dir)) files += statSync(join(dir, f)).size;
      let audit = 0;
      let state = 0;
      for (const p of pagesOf.all() as { name: string; bytes: number }[]) {
        if (p.name.startsWith('commands')) audit += p.bytes;
        else state += p.bytes;
      }
      let wal = 0;
      try {
        wal = statSync(join(dir, 'coherency.db-wal')).size;
      } catch {
        // Checkpointed and gone.
      }
      const free = (db.pragma('freelist_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number);
      samples.push({ t: (performance.now() - start) / 1000, dir: files, audit, state, changes, wal, free });
    };
    const sampler = setInterval(sample, 1000);
    const end = start + SECONDS * 1000;
    try {
      await Promise.all(
        Array.from({ length: WORKERS }, async (_, w) => {
          for (let round = 0; performance.now() < end; round++) {
            for (let vm = w; vm < VMS && performance.now() < end; vm += WORKERS) {
              const iova = hex(0x1000 * round);
              await ack(await call('POST', `/v1/vms/${vmName(vm)}/pins`, { iova, hpa: hex(0x100000 + 0x1000 * round), length: '0x1000' }));
              await ack(await call('POST', `/v1/vms/${vmName(vm)}/unpins`, { iova, length: '0x1000' }));
              changes += 2;
              // At most RATE changes/s, all workers together.
              const wait = start + (changes / RATE) * 1000 - performance.now();
              if (wait > 0) await new Promise((r) => setTimeout(r, wait));
            }
          }
        })
      );
    } finally {
      clearInterval(sampler);
    }
    // The last size check (every 2 s) has run.
    await new Promise((r) => setTimeout(r, 2500));
    sample();
    db.close();
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
    const oldest = (await call('GET', '/v1/audit?limit=1'))['items'] as { revision: number }[];
    await server.kill('SIGTERM');

    const pruned = value('coherency_audit_pruned_total\\{reason="size"\\}');
    const last = samples[samples.length - 1] as Sample;
    // Bytes a record takes on disk: the trail's pages over its records, as measured at the end.
    const check = new Database(join(dir, 'coherency.db'), { readonly: true });
    const kept = (check.prepare('SELECT count(*) AS n FROM commands').get() as { n: number }).n;
    check.close();
    const perRecord = last.audit / kept;
    const rest = (s: Sample): number => s.dir - s.state - s.wal;
    const full = samples.find((s) => s.audit >= 0.85 * BUDGET) ?? last;
    const settled = samples.filter((s) => s.t >= full.t + 2);
    const firstHalf = settled.slice(0, Math.floor(settled.length / 2));
    const secondHalf = settled.slice(firstHalf.length);
    const grown = Math.max(...secondHalf.map(rest)) - Math.max(...firstHalf.map(rest));
    const secondHalfBytes = (last.changes - (secondHalf[0] ?? last).changes) * perRecord;
    // AUDIT_DISK_REPORT=1: what was measured (bytes a record takes, the directory over time).
    if (process.env['AUDIT_DISK_REPORT'] !== undefined)
      process.stdout.write(
        `${JSON.stringify({
        seeded,
        changes,
        rate: Math.round(changes / SECONDS),
        kept,
        perRecord: Math.round(perRecord),
        pruned,
        settledAt: Math.round(full.t + 2),
        grown,
        secondHalfBytes: Math.round(secondHalfBytes),
        samples: samples.map((s) => `${Math.round(s.t)}s dir ${(s.dir / MiB).toFixed(2)} audit ${(s.audit / MiB).toFixed(2)} state ${(s.state / MiB).toFixed(2)} wal ${(s.wal / MiB).toFixed(2)} free ${(s.free / MiB).toFixed(2)}`).join(', ')
        })}\n`
      );

    // The churn wrote past the budget, and the size checks removed the oldest records: yesterday's first.
    expect((seeded + changes + 3 * VMS) * perRecord).toBeGreaterThan(1.5 * BUDGET);
    expect(pruned).toBeGreaterThan(0);
    expect(oldest[0]?.revision).toBe(pruned + 1);
    expect(value('coherency_audit_bytes')).toBeLessThanOrEqual(BUDGET);
    for (const s of samples) {
      expect(s.audit).toBeLessThanOrEqual(1.5 * BUDGET);
      expect(s.wal).toBeLessThanOrEqual(5 * MiB);
      expect(rest(s)).toBeLessThanOrEqual(1.6 * BUDGET + 128 * 1024);
    }
    // Levels off: once the trail is at its budget, the directory (but the state and the WAL) no longer grows...
    expect(firstHalf.length).toBeGreaterThanOrEqual(5);
    expect(grown).toBeLessThanOrEqual(64 * 1024);
    // ...while the records written meanwhile would have grown it by more than that.
    expect(secondHalfBytes).toBeGreaterThan(256 * 1024);
  });
});
