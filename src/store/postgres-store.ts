/**
 * PostgreSQL, for several replicas serving the same VMs. The store keeps decided state as the
 * embedded store does (state-store.ts): per VM a snapshot and the effects after it. Changes are
 * serialised per VM: a transaction takes the advisory lock of each VM it changes (after the
 * schema's lock, shared; a change of the quirk list takes that one exclusively), reads what the
 * replica missed of those VMs (their heads say how far each got), lets the replica decide, and
 * inserts under sequence numbers drawn from a sequence after the locks: unique across replicas,
 * increasing per VM. Two replicas changing one VM at once are thus serialised (no lost updates),
 * and changes to different VMs are not. A snapshot drops its VM's effects up to it: a replica
 * that had not read them starts the VM from the snapshot.
 *
 * Replicas follow each other through notifications: every change (and every event a replica
 * publishes, such as a flush job acknowledged through it) sends NOTIFY on a channel named after
 * the schema, and each replica LISTENs on it. A change's events (each VM's `decision`, `policy`,
 * `deleted`) are kept with it in `events`, so that the other replicas hand them to their own
 * subscribers; they are read in the order of their transactions' ids, from finished transactions
 * only, and the log keeps the most recent 65,536 events (64 MiB at most).
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { auditRow, encodeCommand, pairsFromBytes, pairsToBytes, type AuditRow } from './codec.js';
import {
  mergeJobs,
  QUIRKS_EFFECT,
  StoreUnavailableError,
  type AuditEntry,
  type AuditQuery,
  type EffectRow,
  type EventCursor,
  type Known,
  type LegacyCommand,
  type LoadedJob,
  type LoadedState,
  type Missed,
  type PublishedEvent,
  type SharedStateStore,
  type StoredChange,
  type StoredEvent,
  type StoredJob,
  type StoredJobPart,
  type VmSnapshot,
  type WriteScope
} from './state-store.js';

/** Schema migrations, applied in order; `t` qualifies a table with the store's schema. */
export const MIGRATIONS: readonly ((t: (table: string) => string) => string)[] = [
  (t) => `CREATE TABLE ${t('commands')} (
     seq  BIGINT PRIMARY KEY,
     at   BIGINT NOT NULL,
     vm   TEXT,
     body TEXT NOT NULL
   )`,
  (t) => `CREATE TABLE ${t('jobs')} (
     id    TEXT PRIMARY KEY,
     n     BIGSERIAL,
     vm    TEXT NOT NULL,
     body  TEXT NOT NULL,
     pairs BYTEA
   )`,
  (t) => `ALTER TABLE ${t('commands')} ADD COLUMN actor TEXT`,
  (t) => `ALTER TABLE ${t('commands')} ADD COLUMN rules TEXT`,
  (t) => `CREATE INDEX commands_vm ON ${t('commands')} (vm, seq)`,
  (t) => `CREATE TABLE ${t('meta')} (
     key   TEXT PRIMARY KEY,
     value TEXT NOT NULL
   )`,
  // Decided state (0.2): effects of changes after each VM's snapshot. `commands` stays as the
  // audit trail.
  (t) => `CREATE TABLE ${t('effects')} (
     n      BIGSERIAL PRIMARY KEY,
     seq    BIGINT NOT NULL,
     vm     TEXT NOT NULL,
     record TEXT,
     ops    BYTEA
   )`,
  (t) => `CREATE INDEX effects_seq ON ${t('effects')} (seq)`,
  (t) => `CREATE TABLE ${t('snapshots')} (
     vm     TEXT PRIMARY KEY,
     seq    BIGINT NOT NULL,
     record TEXT NOT NULL,
     pins   BYTEA NOT NULL
   )`,
  (t) => `INSERT INTO ${t('meta')} (key, value) SELECT 'format', '2' WHERE NOT EXISTS (SELECT 1 FROM ${t('commands')})`,
  // Each decision's part of a flush job, stored with its change; `jobs` keeps the job's state.
  (t) => `CREATE TABLE ${t('job_parts')} (
     n      BIGSERIAL PRIMARY KEY,
     job    TEXT NOT NULL,
     seq    BIGINT NOT NULL,
     vm     TEXT NOT NULL,
     header TEXT NOT NULL,
     pairs  BYTEA NOT NULL
   )`,
  (t) => `CREATE INDEX job_parts_job ON ${t('job_parts')} (job)`,
  (t) => `CREATE INDEX commands_at ON ${t('commands')} (at)`,
  // Events replicas publish to each other (0.3); `origin` tells a replica its own.
  (t) => `CREATE TABLE ${t('events')} (
     n      BIGSERIAL PRIMARY KEY,
     origin TEXT NOT NULL,
     vm     TEXT NOT NULL,
     body   TEXT NOT NULL
   )`,
  // Changes serialised per VM (0.4): sequence numbers from a sequence (unique across replicas,
  // increasing per VM), each VM's last change in `heads`, events ordered by transaction id.
  (t) => `CREATE SEQUENCE ${t('change_seq')}`,
  (t) => `SELECT setval('${t('change_seq')}', COALESCE((SELECT value::bigint FROM ${t('meta')} WHERE key = 'seq'), 0) + 1, false)`,
  (t) => `CREATE TABLE ${t('heads')} (
     vm  TEXT PRIMARY KEY,
     seq BIGINT NOT NULL
   )`,
  (t) => `INSERT INTO ${t('heads')} (vm, seq) SELECT vm, max(seq) FROM (SELECT vm, seq FROM ${t('effects')} UNION ALL SELECT vm, seq FROM ${t('snapshots')}) AS x GROUP BY vm`,
  (t) => `CREATE INDEX effects_vm ON ${t('effects')} (vm, seq)`,
  (t) => `CREATE INDEX job_parts_vm ON ${t('job_parts')} (vm, seq)`,
  (t) => `ALTER TABLE ${t('events')} ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id()`,
  (t) => `CREATE INDEX events_xid ON ${t('events')} (xid, n)`,
  // The events' floor was a position; it is now a transaction id (the events kept stay readable).
  (t) => `DELETE FROM ${t('meta')} WHERE key IN ('events_floor', 'floor', 'seq')`
];

/**
 * Events the log keeps, at most, and bytes of them (a pin of 10,000 ranges is one large event);
 * older ones are dropped (a replica that had not read them tells its subscribers `reset`).
 */
const KEEP_EVENTS = 65_536;
const KEEP_EVENT_BYTES = 64 * 1024 * 1024;
/** A job statement that PostgreSQL aborted to break a deadlock is tried this many times in all. */
const JOB_WRITE_ATTEMPTS = 3;
/** SQLSTATE deadlock_detected. */
const DEADLOCK = '40P01';
/** Events a replica reads at a time. */
const EVENTS_PAGE = 1000;
/** Events (or bytes of them) a replica adds between two rounds of dropping old ones. */
const TRIM_EVERY = 1024;
const TRIM_EVERY_BYTES = 4 * 1024 * 1024;

/**
 * First key of the advisory lock on the whole store ("cohe" in ASCII; the second is a hash of
 * the schema): held shared by every change of some VMs, exclusively by a change of the quirk
 * list (which decides again for every VM) and migrations.
 */
const STORE_LOCK = 0x636f6865;
/** First key of a VM's advisory lock (the second is a hash of the schema and the VM id). */
const VM_LOCK = 0x636f6876;
/** Advisory lock key of the round that drops old events (one replica at a time). */
const TRIM_LOCK = 0x636f6874;

export interface PostgresStoreOptions {
  readonly connectionString: string;
  /** Schema holding the tables; created when missing. */
  readonly schema?: string;
  /** Events kept for the other replicas (default 65,536). */
  readonly keepEvents?: number;
}

type Row = { seq: string; vm: string; record: string | null; ops: Buffer | null };

/** A row of what a replica missed: a VM's snapshot (`s`), an effect (`e`) or a job part (`j`). */
type MissedRow = { kind: 's' | 'e' | 'j'; vm: string; seq: string; n: string; record: string | null; ops: Buffer | null; job: string | null; header: string | null };

export class PostgresStore implements SharedStateStore {
  readonly kind = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #schema: string;
  #ready: Promise<void> | null = null;
  readonly #connectionString: string;
  /** This replica's name in the event log. */
  readonly #origin = randomUUID();
  /** Events, and bytes of them, this replica added since it last dropped old ones. */
  #added = 0;
  #addedBytes = 0;
  readonly #keepEvents: number;
  readonly #trimEvery: number;

  constructor(options: PostgresStoreOptions) {
    this.#schema = options.schema ?? 'coherency';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.#schema)) throw new Error(`invalid schema name ${this.#schema}`);
    this.#connectionString = options.connectionString;
    this.#keepEvents = options.keepEvents ?? KEEP_EVENTS;
    this.#trimEvery = Math.min(TRIM_EVERY, Math.max(1, Math.floor(this.#keepEvents / 4)));
    this.#pool = new pg.Pool({ connectionString: options.connectionString, max: 4, connectionTimeoutMillis: 2000 });
    // A broken connection must not crash the process (an 'error' event with no listener
    // throws); the query that uses it reports the failure instead.
    this.#pool.on('error', () => undefined);
    this.#pool.on('connect', (client) => client.on('error', () => undefined));
  }

  #t = (table: string): string => `"${this.#schema}".${table}`;

  /** Creates the schema and runs migrations once (retried after a failure). */
  #init(): Promise<void> {
    this.#ready ??= this.#migrate().catch((err: unknown) => {
      this.#ready = null;
      throw unavailable(err);
    });
    return this.#ready;
  }

  async #migrate(): Promise<void> {
    await this.#locked('all', async (client) => {
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.#schema}"`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${this.#t('schema_version')} (version INTEGER NOT NULL)`);
      const row = await client.query<{ version: number }>(`SELECT version FROM ${this.#t('schema_version')}`);
      let version = row.rows[0]?.version ?? 0;
      if (row.rows.length === 0) await client.query(`INSERT INTO ${this.#t('schema_version')} (version) VALUES (0)`);
      if (version > MIGRATIONS.length) throw new Error(`schema ${this.#schema} has version ${version}, newer than this service`);
      for (; version < MIGRATIONS.length; version++) {
        await client.query((MIGRATIONS[version] as (t: (table: string) => string) => string)(this.#t));
        await client.query(`UPDATE ${this.#t('schema_version')} SET version = $1`, [version + 1]);
      }
    }, '', false);
  }

  /**
   * Runs `fn` in a transaction holding the locks of `scope`: the whole store exclusively
   * (`'all'`), or shared with each VM's lock (taken in one order: no deadlock between replicas),
   * or none (`'none'`). The transaction, its locks and `prelude` (statements without parameters)
   * take one round trip; `fn` gets the prelude's results. Errors are the store's unless `fn`
   * decided them.
   */
  async #locked<T>(scope: WriteScope | 'none', fn: (client: pg.PoolClient, prelude: pg.QueryResult[]) => Promise<T>, prelude = '', init = true): Promise<T> {
    if (init) await this.#init();
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw unavailable(err);
    }
    try {
      const locks = scope === 'none' ? '' : scope === 'all' ? `SELECT pg_advisory_xact_lock(${STORE_LOCK}, ${fnv(this.#schema)});` : this.#vmLocks(scope);
      const text = `BEGIN;${locks}${prelude}`;
      const results = (await client.query(text)) as unknown as pg.QueryResult[] | pg.QueryResult;
      const all = Array.isArray(results) ? results : [results];
      // BEGIN and the locks come first; the prelude's results follow.
      const statements = prelude === '' ? 0 : prelude.split(';').filter((x) => x.trim() !== '').length;
      const result = await fn(client, all.slice(all.length - statements));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** The store's lock, shared, then each VM's, in ascending key order. */
  #vmLocks(vmIds: readonly string[]): string {
    const keys = [...new Set(vmIds.map((vm) => vmKey(this.#schema, vm)))].sort((x, y) => x - y);
    return `SELECT pg_advisory_xact_lock_shared(${STORE_LOCK}, ${fnv(this.#schema)});${keys.map((k) => `SELECT pg_advisory_xact_lock(${VM_LOCK}, ${k});`).join('')}`;
  }

  async load(): Promise<LoadedState> {
    await this.#init();
    const client = await this.#connect();
    try {
      // One consistent view of the snapshots and the effects after them.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const seq = await client.query<{ seq: string | null }>(`SELECT max(seq)::text AS seq FROM ${this.#t('heads')}`);
      const snapshots = await client.query<{ vm: string; seq: string; record: string; pins: Buffer }>(`SELECT vm, seq, record, pins FROM ${this.#t('snapshots')}`);
      const effects = await client.query<Row>(`SELECT seq, vm, record, ops FROM ${this.#t('effects')} ORDER BY seq, n`);
      await client.query('COMMIT');
      return {
        seq: Number(seq.rows[0]?.seq ?? 0),
        snapshots: snapshots.rows.map((r) => ({ vmId: r.vm, seq: Number(r.seq), record: r.record, pins: pairsFromBytes(r.pins) as Float64Array })),
        effects: effects.rows.map(effectRow)
      };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw unavailable(err);
    } finally {
      client.release();
    }
  }

  async legacy(): Promise<LegacyCommand[] | null> {
    await this.#init();
    try {
      const format = await this.#pool.query(`SELECT value FROM ${this.#t('meta')} WHERE key = 'format'`);
      if (format.rows.length > 0) return null;
      const res = await this.#pool.query<AuditRow>(`SELECT seq, at, body, actor, rules FROM ${this.#t('commands')} ORDER BY seq`);
      return res.rows.map(auditRow);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async migrated(snapshots: readonly VmSnapshot[], quirks: string, seq: number): Promise<void> {
    try {
      await this.#locked('all', async (client) => {
        // Another replica may have migrated meanwhile.
        const format = await client.query(`SELECT value FROM ${this.#t('meta')} WHERE key = 'format'`);
        if (format.rows.length > 0) return;
        for (const s of snapshots) await putSnapshot(client, this.#t, s);
        await client.query(`INSERT INTO ${this.#t('effects')} (seq, vm, record, ops) VALUES ($1, $2, $3, NULL)`, [seq, QUIRKS_EFFECT, quirks]);
        await client.query(
          `INSERT INTO ${this.#t('heads')} (vm, seq) SELECT vm, $1 FROM unnest($2::text[]) AS vm ON CONFLICT (vm) DO UPDATE SET seq = GREATEST(${this.#t('heads')}.seq, excluded.seq)`,
          [seq, [QUIRKS_EFFECT, ...snapshots.map((s) => s.vmId)]]
        );
        await this.#raiseSeq(client, seq);
        await putMeta(client, this.#t, 'format', '2');
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** Sequence numbers handed out from now on are above `seq`. */
  async #raiseSeq(client: pg.PoolClient, seq: number): Promise<void> {
    const name = this.#t('change_seq');
    await client.query(`SELECT setval('${name}', GREATEST($1::bigint, (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ${name})), true) WHERE $1::bigint > 0`, [seq]);
  }

  async since(vmIds: readonly string[] | null, known: Known): Promise<Missed> {
    await this.#init();
    try {
      const vms: string[] = [];
      const after: number[] = [];
      for (const [vm, seq] of known) {
        if (vmIds !== null && vm !== QUIRKS_EFFECT && !vmIds.includes(vm)) continue;
        vms.push(vm);
        after.push(seq);
      }
      // Behind: the VMs asked for (every VM for null) and the quirk list whose head is past what the replica knows.
      const heads = vmIds === null ? `SELECT vm FROM ${this.#t('heads')}` : `SELECT vm FROM ${this.#t('heads')} WHERE vm = ANY($3::text[]) OR vm = ''`;
      const res = await this.#pool.query<MissedRow>(missedQuery(this.#t, `SELECT h.vm, COALESCE(k.after, 0) AS after FROM (${heads}) h LEFT JOIN unnest($1::text[], $2::bigint[]) AS k(vm, after) USING (vm)`), [
        vms,
        after,
        ...(vmIds === null ? [] : [vmIds])
      ]);
      return missedOf(res.rows);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async append(changes: readonly StoredChange[]): Promise<void> {
    try {
      await this.#locked('all', async (client) => {
        await this.#insert(client, changes);
        await this.#raiseSeq(client, Math.max(0, ...changes.map((c) => c.seq)));
      });
    } catch (err) {
      throw unavailable(err);
    }
    this.#trimSoon();
  }

  async write(scope: WriteScope, known: Known, seqs: number, decide: (missed: Missed, seqs: readonly number[]) => readonly StoredChange[]): Promise<void> {
    let deciding = false;
    // What the replica missed of the scope's VMs and the quirk list, read in the first round trip
    // (literals: the prelude has no parameters). VM ids are validated, and escaped all the same.
    const vms = scope === 'all' ? [...known.keys()] : [...new Set([QUIRKS_EFFECT, ...scope])];
    const pairs = vms.map((vm) => `(${pg.escapeLiteral(vm)}, ${known.get(vm) ?? 0})`).join(', ');
    const behind =
      scope === 'all'
        ? `SELECT h.vm, COALESCE(k.after, 0) AS after FROM ${this.#t('heads')} h LEFT JOIN (VALUES ${pairs === '' ? "('', 0)" : pairs}) AS k(vm, after) USING (vm)`
        : `SELECT k.vm, k.after FROM (VALUES ${pairs}) AS k(vm, after)`;
    const prelude = `SELECT nextval('${this.#t('change_seq')}')::text AS seq FROM generate_series(1, ${Math.max(0, Math.floor(seqs))});${missedQuery(this.#t, behind)};`;
    try {
      await this.#locked(scope, async (client, [given, missed]) => {
        deciding = true;
        const changes = decide(missedOf((missed as pg.QueryResult<MissedRow>).rows), (given as pg.QueryResult<{ seq: string }>).rows.map((r) => Number(r.seq)));
        deciding = false;
        await this.#insert(client, changes);
      }, prelude);
    } catch (err) {
      // A rejection by `decide` (a domain error) passes through; anything else is the store's.
      throw deciding ? err : unavailable(err);
    }
    this.#trimSoon();
  }

  /**
   * Stores changes in one statement (and one more per change that deletes a VM or replaces the
   * quirk list): their effects, the heads of the VMs they change, flush job parts, audit entries
   * and events, and the notification the other replicas listen for.
   */
  async #insert(client: pg.PoolClient, changes: readonly StoredChange[]): Promise<void> {
    if (changes.length === 0) return;
    const effects: { seq: number[]; vm: string[]; record: (string | null)[]; ops: (Buffer | null)[] } = { seq: [], vm: [], record: [], ops: [] };
    const parts: { job: string[]; seq: number[]; vm: string[]; header: string[]; pairs: Buffer[] } = { job: [], seq: [], vm: [], header: [], pairs: [] };
    const commands: { seq: number[]; at: number[]; vm: (string | null)[]; body: string[]; actor: (string | null)[]; rules: (string | null)[] } = { seq: [], at: [], vm: [], body: [], actor: [], rules: [] };
    const events: { vm: string[]; body: string[] } = { vm: [], body: [] };
    for (const c of changes) {
      for (const e of c.effects) {
        // A newer quirk list supersedes older ones; a deleted VM's earlier effects are of no use
        // to anyone (a replica that missed them applies the deletion).
        if (e.vmId === QUIRKS_EFFECT || e.record === null) await client.query(`DELETE FROM ${this.#t('effects')} WHERE vm = $1`, [e.vmId]);
        if (e.record === null) await client.query(`DELETE FROM ${this.#t('snapshots')} WHERE vm = $1`, [e.vmId]);
        effects.seq.push(c.seq);
        effects.vm.push(e.vmId);
        effects.record.push(e.record);
        effects.ops.push(pairsToBytes(e.ops));
      }
      for (const j of c.jobs ?? []) {
        parts.job.push(j.id);
        parts.seq.push(c.seq);
        parts.vm.push(j.vmId);
        parts.header.push(j.header);
        parts.pairs.push(pairsToBytes(j.pairs) as Buffer);
      }
      commands.seq.push(c.seq);
      commands.at.push(c.at);
      commands.vm.push('vmId' in c.command ? c.command.vmId : null);
      commands.body.push(encodeCommand(c.command));
      commands.actor.push(c.actor ?? null);
      commands.rules.push(c.rules === undefined ? null : JSON.stringify(c.rules));
      for (const e of c.events ?? []) {
        events.vm.push(e.vmId);
        events.body.push(e.body);
        this.#addedBytes += e.body.length;
      }
    }
    const t = this.#t;
    await client.query({
      name: `${this.#schema}-insert`,
      text: `WITH
        e AS (INSERT INTO ${t('effects')} (seq, vm, record, ops) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[])),
        h AS (INSERT INTO ${t('heads')} (vm, seq) SELECT x.vm, max(x.seq) FROM unnest($2::text[], $1::bigint[]) AS x(vm, seq) GROUP BY x.vm
              ON CONFLICT (vm) DO UPDATE SET seq = GREATEST(${t('heads')}.seq, excluded.seq)),
        j AS (INSERT INTO ${t('job_parts')} (job, seq, vm, header, pairs) SELECT * FROM unnest($5::text[], $6::bigint[], $7::text[], $8::text[], $9::bytea[])),
        c AS (INSERT INTO ${t('commands')} (seq, at, vm, body, actor, rules) SELECT * FROM unnest($10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[])),
        v AS (INSERT INTO ${t('events')} (origin, vm, body) SELECT $16, x.vm, x.body FROM unnest($17::text[], $18::text[]) WITH ORDINALITY AS x(vm, body, k) ORDER BY x.k)
      SELECT pg_notify($19, $16)`,
      values: [
        effects.seq,
        effects.vm,
        effects.record,
        effects.ops,
        parts.job,
        parts.seq,
        parts.vm,
        parts.header,
        parts.pairs,
        commands.seq,
        commands.at,
        commands.vm,
        commands.body,
        commands.actor,
        commands.rules,
        this.#origin,
        events.vm,
        events.body,
        this.#schema
      ]
    });
    this.#added += events.vm.length;
  }

  async publish(event: StoredEvent): Promise<void> {
    await this.#init();
    try {
      // No lock: a reader takes only events of finished transactions (see eventsAfter).
      await this.#pool.query(`WITH v AS (INSERT INTO ${this.#t('events')} (origin, vm, body) VALUES ($1, $2, $3)) SELECT pg_notify($4, $1)`, [this.#origin, event.vmId, event.body, this.#schema]);
    } catch (err) {
      throw unavailable(err);
    }
    this.#added++;
    this.#addedBytes += event.body.length;
    this.#trimSoon();
  }

  /** Drops old events once this replica added enough since it last did (in the background). */
  #trimSoon(): void {
    if (this.#added < this.#trimEvery && this.#addedBytes < TRIM_EVERY_BYTES) return;
    this.#added = 0;
    this.#addedBytes = 0;
    this.#locked('none', (client) => this.#dropOldEvents(client)).catch(() => undefined);
  }

  /**
   * Keeps the most recent `keepEvents` events, and of them no more than KEEP_EVENT_BYTES; the
   * transaction id of the last one dropped is the events' floor. One replica at a time.
   */
  async #dropOldEvents(client: pg.PoolClient): Promise<void> {
    const mine = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_xact_lock(${TRIM_LOCK}) AS ok`);
    if (mine.rows[0]?.ok !== true) return;
    const dropped = await client.query<{ xid: string | null }>(
      `WITH newest AS (
         SELECT n, row_number() OVER (ORDER BY n DESC) AS k, sum(length(body)) OVER (ORDER BY n DESC) AS bytes FROM ${this.#t('events')}
       ), cut AS (
         SELECT max(n) AS n FROM newest WHERE k > $1 OR bytes > $2
       ), gone AS (
         DELETE FROM ${this.#t('events')} WHERE n <= (SELECT n FROM cut) RETURNING xid
       )
       SELECT max(xid)::text AS xid FROM gone`,
      [this.#keepEvents, KEEP_EVENT_BYTES]
    );
    const floor = dropped.rows[0]?.xid ?? null;
    if (floor !== null) {
      await client.query(
        `INSERT INTO ${this.#t('meta')} (key, value) VALUES ('events_floor', $1) ON CONFLICT (key) DO UPDATE SET value = GREATEST(${this.#t('meta')}.value::bigint, excluded.value::bigint)::text`,
        [floor]
      );
    }
  }

  /**
   * Events in the order of their transactions' ids, taken only from transactions that have all
   * finished (below the oldest still running): one committed later never lands behind a cursor
   * already past it, without a lock ordering the writers.
   */
  async eventsAfter(after: EventCursor | null): Promise<{ events: PublishedEvent[]; next: EventCursor; gone: boolean; more: boolean; held: boolean }> {
    await this.#init();
    const from = after ?? { xid: 0, n: 0 };
    try {
      // Own events are skipped, bodies and all, but move the cursor on.
      // `held`: others' events already committed but behind a transaction still running.
      const res = await this.#pool.query<{ xmin: string; floor: string | null; held: boolean; xid: string | null; n: string | null; vm: string | null; body: string | null }>(
        `WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
         SELECT s.xmin::text AS xmin, (SELECT value FROM ${this.#t('meta')} WHERE key = 'events_floor') AS floor,
                EXISTS (SELECT 1 FROM ${this.#t('events')} h WHERE h.xid >= s.xmin AND h.origin <> $3) AS held,
                e.xid::text AS xid, e.n::text AS n, e.vm, CASE WHEN e.origin = $3 THEN NULL ELSE e.body END AS body
         FROM s LEFT JOIN ${this.#t('events')} e ON $4 AND (e.xid, e.n) > ($1::xid8, $2::bigint) AND e.xid < s.xmin
         ORDER BY e.xid, e.n LIMIT ${EVENTS_PAGE}`,
        [String(from.xid), from.n, this.#origin, after !== null]
      );
      const first = res.rows[0];
      const xmin = Number(first?.xmin ?? 0);
      const events: PublishedEvent[] = [];
      let next: EventCursor = { xid: xmin, n: 0 };
      const full = res.rows.length >= EVENTS_PAGE;
      for (const r of res.rows) {
        if (r.xid === null) continue;
        const n = Number(r.n);
        if (r.body !== null) events.push({ n, vmId: r.vm as string, body: r.body });
        if (full) next = { xid: Number(r.xid), n };
      }
      // Not all read yet: from the last one read; otherwise from the oldest transaction still running.
      if (!full && after !== null && xmin < after.xid) next = after;
      const floor = first?.floor ?? null;
      return { events, next, gone: after !== null && floor !== null && after.xid <= Number(floor), more: full, held: first?.held === true };
    } catch (err) {
      throw unavailable(err);
    }
  }

  watch(onChange: () => void): () => void {
    let stopped = false;
    let client: pg.Client | null = null;
    let retry: NodeJS.Timeout | null = null;
    const connect = (): void => {
      if (stopped) return;
      const c = new pg.Client({ connectionString: this.#connectionString, connectionTimeoutMillis: 2000 });
      client = c;
      const again = (): void => {
        if (client !== c) return;
        client = null;
        c.end().catch(() => undefined);
        if (!stopped) retry = setTimeout(connect, 1000).unref();
      };
      c.on('error', again);
      c.on('end', again);
      c.on('notification', (n) => {
        if (n.payload !== this.#origin) onChange();
      });
      c.connect()
        .then(() => c.query(`LISTEN "${this.#schema}"`))
        .then(() => onChange(), again);
    };
    connect();
    return () => {
      stopped = true;
      if (retry !== null) clearTimeout(retry);
      const c = client;
      client = null;
      void c?.end().catch(() => undefined);
    };
  }

  async snapshot(snapshot: VmSnapshot): Promise<void> {
    try {
      await this.#locked([snapshot.vmId], async (client) => {
        // Only while the VM is still there and the snapshot is newer than the one kept.
        const kept = await client.query<{ seq: string }>(`SELECT seq FROM ${this.#t('snapshots')} WHERE vm = $1`, [snapshot.vmId]);
        if (kept.rows.length > 0 && Number(kept.rows[0]?.seq) >= snapshot.seq) return;
        const deleted = await client.query(`SELECT 1 FROM ${this.#t('effects')} WHERE vm = $1 AND seq > $2 AND record IS NULL`, [snapshot.vmId, snapshot.seq]);
        if (deleted.rows.length > 0) return;
        await putSnapshot(client, this.#t, snapshot);
        await client.query(`DELETE FROM ${this.#t('effects')} WHERE vm = $1 AND seq <= $2`, [snapshot.vmId, snapshot.seq]);
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  async probe(): Promise<void> {
    try {
      await this.#locked('none', async (client) => {
        await putMeta(client, this.#t, 'probe', String(Date.now()));
      });
    } catch (err) {
      throw unavailable(err);
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

  /** Job records to keep and to forget, waiting for the next statement: those of one turn of the event loop go together. */
  #jobWrites: { save?: StoredJob; forget?: readonly string[]; resolve: () => void; reject: (err: unknown) => void }[] = [];

  saveJob(job: StoredJob): Promise<void> {
    return this.#jobWrite({ save: job });
  }

  forgetJobs(ids: readonly string[]): Promise<void> {
    return this.#jobWrite({ forget: ids });
  }

  #jobWrite(write: { save?: StoredJob; forget?: readonly string[] }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#jobWrites.push({ ...write, resolve, reject });
      if (this.#jobWrites.length === 1) setImmediate(() => void this.#writeJobs());
    });
  }

  /**
   * Upserts and forgets the job records of one turn in one statement. A job saved twice keeps its
   * last state, and ranges given once are kept (a record without them replaces only the state);
   * a job forgotten goes with its parts, whatever was saved of it before.
   */
  async #writeJobs(): Promise<void> {
    const batch = this.#jobWrites;
    this.#jobWrites = [];
    const forgotten = new Set<string>();
    const saved = new Map<string, { vmId: string; body: string; pairs: Buffer | null }>();
    for (const { save, forget } of batch) {
      for (const id of forget ?? []) {
        forgotten.add(id);
        saved.delete(id);
      }
      if (save === undefined) continue;
      const pairs = pairsToBytes(save.pairs);
      saved.set(save.id, { vmId: save.vmId, body: save.body, pairs: pairs ?? saved.get(save.id)?.pairs ?? null });
    }
    // Rows in id order: replicas writing the same jobs at once (an acknowledgement is kept by
    // each) lock them in one order; a deadlock all the same is tried again.
    const jobs = [...saved].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
    const t = this.#t;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#init();
        await this.#pool.query(
          `WITH s AS (INSERT INTO ${t('jobs')} (id, vm, body, pairs) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
                      ON CONFLICT (id) DO UPDATE SET body = excluded.body, pairs = COALESCE(excluded.pairs, ${t('jobs')}.pairs)),
                f AS (DELETE FROM ${t('jobs')} WHERE id = ANY($5::text[]))
           DELETE FROM ${t('job_parts')} WHERE job = ANY($5::text[])`,
          [jobs.map(([id]) => id), jobs.map(([, j]) => j.vmId), jobs.map(([, j]) => j.body), jobs.map(([, j]) => j.pairs), [...forgotten].sort()]
        );
        for (const b of batch) b.resolve();
        return;
      } catch (err) {
        if (attempt < JOB_WRITE_ATTEMPTS && (err as { code?: string }).code === DEADLOCK) continue;
        for (const b of batch) b.reject(unavailable(err));
        return;
      }
    }
  }

  async jobVm(id: string): Promise<string | null> {
    await this.#init();
    try {
      const res = await this.#pool.query<{ vm: string }>(`SELECT vm FROM ${this.#t('job_parts')} WHERE job = $1 LIMIT 1`, [id]);
      return res.rows[0]?.vm ?? null;
    } catch (err) {
      throw unavailable(err);
    }
  }

  async jobRecords(ids: readonly string[]): Promise<{ readonly id: string; readonly body: string }[]> {
    if (ids.length === 0) return [];
    await this.#init();
    try {
      const res = await this.#pool.query<{ id: string; body: string }>(`SELECT id, body FROM ${this.#t('jobs')} WHERE id = ANY($1::text[])`, [[...ids]]);
      return res.rows;
    } catch (err) {
      throw unavailable(err);
    }
  }

  async loadJobs(): Promise<LoadedJob[]> {
    await this.#init();
    try {
      const records = await this.#pool.query<{ id: string; vm: string; body: string; pairs: Buffer | null }>(`SELECT id, vm, body, pairs FROM ${this.#t('jobs')} ORDER BY n`);
      const parts = await this.#pool.query<{ job: string; vm: string; header: string; pairs: Buffer }>(`SELECT job, vm, header, pairs FROM ${this.#t('job_parts')} ORDER BY n`);
      return mergeJobs(
        records.rows.map((r) => ({ id: r.id, vmId: r.vm, body: r.body, pairs: pairsFromBytes(r.pairs) })),
        parts.rows.map((p) => ({ id: p.job, vmId: p.vm, header: p.header, pairs: pairsFromBytes(p.pairs) as Float64Array }))
      );
    } catch (err) {
      throw unavailable(err);
    }
  }

  async trimAudit(at: number): Promise<number> {
    await this.#init();
    try {
      return (await this.#pool.query(`DELETE FROM ${this.#t('commands')} WHERE at < $1`, [at])).rowCount ?? 0;
    } catch (err) {
      throw unavailable(err);
    }
  }

  async audit(query: AuditQuery): Promise<AuditEntry[]> {
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

/**
 * What a replica missed: `behind` gives (vm, after) rows, the sequence number each VM is known
 * up to; of those whose head is past it, their newer snapshot, their effects and their job parts
 * after it. One statement: one consistent view.
 */
function missedQuery(t: (table: string) => string, behind: string): string {
  return `WITH k AS (${behind}), b AS (SELECT k.vm, k.after FROM k JOIN ${t('heads')} h USING (vm) WHERE h.seq > k.after)
    SELECT 's' AS kind, s.vm, s.seq::text AS seq, '0' AS n, s.record, s.pins AS ops, NULL AS job, NULL AS header FROM ${t('snapshots')} s JOIN b USING (vm) WHERE s.seq > b.after
    UNION ALL
    SELECT 'e', e.vm, e.seq::text, e.n::text, e.record, e.ops, NULL, NULL FROM ${t('effects')} e JOIN b USING (vm) WHERE e.seq > b.after
    UNION ALL
    SELECT 'j', p.vm, p.seq::text, p.n::text, NULL, p.pairs, p.job, p.header FROM ${t('job_parts')} p JOIN b USING (vm) WHERE p.seq > b.after`;
}

function missedOf(rows: readonly MissedRow[]): Missed {
  const sorted = rows.map((r) => ({ r, seq: Number(r.seq), n: Number(r.n) })).sort((x, y) => x.seq - y.seq || x.n - y.n);
  const snapshots: VmSnapshot[] = [];
  const effects: EffectRow[] = [];
  const jobs: StoredJobPart[] = [];
  for (const { r, seq } of sorted) {
    if (r.kind === 's') snapshots.push({ vmId: r.vm, seq, record: r.record as string, pins: pairsFromBytes(r.ops) as Float64Array });
    else if (r.kind === 'e') effects.push({ seq, vmId: r.vm, record: r.record, ops: pairsFromBytes(r.ops) });
    else jobs.push({ id: r.job as string, vmId: r.vm, header: r.header as string, pairs: pairsFromBytes(r.ops) as Float64Array });
  }
  return { snapshots, effects, jobs };
}

/** The keys of the store's advisory lock (`vmId` undefined) or of a VM's. */
export function advisoryLock(schema: string, vmId?: string): readonly [number, number] {
  return vmId === undefined ? [STORE_LOCK, fnv(schema)] : [VM_LOCK, vmKey(schema, vmId)];
}

function vmKey(schema: string, vmId: string): number {
  return fnv(`${schema}\0${vmId}`);
}

/** FNV-1a of a string's UTF-16 code units, as a signed 32-bit integer (an advisory lock key). */
function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}

function effectRow(r: Row): EffectRow {
  return { seq: Number(r.seq), vmId: r.vm, record: r.record, ops: pairsFromBytes(r.ops) };
}

async function putSnapshot(client: pg.PoolClient, t: (table: string) => string, s: VmSnapshot): Promise<void> {
  await client.query(
    `INSERT INTO ${t('snapshots')} (vm, seq, record, pins) VALUES ($1, $2, $3, $4) ON CONFLICT (vm) DO UPDATE SET seq = excluded.seq, record = excluded.record, pins = excluded.pins`,
    [s.vmId, s.seq, s.record, pairsToBytes(s.pins)]
  );
}

async function putMeta(client: pg.PoolClient, t: (table: string) => string, key: string, value: string): Promise<void> {
  await client.query(`INSERT INTO ${t('meta')} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [key, value]);
}

function unavailable(err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`PostgreSQL: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
