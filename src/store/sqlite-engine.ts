/**
 * The SQLite engine behind the embedded store (better-sqlite3, WAL, synchronous=FULL): the
 * tables, their migrations and every statement, prepared once. It is synchronous; the store
 * (sqlite-store.ts) runs it in a worker thread so that no commit or fsync blocks the event loop.
 * It keeps decided state (state-store.ts): per VM a snapshot and the effects after it, the quirk
 * list in force, and the commands behind the changes as the audit trail. Appends and snapshots
 * queued together are committed in one transaction, in order (group commit).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { auditRow, encodeCommand, pairsFromBytes, pairsToBytes, type AuditRow } from './codec.js';
import { mergeJobs, QUIRKS_EFFECT, type AuditEntry, type AuditQuery, type EffectRow, type LegacyCommand, type LoadedJob, type LoadedState, type StoredChange, type StoredJob, type VmSnapshot } from './state-store.js';

/** Schema migrations, applied in order; the version table records how far a file has come. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE commands (
     seq  INTEGER PRIMARY KEY,
     at   INTEGER NOT NULL,
     vm   TEXT,
     body TEXT NOT NULL
   )`,
  `CREATE TABLE jobs (
     id    TEXT PRIMARY KEY,
     vm    TEXT NOT NULL,
     body  TEXT NOT NULL,
     pairs BLOB
   )`,
  `ALTER TABLE commands ADD COLUMN actor TEXT`,
  `ALTER TABLE commands ADD COLUMN rules TEXT`,
  `CREATE INDEX commands_vm ON commands (vm, seq)`,
  `CREATE TABLE meta (
     key   TEXT PRIMARY KEY,
     value TEXT NOT NULL
   )`,
  // Decided state (0.2): effects of changes after each VM's snapshot. `commands` stays as the
  // audit trail.
  `CREATE TABLE effects (
     seq    INTEGER NOT NULL,
     vm     TEXT NOT NULL,
     record TEXT,
     ops    BLOB
   );
   CREATE INDEX effects_vm ON effects (vm, seq);
   CREATE TABLE snapshots (
     vm     TEXT PRIMARY KEY,
     seq    INTEGER NOT NULL,
     record TEXT NOT NULL,
     pins   BLOB NOT NULL
   );
   INSERT INTO meta (key, value) SELECT 'format', '2' WHERE NOT EXISTS (SELECT 1 FROM commands)`,
  // Each decision's part of a flush job, stored with its change; `jobs` keeps the job's state.
  `CREATE TABLE job_parts (
     job    TEXT NOT NULL,
     seq    INTEGER NOT NULL,
     vm     TEXT NOT NULL,
     header TEXT NOT NULL,
     pairs  BLOB NOT NULL
   );
   CREATE INDEX job_parts_job ON job_parts (job);
   CREATE INDEX commands_at ON commands (at)`
];

/** Meta key of the store's format: '2' holds decided state; absent with commands: a 0.1.0 log. */
const FORMAT = 'format';

/** A write the engine commits in order with the others queued with it. */
export type WriteOp =
  | { readonly kind: 'append'; readonly changes: readonly StoredChange[] }
  | { readonly kind: 'snapshot'; readonly snapshot: VmSnapshot }
  | { readonly kind: 'probe'; readonly at: number }
  | { readonly kind: 'job'; readonly job: StoredJob }
  | { readonly kind: 'forget'; readonly ids: readonly string[] };

/**
 * Writes as they travel to the writer thread: their fields flattened into one array of strings
 * and numbers, in order, and every number array (pin operations, job ranges, pinned ranges) in
 * one Float64Array, named by offset and length (-1: none). Far cheaper to copy between threads
 * than the objects themselves, and the numbers can be transferred rather than copied.
 */
export interface PackedWrites {
  readonly values: (string | number | null)[];
  readonly floats: Float64Array;
}

/** How many numbers a write carries to the writer thread (pin operations, job ranges, pinned ranges). */
export function numbersOf(op: WriteOp): number {
  switch (op.kind) {
    case 'append': {
      let n = 0;
      for (const c of op.changes) {
        for (const e of c.effects) n += e.ops?.length ?? 0;
        for (const j of c.jobs ?? []) n += j.pairs.length;
      }
      return n;
    }
    case 'snapshot':
      return op.snapshot.pins.length;
    case 'job':
      return op.job.pairs?.length ?? 0;
    case 'probe':
    case 'forget':
      return 0;
  }
}

/** Flattens `ops` (see PackedWrites); the column values are encoded here, once. */
export function packWrites(ops: readonly WriteOp[]): PackedWrites {
  let size = 0;
  for (const op of ops) size += numbersOf(op);
  const floats = new Float64Array(size);
  let at = 0;
  const values: (string | number | null)[] = [];
  const put = (a: Float64Array | null): void => {
    if (a === null) {
      values.push(-1, -1);
      return;
    }
    floats.set(a, at);
    values.push(at, a.length);
    at += a.length;
  };
  for (const op of ops) {
    switch (op.kind) {
      case 'append':
        for (const c of op.changes) {
          values.push('c', c.seq, c.at, 'vmId' in c.command ? c.command.vmId : null, encodeCommand(c.command), c.actor ?? null, c.rules === undefined ? null : JSON.stringify(c.rules), c.effects.length);
          for (const e of c.effects) {
            values.push(e.vmId, e.record);
            put(e.ops);
          }
          const jobs = c.jobs ?? [];
          values.push(jobs.length);
          for (const j of jobs) {
            values.push(j.id, j.vmId, j.header);
            put(j.pairs);
          }
        }
        break;
      case 'snapshot':
        values.push('s', op.snapshot.vmId, op.snapshot.seq, op.snapshot.record);
        put(op.snapshot.pins);
        break;
      case 'probe':
        values.push('p', op.at);
        break;
      case 'job':
        values.push('j', op.job.id, op.job.vmId, op.job.body);
        put(op.job.pairs);
        break;
      case 'forget':
        values.push('f', op.ids.length, ...op.ids);
        break;
    }
  }
  return { values, floats };
}

export function dataFile(dataDir: string): string {
  return join(dataDir, 'coherency.db');
}

export class SqliteEngine {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #write: (batches: readonly PackedWrites[]) => void;
  readonly #forget: (id: string) => void;
  /** Transactions committed, for tests of group commit. */
  transactions = 0;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.path = dataFile(dataDir);
    this.#db = new Database(this.path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#migrate();
    const db = this.#db;
    const insertAudit = db.prepare('INSERT INTO commands (seq, at, vm, body, actor, rules) VALUES (?, ?, ?, ?, ?, ?)');
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
            insertAudit.run(seq, at, vm, body, actor, rules);
            last = seq;
          }
        }
      }
      if (last >= 0) putMeta.run('seq', String(last));
    });
  }

  #migrate(): void {
    this.#db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = this.#db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
    let version = row?.version ?? 0;
    if (row === undefined) this.#db.prepare('INSERT INTO schema_version (version) VALUES (0)').run();
    if (version > MIGRATIONS.length) throw new Error(`${this.path} has schema version ${version}, newer than this service (${MIGRATIONS.length})`);
    for (; version < MIGRATIONS.length; version++) {
      const sql = MIGRATIONS[version] as string;
      this.#db.transaction(() => {
        this.#db.exec(sql);
        this.#db.prepare('UPDATE schema_version SET version = ?').run(version + 1);
      })();
    }
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
    this.#write(batches);
    this.transactions++;
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
    return this.#db.prepare('DELETE FROM commands WHERE at < ?').run(at).changes;
  }

  close(): void {
    this.#db.close();
  }
}
