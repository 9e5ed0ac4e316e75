/**
 * The decided state in PostgreSQL: per VM a snapshot and the effects after it, each VM's head
 * (its last change), the key-value `meta`, and the commands of a store written by 0.1.0 until
 * they are migrated. Changes are written by change-writer.ts; this keeps and reads the rest.
 */
import type { PoolClient } from 'pg';
import { auditRow, pairsFromBytes, pairsToBytes, type AuditRow } from '../codec.js';
import { QUIRKS_EFFECT, type Known, type LegacyCommand, type LoadedState, type Missed, type VmSnapshot } from '../state-store.js';
import { raiseSeq } from './change-seq.js';
import type { Database } from './database.js';
import type { Table } from './migrations.js';
import { missedOf, missedQuery, type MissedRow } from './missed.js';

type EffectRecord = { seq: string; vm: string; record: string | null; ops: Buffer | null };

export class StateTables {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  load(): Promise<LoadedState> {
    const t = this.#db.t;
    // One consistent view of the snapshots and the effects after them.
    return this.#db.consistent(async (client) => {
      const seq = await client.query<{ seq: string | null }>(`SELECT max(seq)::text AS seq FROM ${t('heads')}`);
      const snapshots = await client.query<{ vm: string; seq: string; record: string; pins: Buffer }>(`SELECT vm, seq, record, pins FROM ${t('snapshots')}`);
      const effects = await client.query<EffectRecord>(`SELECT seq, vm, record, ops FROM ${t('effects')} ORDER BY seq, n`);
      return {
        seq: Number(seq.rows[0]?.seq ?? 0),
        snapshots: snapshots.rows.map((r) => ({ vmId: r.vm, seq: Number(r.seq), record: r.record, pins: pairsFromBytes(r.pins) as Float64Array })),
        effects: effects.rows.map((r) => ({ seq: Number(r.seq), vmId: r.vm, record: r.record, ops: pairsFromBytes(r.ops) }))
      };
    });
  }

  async legacy(): Promise<LegacyCommand[] | null> {
    const t = this.#db.t;
    const format = await this.#db.query(`SELECT value FROM ${t('meta')} WHERE key = 'format'`);
    if (format.rows.length > 0) return null;
    const res = await this.#db.query<AuditRow>(`SELECT seq, at, body, actor, rules FROM ${t('commands')} ORDER BY seq`);
    return res.rows.map(auditRow);
  }

  migrated(snapshots: readonly VmSnapshot[], quirks: string, seq: number): Promise<void> {
    const t = this.#db.t;
    return this.#db.locked('all', async (client) => {
      // Another replica may have migrated meanwhile.
      const format = await client.query(`SELECT value FROM ${t('meta')} WHERE key = 'format'`);
      if (format.rows.length > 0) return;
      for (const s of snapshots) await putSnapshot(client, t, s);
      await client.query(`INSERT INTO ${t('effects')} (seq, vm, record, ops) VALUES ($1, $2, $3, NULL)`, [seq, QUIRKS_EFFECT, quirks]);
      await client.query(
        `INSERT INTO ${t('heads')} (vm, seq) SELECT vm, $1 FROM unnest($2::text[]) AS vm ON CONFLICT (vm) DO UPDATE SET seq = GREATEST(${t('heads')}.seq, excluded.seq)`,
        [seq, [QUIRKS_EFFECT, ...snapshots.map((s) => s.vmId)]]
      );
      await raiseSeq(client, t, seq);
      await putMeta(client, t, 'format', '2');
    });
  }

  async since(vmIds: readonly string[] | null, known: Known): Promise<Missed> {
    const t = this.#db.t;
    const vms: string[] = [];
    const after: number[] = [];
    for (const [vm, seq] of known) {
      if (vmIds !== null && vm !== QUIRKS_EFFECT && !vmIds.includes(vm)) continue;
      vms.push(vm);
      after.push(seq);
    }
    // Behind: the VMs asked for (every VM for null) and the quirk list whose head is past what the replica knows.
    const heads = vmIds === null ? `SELECT vm FROM ${t('heads')}` : `SELECT vm FROM ${t('heads')} WHERE vm = ANY($3::text[]) OR vm = ''`;
    const res = await this.#db.query<MissedRow>(missedQuery(t, `SELECT h.vm, COALESCE(k.after, 0) AS after FROM (${heads}) h LEFT JOIN unnest($1::text[], $2::bigint[]) AS k(vm, after) USING (vm)`), [
      vms,
      after,
      ...(vmIds === null ? [] : [vmIds])
    ]);
    return missedOf(res.rows);
  }

  snapshot(snapshot: VmSnapshot): Promise<void> {
    const t = this.#db.t;
    return this.#db.locked([snapshot.vmId], async (client) => {
      // Only while the VM is still there and the snapshot is newer than the one kept.
      const kept = await client.query<{ seq: string }>(`SELECT seq FROM ${t('snapshots')} WHERE vm = $1`, [snapshot.vmId]);
      if (kept.rows.length > 0 && Number(kept.rows[0]?.seq) >= snapshot.seq) return;
      const deleted = await client.query(`SELECT 1 FROM ${t('effects')} WHERE vm = $1 AND seq > $2 AND record IS NULL`, [snapshot.vmId, snapshot.seq]);
      if (deleted.rows.length > 0) return;
      await putSnapshot(client, t, snapshot);
      await client.query(`DELETE FROM ${t('effects')} WHERE vm = $1 AND seq <= $2`, [snapshot.vmId, snapshot.seq]);
    });
  }

  /** A transaction that commits a write: the store takes changes again. */
  probe(): Promise<void> {
    return this.#db.locked('none', (client) => putMeta(client, this.#db.t, 'probe', String(Date.now())));
  }

  async meta(key: string, initial: string): Promise<string> {
    const t = this.#db.t;
    await this.#db.query(`INSERT INTO ${t('meta')} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, [key, initial]);
    const res = await this.#db.query<{ value: string }>(`SELECT value FROM ${t('meta')} WHERE key = $1`, [key]);
    return (res.rows[0] as { value: string }).value;
  }
}

async function putSnapshot(client: PoolClient, t: Table, s: VmSnapshot): Promise<void> {
  await client.query(
    `INSERT INTO ${t('snapshots')} (vm, seq, record, pins) VALUES ($1, $2, $3, $4) ON CONFLICT (vm) DO UPDATE SET seq = excluded.seq, record = excluded.record, pins = excluded.pins`,
    [s.vmId, s.seq, s.record, pairsToBytes(s.pins)]
  );
}

async function putMeta(client: PoolClient, t: Table, key: string, value: string): Promise<void> {
  await client.query(`INSERT INTO ${t('meta')} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [key, value]);
}
