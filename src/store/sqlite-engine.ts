/**
 * The SQLite engine behind the embedded store (better-sqlite3, WAL, synchronous=FULL): the
 * tables (migrated by sqlite/migrations.ts) and every statement, prepared once. It is
 * synchronous; the store (sqlite-store.ts) runs it in a worker thread so that no commit or fsync
 * blocks the event loop.
 * It keeps decided state (state-store.ts): per VM a snapshot and the effects after it, the quirk
 * list in force, and the commands behind the changes as the audit trail. Appends and snapshots
 * queued together are committed in one transaction, in order (group commit).
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { auditRow, pairsFromBytes, pairsToBytes, type AuditRow } from './codec.js';
import { migrate } from './sqlite/migrations.js';
import { packWrites, type PackedWrites, type WriteOp } from './sqlite/packed-writes.js';
import { mergeJobs } from './merge-jobs.js';
import { QUIRKS_EFFECT, type AuditSize, type AuditEntry, type AuditQuery, type EffectRow, type LegacyCommand, type LoadedJob, type LoadedState, type VmSnapshot } from './state-store.js';

/** Meta key of the store's format: '2' holds decided state; absent with commands: a 0.1.0 log. */
const FORMAT = 'format';

export function dataFile(dataDir: string): string {
  return join(dataDir, 'coherency.db');
}

/**
 * Bytes an audit record takes beyond its columns' text: its row header, seq and at, the entries
 * of its two indexes and page slack. Measured with dbstat on 20,000 single-range pins and unpins
 * of 50 and of 1,000 VMs: 154 bytes a record on pages, 102 of them text (see
 * test/store/audit-size.test.ts, which checks the estimate against the pages).
 */
export const SQLITE_AUDIT_ROW_OVERHEAD = 52;

/** An audit record's approximate bytes, as SQL (see AuditSize.auditBytes); `vm` is stored twice (row, index). */
const AUDIT_ROW_BYTES = `length(body) + ifnull(length(actor), 0) + ifnull(length(rules), 0) + 2 * ifnull(length(vm), 0) + ${SQLITE_AUDIT_ROW_OVERHEAD}`;

function auditRowBytes(vm: string | null, body: string, actor: string | null, rules: string | null): number {
  return body.length + (actor?.length ?? 0) + (rules?.length ?? 0) + 2 * (vm?.length ?? 0) + SQLITE_AUDIT_ROW_OVERHEAD;
}

/** Records a size prune removes per transaction at most, so that commits waiting meanwhile are not held up long. */
const PRUNE_CHUNK = 2000;

/** Records the first count of the trail reads per call. */
const COUNT_CHUNK = 50_000;

/** A size prune's answer: what it found and did, and whether the trail is still above the goal. */
export interface AuditPruned extends AuditSize {
  readonly more: boolean;
}

export class SqliteEngine {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #write: (batches: readonly PackedWrites[]) => void;
  readonly #forget: (id: string) => void;
  /** Transactions committed, for tests of group commit. */
  transactions = 0;
  /**
   * The audit trail's records and approximate bytes: counted once (the first size check), then
   * kept up to date as records are written and removed. Null until counted.
   */
  #audit: { rows: number; bytes: number } | null = null;
  /** The first count, as far as it got: records up to revision `seq` (a trail written before this start is counted a chunk per check). */
  #counting = { seq: 0, rows: 0, bytes: 0 };
  /** Records the transaction being written adds (counted in once it commits). */
  #adding = { rows: 0, bytes: 0 };

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.path = dataFile(dataDir);
    this.#db = new Database(this.path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    migrate(this.#db, this.path);
    const db = this.#db;
    // A fold window's summary (AuditFolder) is replaced by each change folded into it.
    const insertAudit = db.prepare('INSERT INTO commands (seq, at, vm, body, actor, rules) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(seq) DO UPDATE SET body = excluded.body, rules = excluded.rules');
    const insertEffect = db.prepare('INSERT INTO effects (seq, vm, record, ops) VALUES (?, ?, ?, ?)');
    const dropEffects = db.prepare('DELETE FROM effects WHERE vm = ?');
    const dropEffectsTo = db.prepare('DELETE FROM effects WHERE vm = ? AND seq <= ?');
    const dropSnapshot = db.prepare('DELETE FROM snapshots WHERE vm = ?');
    const putSnapshot = db.prepare('INSERT INTO snapshots (vm, seq, record, pins) VALUES (?, ?, ?, ?) ON CONFLICT(vm) DO UPDATE SET seq = excluded.seq, record = excluded.record, pins = excluded.pins');
    const putMeta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
    const insertPart = db.prepare('INSERT INTO job_parts (job, seq, vm, header, pairs) VALUES (?, ?, ?, ?, ?)');
    // Ranges given once are kept (COALESCE): a record without them replaces only the state.
    const putJob = db.prepare('INSERT INTO jobs (id, vm, body, pairs) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body, pairs = COALESCE(excluded.pairs, jobs.pairs)');
    const dropJob = db.prepare('DELETE FROM jobs WHERE id = ?');
    const dropParts = db.prepare('DELETE FROM job_parts WHERE job = ?');
    this.#forget = (id) => {
      dropJob.run(id);
      dropParts.run(id);
    };
    this.#write = db.transaction((batches: readonly PackedWrites[]) => {
      let last = -1;
      for (const { values: v, floats } of batches) {
        let i = 0;
        const str = (): string => v[i++] as string;
        const num = (): number => v[i++] as number;
        const nullable = (): string | null => v[i++] as string | null;
        const bytes = (): Buffer | null => {
          const from = num();
          const length = num();
          return from < 0 ? null : pairsToBytes(floats.subarray(from, from + length));
        };
        while (i < v.length) {
          const kind = str();
          if (kind === 'p') {
            putMeta.run('probe', String(num()));
          } else if (kind === 'j') {
            putJob.run(str(), str(), str(), bytes());
          } else if (kind === 'f') {
            const n = num();
            for (let k = 0; k < n; k++) this.#forget(str());
          } else if (kind === 's') {
            const vmId = str();
            const seq = num();
            putSnapshot.run(vmId, seq, str(), bytes());
            dropEffectsTo.run(vmId, seq);
          } else {
            const seq = num();
            const at = num();
            const vm = nullable();
            const body = str();
            const actor = nullable();
            const rules = nullable();
            const auditSeq = num();
            for (let n = num(); n > 0; n--) {
              const vmId = str();
              const record = nullable();
              const ops = bytes();
              // A newer quirk list makes older ones useless; a deleted VM leaves nothing behind.
              if (vmId === QUIRKS_EFFECT || record === null) dropEffects.run(vmId);
              if (record === null) {
                dropSnapshot.run(vmId);
                continue;
              }
              insertEffect.run(seq, vmId, record, ops);
            }
            for (let n = num(); n > 0; n--) insertPart.run(str(), seq, str(), str(), bytes());
            insertAudit.run(auditSeq, at, vm, body, actor, rules);
            // A summary rewritten keeps its place and about its size: only new records count.
            if (auditSeq === seq) {
              this.#adding.rows++;
              this.#adding.bytes += auditRowBytes(vm, body, actor, rules);
            }
            last = seq;
          }
        }
      }
      if (last >= 0) putMeta.run('seq', String(last));
    });
  }

  load(): LoadedState {
    const db = this.#db;
    const seq = Number((db.prepare("SELECT value FROM meta WHERE key = 'seq'").get() as { value: string } | undefined)?.value ?? 0);
    const snapshots = (db.prepare('SELECT vm, seq, record, pins FROM snapshots').all() as { vm: string; seq: number; record: string; pins: Buffer }[]).map((r) => ({
      vmId: r.vm,
      seq: r.seq,
      record: r.record,
      pins: pairsFromBytes(r.pins) as Float64Array
    }));
    const effects = (db.prepare('SELECT seq, vm, record, ops FROM effects ORDER BY seq, rowid').all() as { seq: number; vm: string; record: string | null; ops: Buffer | null }[]).map(
      (r): EffectRow => ({ seq: r.seq, vmId: r.vm, record: r.record, ops: pairsFromBytes(r.ops) })
    );
    return { seq, snapshots, effects };
  }

  legacy(): LegacyCommand[] | null {
    if (this.#db.prepare('SELECT value FROM meta WHERE key = ?').get(FORMAT) !== undefined) return null;
    const rows = this.#db.prepare('SELECT seq, at, body, actor, rules FROM commands ORDER BY seq').all() as AuditRow[];
    return rows.map(auditRow);
  }

  migrated(snapshots: readonly VmSnapshot[], quirks: string, seq: number): void {
    const db = this.#db;
    db.transaction(() => {
      const put = db.prepare('INSERT INTO snapshots (vm, seq, record, pins) VALUES (?, ?, ?, ?) ON CONFLICT(vm) DO UPDATE SET seq = excluded.seq, record = excluded.record, pins = excluded.pins');
      for (const s of snapshots) put.run(s.vmId, s.seq, s.record, pairsToBytes(s.pins));
      db.prepare('INSERT INTO effects (seq, vm, record, ops) VALUES (?, ?, ?, NULL)').run(seq, QUIRKS_EFFECT, quirks);
      db.prepare("INSERT INTO meta (key, value) VALUES ('seq', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(String(seq));
      db.prepare("INSERT INTO meta (key, value) VALUES (?, '2') ON CONFLICT(key) DO UPDATE SET value = '2'").run(FORMAT);
    })();
  }

  audit(query: AuditQuery): AuditEntry[] {
    const rows = this.#db
      .prepare(
        `SELECT seq, at, body, actor, rules FROM commands WHERE seq > ? AND at >= ? ${query.vmId === undefined ? '' : 'AND vm = ?'} ORDER BY seq LIMIT ?`
      )
      .all(...[query.afterSeq ?? 0, query.since ?? 0, ...(query.vmId === undefined ? [] : [query.vmId]), query.limit]) as AuditRow[];
    return rows.map(auditRow);
  }

  /** Commits `batches` in one transaction, in order; throws (and keeps none of them) when it cannot. */
  writePacked(batches: readonly PackedWrites[]): void {
    this.#adding = { rows: 0, bytes: 0 };
    this.#write(batches);
    this.transactions++;
    if (this.#audit !== null) {
      this.#audit.rows += this.#adding.rows;
      this.#audit.bytes += this.#adding.bytes;
    }
  }

  /** Commits `ops` in one transaction (see writePacked). */
  write(ops: readonly WriteOp[]): void {
    this.writePacked([packWrites(ops)]);
  }

  meta(key: string, initial: string): string {
    this.#db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING').run(key, initial);
    const row = this.#db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string };
    return row.value;
  }

  loadJobs(): LoadedJob[] {
    const records = this.#db.prepare('SELECT id, vm, body, pairs FROM jobs ORDER BY rowid').all() as { id: string; vm: string; body: string; pairs: Buffer | null }[];
    const parts = this.#db.prepare('SELECT job, vm, header, pairs FROM job_parts ORDER BY rowid').all() as { job: string; vm: string; header: string; pairs: Buffer }[];
    return mergeJobs(
      records.map((r) => ({ id: r.id, vmId: r.vm, body: r.body, pairs: pairsFromBytes(r.pairs) })),
      parts.map((p) => ({ id: p.job, vmId: p.vm, header: p.header, pairs: pairsFromBytes(p.pairs) as Float64Array }))
    );
  }

  trimAudit(at: number): number {
    const db = this.#db;
    const [removed, gone] = db.transaction((): [number, { rows: number; bytes: number }] => {
      const bytes = db.prepare(`SELECT count(*) AS rows, ifnull(sum(${AUDIT_ROW_BYTES}), 0) AS bytes FROM commands WHERE at < ?`).get(at) as { rows: number; bytes: number };
      return [db.prepare('DELETE FROM commands WHERE at < ?').run(at).changes, bytes];
    })();
    // Counted once removed (a failed trim leaves the count as it was). Records removed while the first count runs: it starts over.
    if (this.#audit === null) this.#counting = { seq: 0, rows: 0, bytes: 0 };
    else if (removed > 0) {
      this.#audit.rows -= gone.rows;
      this.#audit.bytes -= gone.bytes;
    }
    return removed;
  }

  /**
   * The audit trail's records and bytes, counted once, COUNT_CHUNK records per call (a trail of
   * 256 MiB is a million records: counted at once, it would hold up the commits behind it), then
   * kept up to date. Null while the count is not done.
   */
  #auditSize(): { rows: number; bytes: number } | null {
    if (this.#audit !== null) return this.#audit;
    const c = this.#counting;
    const chunk = this.#db
      .prepare(`SELECT count(*) AS rows, ifnull(sum(bytes), 0) AS bytes, max(seq) AS last FROM (SELECT seq, ${AUDIT_ROW_BYTES} AS bytes FROM commands WHERE seq > ? ORDER BY seq LIMIT ?)`)
      .get(c.seq, COUNT_CHUNK) as { rows: number; bytes: number; last: number | null };
    this.#counting = { seq: chunk.last ?? c.seq, rows: c.rows + chunk.rows, bytes: c.bytes + chunk.bytes };
    // Records written meanwhile have later revisions: the count reaches them too.
    if (chunk.rows < COUNT_CHUNK) this.#audit = { rows: this.#counting.rows, bytes: this.#counting.bytes };
    return this.#audit;
  }

  /**
   * When the audit trail holds more than `above` bytes, removes its oldest records (by
   * revision) towards `goal` bytes, at most PRUNE_CHUNK of them in one transaction; `more`: call
   * again (with `above` = `goal`) to go on. Cheap when under: the size is kept up to date.
   */
  pruneAudit(above: number, goal: number): AuditPruned {
    const audit = this.#auditSize();
    // Still counting: go on at once (another chunk, after the commits queued meanwhile).
    if (audit === null) return { auditBytes: this.#counting.bytes, storeBytes: 0, removed: 0, removedThrough: 0, more: true };
    let removed = 0;
    let removedThrough = 0;
    if (audit.bytes > above && audit.rows > 0) {
      const avg = audit.bytes / audit.rows;
      const n = Math.min(PRUNE_CHUNK, Math.max(1, Math.ceil((audit.bytes - goal) / avg)));
      const gone = this.#db
        .prepare(`DELETE FROM commands WHERE seq IN (SELECT seq FROM commands ORDER BY seq LIMIT ?) RETURNING at, ${AUDIT_ROW_BYTES} AS bytes`)
        .all(n) as { at: number; bytes: number }[];
      for (const g of gone) {
        audit.bytes -= g.bytes;
        if (g.at > removedThrough) removedThrough = g.at;
      }
      removed = gone.length;
      audit.rows -= removed;
    }
    return { auditBytes: Math.max(0, audit.bytes), storeBytes: this.diskBytes(), removed, removedThrough, more: removed > 0 && audit.bytes > goal };
  }

  /** Bytes of the store's files (the database, its WAL and shared-memory index). */
  diskBytes(): number {
    let bytes = 0;
    for (const suffix of ['', '-wal', '-shm']) {
      try {
        bytes += statSync(this.path + suffix).size;
      } catch {
        // Not there (yet): nothing to count.
      }
    }
    return bytes;
  }

  close(): void {
    this.#db.close();
  }
}
