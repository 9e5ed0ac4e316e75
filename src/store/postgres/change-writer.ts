/**
 * How changes get into PostgreSQL. A replica's change is serialised per VM: its transaction
 * takes the advisory lock of each VM it changes (after the store's lock, shared; a change of the
 * quirk list takes that one exclusively), reads what the replica missed of those VMs (their
 * heads say how far each got), lets the replica decide, and inserts under sequence numbers drawn
 * after the locks. Two replicas changing one VM at once are thus serialised (no lost updates),
 * and changes to different VMs are not.
 */
import pg from 'pg';
import { encodeCommand, pairsToBytes } from '../codec.js';
import { QUIRKS_EFFECT, type Known, type Missed, type StoredChange, type WriteScope } from '../state-store.js';
import { noticeOf } from './change-listener.js';
import { drawSeqs, raiseSeq } from './change-seq.js';
import type { Database } from './database.js';
import type { EventLog } from './event-log.js';
import { callers } from './guarded.js';
import { missedOf, missedQuery, type MissedRow } from './missed.js';

export class ChangeWriter {
  readonly #db: Database;
  readonly #events: EventLog;
  /** Told each committed change transaction's duration (seconds, from its start until COMMIT answered). */
  readonly #committed: (seconds: number) => void;

  constructor(db: Database, events: EventLog, committed: (seconds: number) => void = () => undefined) {
    this.#db = db;
    this.#events = events;
    this.#committed = committed;
  }

  /** Stores changes numbered by the caller (a store used by one replica), under the store's exclusive lock. */
  async append(changes: readonly StoredChange[]): Promise<void> {
    const started = performance.now();
    await this.#db.locked('all', async (client) => {
      await this.#insert(client, changes);
      await raiseSeq(client, this.#db.t, Math.max(0, ...changes.map((c) => c.seq)));
    });
    this.#committed((performance.now() - started) / 1000);
    this.#events.trimSoon();
  }

  /** See SharedStateStore.write: what `decide` throws is the caller's and passes as it is. */
  async write(scope: WriteScope, known: Known, seqs: number, decide: (missed: Missed, seqs: readonly number[]) => readonly StoredChange[]): Promise<void> {
    const t = this.#db.t;
    // What the replica missed of the scope's VMs and the quirk list, read in the first round trip
    // (literals: the prelude has no parameters). VM ids are validated, and escaped all the same.
    const vms = scope === 'all' ? [...known.keys()] : [...new Set([QUIRKS_EFFECT, ...scope])];
    const pairs = vms.map((vm) => `(${pg.escapeLiteral(vm)}, ${known.get(vm) ?? 0})`).join(', ');
    const behind =
      scope === 'all'
        ? `SELECT h.vm, COALESCE(k.after, 0) AS after FROM ${t('heads')} h LEFT JOIN (VALUES ${pairs === '' ? "('', 0)" : pairs}) AS k(vm, after) USING (vm)`
        : `SELECT k.vm, k.after FROM (VALUES ${pairs}) AS k(vm, after)`;
    const prelude = `${drawSeqs(t, seqs)};${missedQuery(t, behind)};`;
    const started = performance.now();
    await this.#db.locked(
      scope,
      async (client, [given, missed]) => {
        const changes = callers(() => decide(missedOf((missed as pg.QueryResult<MissedRow>).rows), (given as pg.QueryResult<{ seq: string }>).rows.map((r) => Number(r.seq))));
        await this.#insert(client, changes);
      },
      prelude
    );
    this.#committed((performance.now() - started) / 1000);
    this.#events.trimSoon();
  }

  /**
   * Stores changes in one statement (and one more per change that deletes a VM or replaces the
   * quirk list): their effects, the heads of the VMs they change, flush job parts, audit entries
   * and events, and the notification the other replicas listen for (naming the VMs changed).
   */
  async #insert(client: pg.PoolClient, changes: readonly StoredChange[]): Promise<void> {
    if (changes.length === 0) return;
    const t = this.#db.t;
    const effects: { seq: number[]; vm: string[]; record: (string | null)[]; ops: (Buffer | null)[] } = { seq: [], vm: [], record: [], ops: [] };
    const parts: { job: string[]; seq: number[]; vm: string[]; header: string[]; pairs: Buffer[] } = { job: [], seq: [], vm: [], header: [], pairs: [] };
    const commands: { seq: number[]; at: number[]; vm: (string | null)[]; body: string[]; actor: (string | null)[]; rules: (string | null)[] } = { seq: [], at: [], vm: [], body: [], actor: [], rules: [] };
    const events: { vm: string[]; body: string[] } = { vm: [], body: [] };
    for (const c of changes) {
      for (const e of c.effects) {
        // A newer quirk list supersedes older ones; a deleted VM's earlier effects are of no use
        // to anyone (a replica that missed them applies the deletion).
        if (e.vmId === QUIRKS_EFFECT || e.record === null) await client.query(`DELETE FROM ${t('effects')} WHERE vm = $1`, [e.vmId]);
        if (e.record === null) await client.query(`DELETE FROM ${t('snapshots')} WHERE vm = $1`, [e.vmId]);
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
      // A fold window's summary (AuditFolder) is replaced by each change folded into it: in one
      // statement a row may be written once only, so the last of a batch stands for the others.
      const auditSeq = c.auditSeq ?? c.seq;
      const body = encodeCommand(c.command);
      const rules = c.rules === undefined ? null : JSON.stringify(c.rules);
      const again = auditSeq === c.seq ? -1 : commands.seq.lastIndexOf(auditSeq);
      if (again >= 0) {
        commands.body[again] = body;
        commands.rules[again] = rules;
      } else {
        commands.seq.push(auditSeq);
        commands.at.push(c.at);
        commands.vm.push('vmId' in c.command ? c.command.vmId : null);
        commands.body.push(body);
        commands.actor.push(c.actor ?? null);
        commands.rules.push(rules);
      }
      for (const e of c.events ?? []) {
        events.vm.push(e.vmId);
        events.body.push(e.body);
        this.#events.addedBytes(e.body.length);
      }
    }
    await client.query({
      name: `${this.#db.schema}-insert`,
      text: `WITH
        e AS (INSERT INTO ${t('effects')} (seq, vm, record, ops) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[])),
        h AS (INSERT INTO ${t('heads')} (vm, seq) SELECT x.vm, max(x.seq) FROM unnest($2::text[], $1::bigint[]) AS x(vm, seq) GROUP BY x.vm
              ON CONFLICT (vm) DO UPDATE SET seq = GREATEST(${t('heads')}.seq, excluded.seq)),
        j AS (INSERT INTO ${t('job_parts')} (job, seq, vm, header, pairs) SELECT * FROM unnest($5::text[], $6::bigint[], $7::text[], $8::text[], $9::bytea[])),
        c AS (INSERT INTO ${t('commands')} (seq, at, vm, body, actor, rules) SELECT * FROM unnest($10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[])
              ON CONFLICT (seq) DO UPDATE SET body = excluded.body, rules = excluded.rules),
        v AS (INSERT INTO ${t('events')} (origin, vm, body) SELECT $16, x.vm, x.body FROM unnest($17::text[], $18::text[]) WITH ORDINALITY AS x(vm, body, k) ORDER BY x.k)
      SELECT pg_notify($19, $20)`,
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
        this.#events.origin,
        events.vm,
        events.body,
        this.#db.schema,
        noticeOf(this.#events.origin, [...effects.vm, ...events.vm])
      ]
    });
    this.#events.addedEvents(events.vm.length);
  }
}
