/**
 * Sequence numbers of changes, drawn from one PostgreSQL sequence after the transaction's locks:
 * unique across replicas and increasing per VM (a VM's next change waits for its lock, so it
 * draws later), with gaps where a transaction drew numbers it did not use.
 */
import type { PoolClient } from 'pg';
import type { Table } from './migrations.js';

/** A statement (without parameters) drawing `n` sequence numbers, one row (`seq`, as text) each. */
export function drawSeqs(t: Table, n: number): string {
  return `SELECT nextval('${t('change_seq')}')::text AS seq FROM generate_series(1, ${Math.max(0, Math.floor(n))})`;
}

/** Sequence numbers handed out from now on are above `seq`. */
export async function raiseSeq(client: PoolClient, t: Table, seq: number): Promise<void> {
  const name = t('change_seq');
  await client.query(`SELECT setval('${name}', GREATEST($1::bigint, (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ${name})), true) WHERE $1::bigint > 0`, [seq]);
}
