/**
 * The audit trail in PostgreSQL: every change's command (`commands`), who made it and the rules
 * it named, kept apart from the decided state and trimmed by age and by size.
 */
import { auditRow, type AuditRow } from '../codec.js';
import type { AuditEntry, AuditQuery, AuditSize } from '../state-store.js';
import { AUDIT_PRUNE_TO } from '../state-store.js';
import type { Database } from './database.js';

/**
 * Bytes an audit record takes beyond its columns' text: the heap tuple's header and line
 * pointer, seq and at, the entries of its three indexes (seq, (vm, seq), at) and page slack;
 * measured (test/store/audit-size.test.ts: the relations stay within the estimate's reach).
 */
export const PG_AUDIT_ROW_OVERHEAD = 120;

/** An audit record's approximate bytes, as SQL (see AuditSize.auditBytes); `vm` is stored twice (row, index). */
const ROW_BYTES = `octet_length(body) + COALESCE(octet_length(actor), 0) + COALESCE(octet_length(rules), 0) + 2 * COALESCE(octet_length(vm), 0) + ${PG_AUDIT_ROW_OVERHEAD}`;

export class AuditTrail {
  readonly #db: Database;
  /**
   * This replica's count of the trail: its bytes as of revision `seq`, topped up at each check
   * with the records above it (an index range scan of the new ones only). Records other replicas
   * removed, summaries rewritten, and records another replica committed after this one counted
   * past their revision (sequence numbers are drawn before commit), are counted in full again
   * whenever a prune runs or the trail is trimmed by age. Null: count in full at the next check.
   */
  #count: { seq: number; bytes: number } | null = null;

  constructor(db: Database) {
    this.#db = db;
  }

  async audit(query: AuditQuery): Promise<AuditEntry[]> {
    const params: unknown[] = [query.afterSeq ?? 0, query.since ?? 0, query.limit];
    if (query.vmId !== undefined) params.push(query.vmId);
    const res = await this.#db.query<AuditRow>(
      `SELECT seq, at, body, actor, rules FROM ${this.#db.t('commands')} WHERE seq > $1 AND at >= $2 ${query.vmId === undefined ? '' : 'AND vm = $4'} ORDER BY seq LIMIT $3`,
      params
    );
    return res.rows.map(auditRow);
  }

  async trim(at: number): Promise<number> {
    const removed = (await this.#db.query(`DELETE FROM ${this.#db.t('commands')} WHERE at < $1`, [at])).rowCount ?? 0;
    if (removed > 0) this.#count = null;
    return removed;
  }

  /** The trail's bytes: in full (`from` null) or those of records above revision `from`, and the newest revision counted. */
  async #bytes(from: number | null): Promise<{ seq: number; bytes: number }> {
    const res = await this.#db.query<{ seq: string; bytes: string }>(
      `SELECT COALESCE(max(seq), 0)::text AS seq, COALESCE(sum(${ROW_BYTES}), 0)::text AS bytes FROM ${this.#db.t('commands')} ${from === null ? '' : 'WHERE seq > $1'}`,
      from === null ? [] : [from]
    );
    const row = res.rows[0] as { seq: string; bytes: string };
    return { seq: Number(row.seq), bytes: Number(row.bytes) };
  }

  /**
   * Keeps the trail within `budgetBytes` (see StateStore.pruneAudit): when this replica's count
   * says it holds more, the oldest records whose removal brings it to AUDIT_PRUNE_TO of the
   * budget go in one statement (the cut found by a running sum from the newest), and the trail
   * is counted again in full. Another replica pruning at the same time removes the same ones.
   */
  async prune(budgetBytes: number): Promise<AuditSize> {
    const t = this.#db.t;
    if (this.#count === null) this.#count = await this.#bytes(null);
    else {
      const added = await this.#bytes(this.#count.seq);
      this.#count = { seq: Math.max(this.#count.seq, added.seq), bytes: this.#count.bytes + added.bytes };
    }
    let removed = 0;
    let removedThrough = 0;
    if (this.#count.bytes > budgetBytes) {
      const res = await this.#db.query<{ removed: string; through: string | null }>(
        `WITH cut AS (
           SELECT seq FROM (SELECT seq, sum(${ROW_BYTES}) OVER (ORDER BY seq DESC) AS above FROM ${t('commands')}) x
           WHERE above > $1 ORDER BY seq DESC LIMIT 1),
         gone AS (DELETE FROM ${t('commands')} WHERE seq <= (SELECT seq FROM cut) RETURNING at)
         SELECT count(*)::text AS removed, max(at)::text AS through FROM gone`,
        [Math.floor(budgetBytes * AUDIT_PRUNE_TO)]
      );
      const row = res.rows[0];
      removed = Number(row?.removed ?? 0);
      removedThrough = Number(row?.through ?? 0);
      this.#count = await this.#bytes(null);
    }
    return { auditBytes: this.#count.bytes, storeBytes: await this.#schemaBytes(), removed, removedThrough };
  }

  /** Bytes of the schema's tables on disk, with their indexes and TOAST. */
  async #schemaBytes(): Promise<number> {
    const res = await this.#db.query<{ bytes: string }>(
      `SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::text AS bytes FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`,
      [this.#db.schema]
    );
    return Number(res.rows[0]?.bytes ?? 0);
  }
}
