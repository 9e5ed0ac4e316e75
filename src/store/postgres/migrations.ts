/**
 * The schema of a PostgreSQL store and how it gets there: migrations applied in order, once,
 * under the store's exclusive lock (replicas starting together migrate one at a time; the others
 * find it done). A schema newer than this service is refused rather than misread.
 */
import type { PoolClient } from 'pg';

/** A table's name qualified with the store's schema. */
export type Table = (table: string) => string;

/** Schema migrations, applied in order; `t` qualifies a table with the store's schema. */
export const MIGRATIONS: readonly ((t: Table) => string)[] = [
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

/** Creates the schema when missing and applies the migrations it lacks, in `client`'s transaction. */
export async function migrate(client: PoolClient, schema: string, t: Table): Promise<void> {
  await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  await client.query(`CREATE TABLE IF NOT EXISTS ${t('schema_version')} (version INTEGER NOT NULL)`);
  const row = await client.query<{ version: number }>(`SELECT version FROM ${t('schema_version')}`);
  let version = row.rows[0]?.version ?? 0;
  if (row.rows.length === 0) await client.query(`INSERT INTO ${t('schema_version')} (version) VALUES (0)`);
  if (version > MIGRATIONS.length) throw new Error(`schema ${schema} has version ${version}, newer than this service`);
  for (; version < MIGRATIONS.length; version++) {
    await client.query((MIGRATIONS[version] as (t: Table) => string)(t));
    await client.query(`UPDATE ${t('schema_version')} SET version = $1`, [version + 1]);
  }
}
