/**
 * The embedded default store: SQLite (better-sqlite3) in WAL mode with synchronous=FULL under
 * DATA_DIR. Appends from one event-loop turn are committed in one transaction (group commit), and
 * each append resolves only after its transaction committed, so an answer sent after it survives
 * a crash.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { auditRow, encodeCommand, pairsFromBytes, pairsToBytes, decodeCommand, type AuditRow } from './codec.js';
import { StoreUnavailableError, type AuditQuery, type StateStore, type StoredCommand, type StoredJob } from './state-store.js';

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
   )`
];

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

export class SqliteStore implements StateStore {
  readonly kind = 'sqlite' as const;
  readonly path: string;
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #commit: (rows: readonly StoredCommand[]) => void;
  #pending: StoredCommand[] = [];
  #waiters: Waiter[] = [];
  #scheduled = false;
  /** Transactions committed, for tests of group commit. */
  transactions = 0;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.path = join(dataDir, 'coherency.db');
    this.#db = new Database(this.path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#migrate();
    this.#insert = this.#db.prepare('INSERT INTO commands (seq, at, vm, body, actor, rules) VALUES (?, ?, ?, ?, ?, ?)');
    this.#commit = this.#db.transaction((rows: readonly StoredCommand[]) => {
      for (const r of rows) {
        this.#insert.run(r.seq, r.at, 'vmId' in r.command ? r.command.vmId : null, encodeCommand(r.command), r.actor ?? null, r.rules === undefined ? null : JSON.stringify(r.rules));
      }
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

  load(): Promise<StoredCommand[]> {
    const rows = this.#db.prepare('SELECT seq, at, body FROM commands ORDER BY seq').all() as { seq: number; at: number; body: string }[];
    return Promise.resolve(rows.map((r) => ({ seq: r.seq, at: r.at, command: decodeCommand(r.body) })));
  }

  audit(query: AuditQuery): Promise<StoredCommand[]> {
    const rows = this.#db
      .prepare(
        `SELECT seq, at, body, actor, rules FROM commands WHERE seq > ? AND at >= ? ${query.vmId === undefined ? '' : 'AND vm = ?'} ORDER BY seq LIMIT ?`
      )
      .all(...[query.afterSeq ?? 0, query.since ?? 0, ...(query.vmId === undefined ? [] : [query.vmId]), query.limit]) as AuditRow[];
    return Promise.resolve(rows.map(auditRow));
  }

  append(commands: readonly StoredCommand[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push(...commands);
      this.#waiters.push({ resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** One transaction for everything appended since the last flush. */
  #flush(): void {
    const rows = this.#pending;
    const waiters = this.#waiters;
    this.#pending = [];
    this.#waiters = [];
    this.#scheduled = false;
    if (rows.length === 0) return;
    try {
      this.#commit(rows);
      this.transactions++;
    } catch (err) {
      const error = new StoreUnavailableError(`the store could not commit: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      for (const w of waiters) w.reject(error);
      return;
    }
    for (const w of waiters) w.resolve();
  }

  meta(key: string, initial: string): Promise<string> {
    this.#db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING').run(key, initial);
    const row = this.#db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string };
    return Promise.resolve(row.value);
  }

  saveJob(job: StoredJob): Promise<void> {
    const pairs = pairsToBytes(job.pairs);
    this.#db
      .prepare('INSERT INTO jobs (id, vm, body, pairs) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body, pairs = excluded.pairs')
      .run(job.id, job.vmId, job.body, pairs);
    return Promise.resolve();
  }

  loadJobs(): Promise<StoredJob[]> {
    // An upsert keeps its row, so rowid is creation order.
    const rows = this.#db.prepare('SELECT id, vm, body, pairs FROM jobs ORDER BY rowid').all() as { id: string; vm: string; body: string; pairs: Buffer | null }[];
    return Promise.resolve(rows.map((r) => ({ id: r.id, vmId: r.vm, body: r.body, pairs: pairsFromBytes(r.pairs) })));
  }

  close(): Promise<void> {
    if (this.#scheduled) this.#flush();
    this.#db.close();
    return Promise.resolve();
  }
}


