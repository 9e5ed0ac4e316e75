/**
 * The events replicas publish to each other (a change's `decision`, `policy` and `deleted`
 * events, a flush job planned or acknowledged), so that each hands the others' to its own
 * subscribers. They are read in the order of their transactions' ids, from finished
 * transactions only, and the log keeps the most recent 65,536 events (64 MiB at most); a replica
 * that had not read those dropped tells its subscribers `reset`.
 */
import { randomUUID } from 'node:crypto';
import type { PoolClient } from 'pg';
import type { EventCursor, PublishedEvent, StoredEvent } from '../state-store.js';
import { TRIM_LOCK } from './advisory-locks.js';
import { noticeOf } from './change-listener.js';
import type { Database } from './database.js';

/**
 * Events the log keeps, at most, and bytes of them (a pin of 10,000 ranges is one large event);
 * older ones are dropped.
 */
const KEEP_EVENTS = 65_536;
const KEEP_EVENT_BYTES = 64 * 1024 * 1024;
/** Events a replica reads at a time. */
const EVENTS_PAGE = 1000;
/** Events (or bytes of them) a replica adds between two rounds of dropping old ones. */
const TRIM_EVERY = 1024;
const TRIM_EVERY_BYTES = 4 * 1024 * 1024;

export interface EventPage {
  events: PublishedEvent[];
  next: EventCursor;
  gone: boolean;
  more: boolean;
  held: boolean;
}

export class EventLog {
  /** This replica's name in the event log (and in its notifications). */
  readonly origin = randomUUID();
  readonly #db: Database;
  readonly #keepEvents: number;
  readonly #trimEvery: number;
  /** Events, and bytes of them, this replica added since it last dropped old ones. */
  #added = 0;
  #addedBytes = 0;

  constructor(db: Database, keepEvents = KEEP_EVENTS) {
    this.#db = db;
    this.#keepEvents = keepEvents;
    this.#trimEvery = Math.min(TRIM_EVERY, Math.max(1, Math.floor(keepEvents / 4)));
  }

  async publish(event: StoredEvent): Promise<void> {
    // No lock: a reader takes only events of finished transactions (see eventsAfter).
    await this.#db.query(`WITH v AS (INSERT INTO ${this.#db.t('events')} (origin, vm, body) VALUES ($1, $2, $3)) SELECT pg_notify($4, $5)`, [
      this.origin,
      event.vmId,
      event.body,
      this.#db.schema,
      noticeOf(this.origin, [event.vmId])
    ]);
    this.addedEvents(1);
    this.addedBytes(event.body.length);
    this.trimSoon();
  }

  /** Counts events this replica stored (with a change), towards the next round of dropping old ones. */
  addedEvents(n: number): void {
    this.#added += n;
  }

  /** Counts bytes of events this replica stored, towards the next round of dropping old ones. */
  addedBytes(n: number): void {
    this.#addedBytes += n;
  }

  /** Drops old events once this replica added enough since it last did (in the background). */
  trimSoon(): void {
    if (this.#added < this.#trimEvery && this.#addedBytes < TRIM_EVERY_BYTES) return;
    this.#added = 0;
    this.#addedBytes = 0;
    this.#db.locked('none', (client) => this.#dropOldEvents(client)).catch(() => undefined);
  }

  /**
   * Keeps the most recent `keepEvents` events, and of them no more than KEEP_EVENT_BYTES; the
   * transaction id of the last one dropped is the events' floor. One replica at a time.
   */
  async #dropOldEvents(client: PoolClient): Promise<void> {
    const t = this.#db.t;
    const mine = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_xact_lock(${TRIM_LOCK}) AS ok`);
    if (mine.rows[0]?.ok !== true) return;
    const dropped = await client.query<{ xid: string | null }>(
      `WITH newest AS (
         SELECT n, row_number() OVER (ORDER BY n DESC) AS k, sum(length(body)) OVER (ORDER BY n DESC) AS bytes FROM ${t('events')}
       ), cut AS (
         SELECT max(n) AS n FROM newest WHERE k > $1 OR bytes > $2
       ), gone AS (
         DELETE FROM ${t('events')} WHERE n <= (SELECT n FROM cut) RETURNING xid
       )
       SELECT max(xid)::text AS xid FROM gone`,
      [this.#keepEvents, KEEP_EVENT_BYTES]
    );
    const floor = dropped.rows[0]?.xid ?? null;
    if (floor !== null) {
      await client.query(
        `INSERT INTO ${t('meta')} (key, value) VALUES ('events_floor', $1) ON CONFLICT (key) DO UPDATE SET value = GREATEST(${t('meta')}.value::bigint, excluded.value::bigint)::text`,
        [floor]
      );
    }
  }

  /**
   * Events in the order of their transactions' ids, taken only from transactions that have all
   * finished (below the oldest still running): one committed later never lands behind a cursor
   * already past it, without a lock ordering the writers. With `vmIds`, those VMs' events only:
   * the cursor passes the others'.
   */
  async eventsAfter(after: EventCursor | null, vmIds: readonly string[] | null = null): Promise<EventPage> {
    const t = this.#db.t;
    const from = after ?? { xid: 0, n: 0 };
    // Own events are skipped, bodies and all, but move the cursor on.
    // `held`: others' events already committed but behind a transaction still running.
    const res = await this.#db.query<{ xmin: string; floor: string | null; held: boolean; xid: string | null; n: string | null; vm: string | null; body: string | null }>(
      `WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
       SELECT s.xmin::text AS xmin, (SELECT value FROM ${t('meta')} WHERE key = 'events_floor') AS floor,
              EXISTS (SELECT 1 FROM ${t('events')} h WHERE h.xid >= s.xmin AND h.origin <> $3 AND ($5::text[] IS NULL OR h.vm = ANY($5))) AS held,
              e.xid::text AS xid, e.n::text AS n, e.vm, CASE WHEN e.origin = $3 THEN NULL ELSE e.body END AS body
       FROM s LEFT JOIN ${t('events')} e ON $4 AND (e.xid, e.n) > ($1::xid8, $2::bigint) AND e.xid < s.xmin AND ($5::text[] IS NULL OR e.vm = ANY($5))
       ORDER BY e.xid, e.n LIMIT ${EVENTS_PAGE}`,
      [String(from.xid), from.n, this.origin, after !== null, vmIds]
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
  }
}
