/**
 * The schema of the embedded store's data file, migrated in order when it is opened; the
 * version table records how far a file has come, and a file from a newer service is refused.
 */
import type Database from 'better-sqlite3';

/** Schema migrations, applied in order; the version table records how far a file has come. */
export const MIGRATIONS: readonly string[] = [
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

/** Applies the migrations the file at `path` lacks, each in its own transaction. */
export function migrate(db: Database.Database, path: string): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
  const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
  let version = row?.version ?? 0;
  if (row === undefined) db.prepare('INSERT INTO schema_version (version) VALUES (0)').run();
  if (version > MIGRATIONS.length) throw new Error(`${path} has schema version ${version}, newer than this service (${MIGRATIONS.length})`);
  for (; version < MIGRATIONS.length; version++) {
    const sql = MIGRATIONS[version] as string;
    db.transaction(() => {
      db.exec(sql);
      db.prepare('UPDATE schema_version SET version = ?').run(version + 1);
    })();
  }
}
