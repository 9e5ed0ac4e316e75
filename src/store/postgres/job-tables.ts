/**
 * Flush jobs in PostgreSQL: each decision's part of a job is stored with its change
 * (`job_parts`, by change-writer.ts); `jobs` keeps each job's state record, replaced as the job
 * moves on. Records saved or forgotten in one turn of the event loop share one statement.
 */
import { pairsFromBytes, pairsToBytes } from '../codec.js';
import { mergeJobs } from '../merge-jobs.js';
import type { LoadedJob, StoredJob } from '../state-store.js';
import type { Database } from './database.js';

/** A job statement that PostgreSQL aborted to break a deadlock is tried this many times in all. */
const JOB_WRITE_ATTEMPTS = 3;
/** SQLSTATE deadlock_detected. */
const DEADLOCK = '40P01';

type JobWrite = { save?: StoredJob; forget?: readonly string[] };

export class JobTables {
  readonly #db: Database;
  /** Job records to keep and to forget, waiting for the next statement: those of one turn of the event loop go together. */
  #writes: (JobWrite & { resolve: () => void; reject: (err: unknown) => void })[] = [];

  constructor(db: Database) {
    this.#db = db;
  }

  save(job: StoredJob): Promise<void> {
    return this.#write({ save: job });
  }

  forget(ids: readonly string[]): Promise<void> {
    return this.#write({ forget: ids });
  }

  #write(write: JobWrite): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#writes.push({ ...write, resolve, reject });
      if (this.#writes.length === 1) setImmediate(() => void this.#flush());
    });
  }

  /**
   * Upserts and forgets the job records of one turn in one statement. A job saved twice keeps its
   * last state, and ranges given once are kept (a record without them replaces only the state);
   * a job forgotten goes with its parts, whatever was saved of it before.
   */
  async #flush(): Promise<void> {
    const batch = this.#writes;
    this.#writes = [];
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
    try {
      await this.#db.ready();
      await this.#upsert(jobs, [...forgotten].sort());
      for (const b of batch) b.resolve();
    } catch (err) {
      for (const b of batch) b.reject(err);
    }
  }

  async #upsert(jobs: readonly [string, { vmId: string; body: string; pairs: Buffer | null }][], forgotten: readonly string[]): Promise<void> {
    const t = this.#db.t;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#db.query(
          `WITH s AS (INSERT INTO ${t('jobs')} (id, vm, body, pairs) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
                      ON CONFLICT (id) DO UPDATE SET body = excluded.body, pairs = COALESCE(excluded.pairs, ${t('jobs')}.pairs)),
                f AS (DELETE FROM ${t('jobs')} WHERE id = ANY($5::text[]))
           DELETE FROM ${t('job_parts')} WHERE job = ANY($5::text[])`,
          [jobs.map(([id]) => id), jobs.map(([, j]) => j.vmId), jobs.map(([, j]) => j.body), jobs.map(([, j]) => j.pairs), forgotten]
        );
        return;
      } catch (err) {
        if (attempt < JOB_WRITE_ATTEMPTS && (err as { code?: string }).code === DEADLOCK) continue;
        throw err;
      }
    }
  }

  /** The VM whose change promised job `id` (null: none stored it, or it was forgotten). */
  async jobVm(id: string): Promise<string | null> {
    const res = await this.#db.query<{ vm: string }>(`SELECT vm FROM ${this.#db.t('job_parts')} WHERE job = $1 LIMIT 1`, [id]);
    return res.rows[0]?.vm ?? null;
  }

  async jobRecords(ids: readonly string[]): Promise<{ readonly id: string; readonly body: string }[]> {
    if (ids.length === 0) return [];
    const res = await this.#db.query<{ id: string; body: string }>(`SELECT id, body FROM ${this.#db.t('jobs')} WHERE id = ANY($1::text[])`, [[...ids]]);
    return res.rows;
  }

  async load(): Promise<LoadedJob[]> {
    const t = this.#db.t;
    const records = await this.#db.query<{ id: string; vm: string; body: string; pairs: Buffer | null }>(`SELECT id, vm, body, pairs FROM ${t('jobs')} ORDER BY n`);
    const parts = await this.#db.query<{ job: string; vm: string; header: string; pairs: Buffer }>(`SELECT job, vm, header, pairs FROM ${t('job_parts')} ORDER BY n`);
    return mergeJobs(
      records.rows.map((r) => ({ id: r.id, vmId: r.vm, body: r.body, pairs: pairsFromBytes(r.pairs) })),
      parts.rows.map((p) => ({ id: p.job, vmId: p.vm, header: p.header, pairs: pairsFromBytes(p.pairs) as Float64Array }))
    );
  }
}
