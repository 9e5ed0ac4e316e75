/**
 * How a replica hears of the others: every change and every published event sends NOTIFY on a
 * channel named after the schema. The payload is the sender's origin and the VMs it changed,
 * separated by spaces (VM ids hold none), or the origin and `*` when they are too many to name
 * (or the quirk list changed); a replica of an earlier version sends its origin alone. A replica
 * that serves none of the VMs named has nothing to read. One connection of its own LISTENs (a
 * pooled one would be handed back); it reconnects after a failure and reports each reconnection
 * as a change of every VM, since one may have been missed while it was down.
 */
import pg from 'pg';

/** Milliseconds between a lost connection and the next attempt. */
const RECONNECT_MS = 1000;

/** A NOTIFY payload is at most 8000 bytes; a longer list of VMs is sent as "every VM". */
const MAX_NOTICE = 7999;

/** The payload telling the other replicas that `origin` changed `vmIds` (QUIRKS_EFFECT, the empty id: every VM). */
export function noticeOf(origin: string, vmIds: Iterable<string>): string {
  let notice = origin;
  for (const vm of new Set(vmIds)) {
    if (vm === '') return `${origin} *`;
    notice += ` ${vm}`;
  }
  return notice.length > MAX_NOTICE ? `${origin} *` : notice;
}

/** The VMs a payload names (null: every VM), or undefined for this replica's own. */
export function movedBy(payload: string, origin: string): readonly string[] | null | undefined {
  const parts = payload.split(' ');
  if (parts[0] === origin) return undefined;
  const vms = parts.slice(1);
  return vms.length === 0 || vms.includes('*') ? null : vms;
}

export interface ChangeChannel {
  readonly connectionString: string;
  readonly schema: string;
  /** This replica's origin: its own notifications are not news to it. */
  readonly origin: string;
}

/** Calls `onChange` on every other replica's notification, with the VMs it names; returns how to stop. */
export function listenForChanges(channel: ChangeChannel, onChange: (vmIds: readonly string[] | null) => void): () => void {
  let stopped = false;
  let client: pg.Client | null = null;
  let retry: NodeJS.Timeout | null = null;
  const connect = (): void => {
    if (stopped) return;
    const c = new pg.Client({ connectionString: channel.connectionString, connectionTimeoutMillis: 2000 });
    client = c;
    const again = (): void => {
      if (client !== c) return;
      client = null;
      c.end().catch(() => undefined);
      if (!stopped) retry = setTimeout(connect, RECONNECT_MS).unref();
    };
    c.on('error', again);
    c.on('end', again);
    c.on('notification', (n) => {
      const moved = movedBy(n.payload ?? '', channel.origin);
      if (moved !== undefined) onChange(moved);
    });
    c.connect()
      .then(() => c.query(`LISTEN "${channel.schema}"`))
      .then(() => onChange(null), again);
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
