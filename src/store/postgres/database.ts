/**
 * The connections of a PostgreSQL store and its transactions: a small pool, the schema migrated
 * before first use, and transactions that hold advisory locks (advisory-locks.ts). Errors come
 * out as the driver raised them; the store answers them as StoreUnavailableError (guarded.ts).
 */
import pg from 'pg';
import { lockStatements } from './advisory-locks.js';
import { migrate, type Table } from './migrations.js';
import type { WriteScope } from '../state-store.js';

export class Database {
  readonly schema: string;
  readonly connectionString: string;
  /** A table's name qualified with the store's schema. */
  readonly t: Table;
  readonly #pool: pg.Pool;
  #ready: Promise<void> | null = null;

  constructor(connectionString: string, schema: string) {
    // The schema is spliced into statements (and names the notification channel): a plain identifier only.
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`invalid schema name ${schema}`);
    this.schema = schema;
    this.connectionString = connectionString;
    this.t = (table) => `"${schema}".${table}`;
    this.#pool = new pg.Pool({ connectionString, max: 4, connectionTimeoutMillis: 2000 });
    // A broken connection must not crash the process (an 'error' event with no listener
    // throws); the query that uses it reports the failure instead.
    this.#pool.on('error', () => undefined);
    this.#pool.on('connect', (client) => client.on('error', () => undefined));
  }

  /** Creates the schema and runs migrations once (tried again after a failure). */
  ready(): Promise<void> {
    this.#ready ??= this.#locked('all', (client) => migrate(client, this.schema, this.t)).catch((err: unknown) => {
      this.#ready = null;
      throw err;
    });
    return this.#ready;
  }

  /** One statement on a pooled connection, once the schema is ready. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    await this.ready();
    return this.#pool.query<R>(text, values);
  }

  /**
   * Runs `fn` in a transaction holding the locks of `scope` (see lockStatements). The
   * transaction, its locks and `prelude` (statements without parameters) take one round trip;
   * `fn` gets the prelude's results. Whatever `fn` throws rolls the transaction back.
   */
  async locked<T>(scope: WriteScope | 'none', fn: (client: pg.PoolClient, prelude: pg.QueryResult[]) => Promise<T>, prelude = ''): Promise<T> {
    await this.ready();
    return this.#locked(scope, fn, prelude);
  }

  #locked<T>(scope: WriteScope | 'none', fn: (client: pg.PoolClient, prelude: pg.QueryResult[]) => Promise<T>, prelude = ''): Promise<T> {
    return this.#transaction(`BEGIN;${lockStatements(this.schema, scope)}${prelude}`, async (client, begun) => {
      const all = Array.isArray(begun) ? begun : [begun];
      // BEGIN and the locks come first; the prelude's results follow.
      const statements = prelude === '' ? 0 : prelude.split(';').filter((x) => x.trim() !== '').length;
      return fn(client, all.slice(all.length - statements));
    });
  }

  /** Runs `fn` on one connection between `begin` (whose results it gets) and COMMIT; whatever it throws rolls back. */
  async #transaction<T>(begin: string, fn: (client: pg.PoolClient, begun: pg.QueryResult[] | pg.QueryResult) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    try {
      const begun = (await client.query(begin)) as unknown as pg.QueryResult[] | pg.QueryResult;
      const result = await fn(client, begun);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** Runs `fn` in a read-only transaction that sees one consistent view of the store. */
  async consistent<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    await this.ready();
    return this.#transaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', (client) => fn(client));
  }

  close(): Promise<void> {
    return this.#pool.end();
  }
}
