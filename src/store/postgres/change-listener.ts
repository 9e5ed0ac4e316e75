/**
 * How a replica hears of the others: every change and every published event sends NOTIFY on a
 * channel named after the schema, with the sender's origin as payload. One connection of its
 * own LISTENs (a pooled one would be handed back); it reconnects after a failure and reports
 * each reconnection as a change, since one may have been missed while it was down.
 */
import pg from 'pg';

/** Milliseconds between a lost connection and the next attempt. */
const RECONNECT_MS = 1000;

export interface ChangeChannel {
  readonly connectionString: string;
  readonly schema: string;
  /** This replica's origin: its own notifications are not news to it. */
  readonly origin: string;
}

/** Calls `onChange` on every other replica's notification; returns how to stop. */
export function listenForChanges(channel: ChangeChannel, onChange: () => void): () => void {
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
      if (n.payload !== channel.origin) onChange();
    });
    c.connect()
      .then(() => c.query(`LISTEN "${channel.schema}"`))
      .then(() => onChange(), again);
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
