/**
 * PostgreSQL, for several replicas serving the same VMs. Commands form one log with a global
 * sequence; a change is one transaction holding a store-wide advisory lock, in which the replica
 * first applies what other replicas stored since it last looked, then decides, then inserts. Two
 * replicas changing one VM at once are thus serialised: no lost updates.
 */
import pg from 'pg';
import { auditRow, decodeCommand, encodeCommand, pairsFromBytes, pairsToBytes, type AuditRow } from './codec.js';
import { StoreUnavailableError, type AuditQuery, type SharedStateStore, type StoredCommand, type StoredJob } from './state-store.js';

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE commands (
     seq  BIGINT PRIMARY KEY,
     at   BIGINT NOT NULL,
     vm   TEXT,
     body TEXT NOT NULL
   )`,
  `CREATE TABLE jobs (
     id    TEXT PRIMARY KEY,
     n     BIGSERIAL,
     vm    TEXT NOT NULL,
     body  TEXT NOT NULL,
     pairs BYTEA
   )`,
  `ALTER TABLE commands ADD COLUMN actor TEXT`,
  `ALTER TABLE commands ADD COLUMN rules TEXT`,
  `CREATE INDEX commands_vm ON commands (vm, seq)`,
  `CREATE TABLE meta (
     key   TEXT PRIMARY KEY,
     value TEXT NOT NULL
   )`
];

/** Advisory lock key for writers ("cohe" in ASCII). */
const WRITE_LOCK = 0x636f6865;

export interface PostgresStoreOptions {
  readonly connectionString: string;
  /** Schema holding the tables; created when missing. */
  readonly schema?: string;
}

export class PostgresStore implements SharedStateStore {
  readonly kind = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #schema: string;
  #ready: Promise<void> | null = null;

  constructor(options: PostgresStoreOptions) {
    this.#schema = options.schema ?? 'coherency';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.#schema)) throw new Error(`invalid schema name ${this.#schema}`);
    this.#pool = new pg.Pool({ connectionString: options.connectionString, max: 4, connectionTimeoutMillis: 2000 });
    // A broken connection must not crash the process (an 'error' event with no listener
    // throws); the query that uses it reports the failure instead.
    this.#pool.on('error', () => undefined);
    this.#pool.on('connect', (client) => client.on('error', () => undefined));
  }

  #t(table: string): string {
    return `"${this.#schema}".${table}`;
  }

  /** Creates the schema and runs migrations once (retried after a failure). */
  #init(): Promise<void> {
    this.#ready ??= this.#migrate().catch((err: unknown) => {
      this.#ready = null;
      throw unavailable(err);
    });
    return this.#ready;
  }

  async #migrate(): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.#schema}"`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${this.#t('schema_version')} (version INTEGER NOT NULL)`);
      const row = await client.query<{ version: number }>(`SELECT version FROM ${this.#t('schema_version')}`);
      let version = row.rows[0]?.version ?? 0;
      if (row.rows.length === 0) await client.query(`INSERT INTO ${this.#t('schema_version')} (version) VALUES (0)`);
      if (version > MIGRATIONS.length) throw new Error(`schema ${this.#schema} has version ${version}, newer than this service`);
      for (; version < MIGRATIONS.length; version++) {
        const sql = (MIGRATIONS[version] as string)
          .replace(/CREATE TABLE (\w+)/, (_m, table: string) => `CREATE TABLE ${this.#t(table)}`)
          .replace(/ALTER TABLE (\w+)/, (_m, table: string) => `ALTER TABLE ${this.#t(table)}`)
          .replace(/ ON (\w+) \(/, (_m, table: string) => ` ON ${this.#t(table)} (`);
        await client.query(sql);
        await client.query(`UPDATE ${this.#t('schema_version')} SET version = $1`, [version + 1]);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  load(): Promise<StoredCommand[]> {
    return this.since(0);
  }

  async since(afterSeq: number): Promise<StoredCommand[]> {
    await this.#init();
    try {
      const res = await this.#pool.query<{ seq: string; at: string; body: string }>(`SELECT seq, at, body FROM ${this.#t('commands')} WHERE seq > $1 ORDER BY seq`, [afterSeq]);
      return res.rows.map(decodeRow);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async append(commands: readonly StoredCommand[]): Promise<void> {
    await this.#init();
    const client = await this.#connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK]);
      for (const c of commands) await insert(client, this.#t('commands'), c);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw unavailable(err);
    } finally {
      client.release();
    }
  }

  async write(afterSeq: number, decide: (missed: readonly StoredCommand[]) => StoredCommand): Promise<void> {
    await this.#init();
    const client = await this.#connect();
    let deciding = false;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK]);
      const res = await client.query<{ seq: string; at: string; body: string }>(`SELECT seq, at, body FROM ${this.#t('commands')} WHERE seq > $1 ORDER BY seq`, [afterSeq]);
      deciding = true;
      const command = decide(res.rows.map(decodeRow));
      deciding = false;
      await insert(client, this.#t('commands'), command);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      // A rejection by `decide` (a domain error) passes through; anything else is the store's.
      throw deciding ? err : unavailable(err);
    } finally {
      client.release();
    }
  }

  async meta(key: string, initial: string): Promise<string> {
    await this.#init();
    try {
      await this.#pool.query(`INSERT INTO ${this.#t('meta')} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, [key, initial]);
      const res = await this.#pool.query<{ value: string }>(`SELECT value FROM ${this.#t('meta')} WHERE key = $1`, [key]);
      return (res.rows[0] as { value: string }).value;
    } catch (err) {
      throw unavailable(err);
    }
  }

  async saveJob(job: StoredJob): Promise<void> {
    await this.#init();
    const pairs = pairsToBytes(job.pairs);
    try {
      await this.#pool.query(`INSERT INTO ${this.#t('jobs')} (id, vm, body, pairs) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET body = excluded.body, pairs = excluded.pairs`, [
        job.id,
        job.vmId,
        job.body,
        pairs
      ]);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async loadJobs(): Promise<StoredJob[]> {
    await this.#init();
    try {
      const res = await this.#pool.query<{ id: string; vm: string; body: string; pairs: Buffer | null }>(`SELECT id, vm, body, pairs FROM ${this.#t('jobs')} ORDER BY n`);
      return res.rows.map((r) => ({ id: r.id, vmId: r.vm, body: r.body, pairs: pairsFromBytes(r.pairs) }));
    } catch (err) {
      throw unavailable(err);
    }
  }

  async audit(query: AuditQuery): Promise<StoredCommand[]> {
    await this.#init();
    const params: unknown[] = [query.afterSeq ?? 0, query.since ?? 0, query.limit];
    if (query.vmId !== undefined) params.push(query.vmId);
    try {
      const res = await this.#pool.query<AuditRow>(
        `SELECT seq, at, body, actor, rules FROM ${this.#t('commands')} WHERE seq > $1 AND at >= $2 ${query.vmId === undefined ? '' : 'AND vm = $4'} ORDER BY seq LIMIT $3`,
        params
      );
      return res.rows.map(auditRow);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async #connect(): Promise<pg.PoolClient> {
    try {
      return await this.#pool.connect();
    } catch (err) {
      throw unavailable(err);
    }
  }

  close(): Promise<void> {
    return this.#pool.end();
  }
}

function decodeRow(r: { seq: string; at: string; body: string }): StoredCommand {
  return { seq: Number(r.seq), at: Number(r.at), command: decodeCommand(r.body) };
}

async function insert(client: pg.PoolClient, table: string, c: StoredCommand): Promise<void> {
  await client.query(`INSERT INTO ${table} (seq, at, vm, body, actor, rules) VALUES ($1, $2, $3, $4, $5, $6)`, [
    c.seq,
    c.at,
    'vmId' in c.command ? c.command.vmId : null,
    encodeCommand(c.command),
    c.actor ?? null,
    c.rules === undefined ? null : JSON.stringify(c.rules)
  ]);
}

function unavailable(err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`PostgreSQL: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
