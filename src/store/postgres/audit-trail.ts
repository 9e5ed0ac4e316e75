/**
 * The audit trail in PostgreSQL: every change's command (`commands`), who made it and the rules
 * it named, kept apart from the decided state and trimmed by age.
 */
import { auditRow, type AuditRow } from '../codec.js';
import type { AuditEntry, AuditQuery } from '../state-store.js';
import type { Database } from './database.js';

export class AuditTrail {
  readonly #db: Database;

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
    return (await this.#db.query(`DELETE FROM ${this.#db.t('commands')} WHERE at < $1`, [at])).rowCount ?? 0;
  }
}
