/**
 * PostgreSQL, for several replicas serving the same VMs. The store keeps decided state as the
 * embedded store does (state-store.ts): per VM a snapshot and the effects after it, in one log
 * with a global sequence. A change is one transaction holding a store-wide advisory lock, in
 * which the replica first applies the effects other replicas stored since it last looked, then
 * decides, then inserts. Two replicas changing one VM at once are thus serialised: no lost
 * updates. A snapshot drops its VM's effects up to it and raises the log's floor: a replica that
 * had not read them yet reloads instead of missing them.
 *
 * Replicas follow each other through notifications: every change (and every event a replica
 * publishes, such as a flush job acknowledged through it) sends NOTIFY on a channel named after
 * the schema, and each replica LISTENs on it. A change's events (each VM's `decision`, `policy`,
 * `deleted`) are kept with it in `events`, so that the other replicas hand them to their own
 * subscribers; the log keeps the most recent 65,536 events (64 MiB at most).
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
  type LegacyCommand,
  type LoadedJob,
  type LoadedState,
  type PublishedEvent,
  type SharedStateStore,
  type StoredChange,
  type StoredEvent,
  type StoredJob,
  type StoredJobPart,
  type VmSnapshot
} from './state-store.js';

/** Schema migrations, applied in order; `t` qualifies a table with the store's schema. */
const MIGRATIONS: readonly ((t: (table: string) => string) => string)[] = [
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
   )`
];

/**
 * Events the log keeps, at most, and bytes of them (a pin of 10,000 ranges is one large event);
 * older ones are dropped (a replica that had not read them tells its subscribers `reset`).
 */
const KEEP_EVENTS = 65_536;
const KEEP_EVENT_BYTES = 64 * 1024 * 1024;
/** Events (or bytes of them) a replica adds between two rounds of dropping old ones. */
const TRIM_EVERY = 1024;
const TRIM_EVERY_BYTES = 4 * 1024 * 1024;

/** Advisory lock key for writers ("cohe" in ASCII). */
const WRITE_LOCK = 0x636f6865;

export interface PostgresStoreOptions {
  readonly connectionString: string;
  /** Schema holding the tables; created when missing. */
  readonly schema?: string;
  /** Events kept for the other replicas (default 65,536). */
  readonly keepEvents?: number;
}

type Row = { seq: string; vm: string; record: string | null; ops: Buffer | null };

/** What snapshots dropped of the log (effects up to `floor`), and its last change (`seq`). */
interface LogEnds {
  readonly floor: number;
  readonly seq: number;
}

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
    await this.#locked(async (client) => {
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
    }, false);
  }

  /** Runs `fn` in a transaction holding the store-wide lock; errors are the store's unless `fn` decided them. */
  async #locked<T>(fn: (client: pg.PoolClient, ends: LogEnds | null) => Promise<T>, init = true, readEnds = false): Promise<T> {
    if (init) await this.#init();
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw unavailable(err);
    }
    try {
      // One round trip: the transaction, its lock, and (`readEnds`) the log's ends as of holding it.
      const results = (await client.query(
        readEnds
          ? `BEGIN; SELECT pg_advisory_xact_lock(${WRITE_LOCK}); SELECT key, value FROM ${this.#t('meta')} WHERE key IN ('floor', 'seq')`
          : `BEGIN; SELECT pg_advisory_xact_lock(${WRITE_LOCK})`
      )) as unknown as pg.QueryResult<{ key: string; value: string }>[];
      const rows = results[2]?.rows ?? [];
      const value = (key: string): number => Number(rows.find((r) => r.key === key)?.value ?? 0);
      const result = await fn(client, readEnds ? { floor: value('floor'), seq: value('seq') } : null);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async load(): Promise<LoadedState> {
    await this.#init();
    const client = await this.#connect();
    try {
      // One consistent view of the snapshots and the effects after them.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const seq = await client.query<{ value: string }>(`SELECT value FROM ${this.#t('meta')} WHERE key = 'seq'`);
      const snapshots = await client.query<{ vm: string; seq: string; record: string; pins: Buffer }>(`SELECT vm, seq, record, pins FROM ${this.#t('snapshots')}`);
      const effects = await client.query<Row>(`SELECT seq, vm, record, ops FROM ${this.#t('effects')} ORDER BY seq, n`);
      await client.query('COMMIT');
      return {
        seq: Number(seq.rows[0]?.value ?? 0),
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
      await this.#locked(async (client) => {
        // Another replica may have migrated meanwhile.
        const format = await client.query(`SELECT value FROM ${this.#t('meta')} WHERE key = 'format'`);
        if (format.rows.length > 0) return;
        for (const s of snapshots) await putSnapshot(client, this.#t, s);
        await client.query(`INSERT INTO ${this.#t('effects')} (seq, vm, record, ops) VALUES ($1, $2, $3, NULL)`, [seq, QUIRKS_EFFECT, quirks]);
        await putMeta(client, this.#t, 'seq', String(seq));
        await putMeta(client, this.#t, 'format', '2');
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  async since(afterSeq: number): Promise<EffectRow[] | null> {
    await this.#init();
    const client = await this.#connect();
    try {
      return await this.#missed(client, afterSeq, await this.#ends(client));
    } catch (err) {
      throw unavailable(err);
    } finally {
      client.release();
    }
  }

  /** The log's ends: what snapshots dropped (`floor`) and the last change stored (`seq`). */
  async #ends(client: pg.PoolClient): Promise<LogEnds> {
    const meta = await client.query<{ key: string; value: string }>({
      name: `${this.#schema}-log-ends`,
      text: `SELECT key, value FROM ${this.#t('meta')} WHERE key IN ('floor', 'seq')`
    });
    const value = (key: string): number => Number(meta.rows.find((r) => r.key === key)?.value ?? 0);
    return { floor: value('floor'), seq: value('seq') };
  }

  /** Effects after `afterSeq` with the flush jobs their changes promised; null below the floor. */
  async #missed(client: pg.PoolClient, afterSeq: number, ends: LogEnds): Promise<EffectRow[] | null> {
    if (afterSeq < ends.floor) return null;
    // Nothing stored since (one replica, or caught up): nothing more to read.
    if (ends.seq <= afterSeq) return [];
    const res = await client.query<Row>(`SELECT seq, vm, record, ops FROM ${this.#t('effects')} WHERE seq > $1 ORDER BY seq, n`, [afterSeq]);
    const effects = res.rows.map(effectRow);
    if (effects.length === 0) return effects;
    const parts = await client.query<{ job: string; seq: string; vm: string; header: string; pairs: Buffer }>(
      `SELECT job, seq, vm, header, pairs FROM ${this.#t('job_parts')} WHERE seq > $1 ORDER BY n`,
      [afterSeq]
    );
    const bySeq = new Map<number, StoredJobPart[]>();
    for (const p of parts.rows) {
      const list = bySeq.get(Number(p.seq)) ?? [];
      list.push({ id: p.job, vmId: p.vm, header: p.header, pairs: pairsFromBytes(p.pairs) as Float64Array });
      bySeq.set(Number(p.seq), list);
    }
    return effects.map((e) => {
      const jobs = bySeq.get(e.seq);
      if (jobs === undefined) return e;
      bySeq.delete(e.seq);
      return { ...e, jobs };
    });
  }

  async append(changes: readonly StoredChange[]): Promise<void> {
    try {
      await this.#locked(async (client) => {
        await this.#insert(client, changes);
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  async write(afterSeq: number, decide: (missed: readonly EffectRow[] | null) => readonly StoredChange[]): Promise<void> {
    let deciding = false;
    try {
      await this.#locked(async (client, ends) => {
        const missed = await this.#missed(client, afterSeq, ends ?? (await this.#ends(client)));
        deciding = true;
        const changes = decide(missed);
        deciding = false;
        await this.#insert(client, changes);
      }, true, true);
    } catch (err) {
      // A rejection by `decide` (a domain error) passes through; anything else is the store's.
      throw deciding ? err : unavailable(err);
    }
  }

  /**
   * Stores changes in one statement (and one more per change that deletes a VM or replaces the
   * quirk list): their effects, flush job parts, audit entries and events, the log's last
   * sequence number, and the notification the other replicas listen for.
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
        j AS (INSERT INTO ${t('job_parts')} (job, seq, vm, header, pairs) SELECT * FROM unnest($5::text[], $6::bigint[], $7::text[], $8::text[], $9::bytea[])),
        c AS (INSERT INTO ${t('commands')} (seq, at, vm, body, actor, rules) SELECT * FROM unnest($10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[])),
        v AS (INSERT INTO ${t('events')} (origin, vm, body) SELECT $16, x.vm, x.body FROM unnest($17::text[], $18::text[]) WITH ORDINALITY AS x(vm, body, k) ORDER BY x.k),
        m AS (INSERT INTO ${t('meta')} (key, value) VALUES ('seq', $19) ON CONFLICT (key) DO UPDATE SET value = excluded.value)
      SELECT pg_notify($20, $16)`,
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
        String((changes[changes.length - 1] as StoredChange).seq),
        this.#schema
      ]
    });
    this.#added += events.vm.length;
    if (this.#added >= this.#trimEvery || this.#addedBytes >= TRIM_EVERY_BYTES) await this.#dropOldEvents(client);
  }

  async publish(event: StoredEvent): Promise<void> {
    try {
      // Under the store's lock, as changes are: positions are then in commit order, and a
      // replica reading after position n never misses one committed later below it.
      await this.#locked(async (client) => {
        await client.query(`INSERT INTO ${this.#t('events')} (origin, vm, body) VALUES ($1, $2, $3)`, [this.#origin, event.vmId, event.body]);
        await client.query('SELECT pg_notify($1, $2)', [this.#schema, this.#origin]);
        this.#added++;
        this.#addedBytes += event.body.length;
        if (this.#added >= this.#trimEvery || this.#addedBytes >= TRIM_EVERY_BYTES) await this.#dropOldEvents(client);
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  /**
   * Keeps the most recent `keepEvents` events, and of them no more than KEEP_EVENT_BYTES; the
   * position of the last one dropped is the events' floor.
   */
  async #dropOldEvents(client: pg.PoolClient): Promise<void> {
    this.#added = 0;
    this.#addedBytes = 0;
    const dropped = await client.query<{ n: string | null }>(
      `WITH newest AS (
         SELECT n, row_number() OVER (ORDER BY n DESC) AS k, sum(length(body)) OVER (ORDER BY n DESC) AS bytes FROM ${this.#t('events')}
       ), cut AS (
         SELECT max(n) AS n FROM newest WHERE k > $1 OR bytes > $2
       ), gone AS (
         DELETE FROM ${this.#t('events')} WHERE n <= (SELECT n FROM cut) RETURNING n
       )
       SELECT max(n)::text AS n FROM gone`,
      [this.#keepEvents, KEEP_EVENT_BYTES]
    );
    const floor = dropped.rows[0]?.n ?? null;
    if (floor !== null) {
      await client.query(
        `INSERT INTO ${this.#t('meta')} (key, value) VALUES ('events_floor', $1) ON CONFLICT (key) DO UPDATE SET value = GREATEST(${this.#t('meta')}.value::bigint, excluded.value::bigint)::text`,
        [floor]
      );
    }
  }

  async eventsAfter(after: number): Promise<{ events: PublishedEvent[]; next: number; gone: boolean }> {
    await this.#init();
    try {
      if (after < 0) {
        const last = await this.#pool.query<{ n: string | null }>(`SELECT max(n)::text AS n FROM ${this.#t('events')}`);
        return { events: [], next: Number(last.rows[0]?.n ?? 0), gone: false };
      }
      const floor = await this.#pool.query<{ value: string }>(`SELECT value FROM ${this.#t('meta')} WHERE key = 'events_floor'`);
      // Own events are skipped, bodies and all, but move the position on.
      const res = await this.#pool.query<{ n: string; vm: string; body: string | null }>(
        `SELECT n, vm, CASE WHEN origin = $2 THEN NULL ELSE body END AS body FROM ${this.#t('events')} WHERE n > $1 ORDER BY n LIMIT 1000`,
        [after, this.#origin]
      );
      let next = after;
      const events: PublishedEvent[] = [];
      for (const r of res.rows) {
        next = Number(r.n);
        if (r.body !== null) events.push({ n: next, vmId: r.vm, body: r.body });
      }
      return { events, next, gone: after < Number(floor.rows[0]?.value ?? 0) };
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
      await this.#locked(async (client) => {
        // Only while the VM is still there and the snapshot is newer than the one kept.
        const kept = await client.query<{ seq: string }>(`SELECT seq FROM ${this.#t('snapshots')} WHERE vm = $1`, [snapshot.vmId]);
        if (kept.rows.length > 0 && Number(kept.rows[0]?.seq) >= snapshot.seq) return;
        const deleted = await client.query(`SELECT 1 FROM ${this.#t('effects')} WHERE vm = $1 AND seq > $2 AND record IS NULL`, [snapshot.vmId, snapshot.seq]);
        if (deleted.rows.length > 0) return;
        await putSnapshot(client, this.#t, snapshot);
        await client.query(`DELETE FROM ${this.#t('effects')} WHERE vm = $1 AND seq <= $2`, [snapshot.vmId, snapshot.seq]);
        await client.query(
          `INSERT INTO ${this.#t('meta')} (key, value) VALUES ('floor', $1) ON CONFLICT (key) DO UPDATE SET value = GREATEST(${this.#t('meta')}.value::bigint, excluded.value::bigint)::text`,
          [String(snapshot.seq)]
        );
      });
    } catch (err) {
      throw unavailable(err);
    }
  }

  async probe(): Promise<void> {
    try {
      await this.#locked(async (client) => {
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

  async saveJob(job: StoredJob): Promise<void> {
    await this.#init();
    const pairs = pairsToBytes(job.pairs);
    try {
      // Ranges given once are kept (COALESCE): a record without them replaces only the state.
      await this.#pool.query(`INSERT INTO ${this.#t('jobs')} (id, vm, body, pairs) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET body = excluded.body, pairs = COALESCE(excluded.pairs, ${this.#t('jobs')}.pairs)`, [
        job.id,
        job.vmId,
        job.body,
        pairs
      ]);
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

  async forgetJobs(ids: readonly string[]): Promise<void> {
    await this.#init();
    try {
      await this.#pool.query(`DELETE FROM ${this.#t('jobs')} WHERE id = ANY($1)`, [ids]);
      await this.#pool.query(`DELETE FROM ${this.#t('job_parts')} WHERE job = ANY($1)`, [ids]);
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
