/**
 * Worker-thread entry of the embedded store: owns the SQLite connection, so commits and their
 * fsyncs never run on the service's event loop. Writes (changes, snapshots, job records) that
 * arrive together are committed in one transaction, in order (group commit); any other request
 * first commits what is queued, so it sees every write made before it.
 *
 * The protocol is one message each way: `{ id, request }` in, `{ id, value, transactions }` or
 * `{ id, error }` out; the writes one transaction committed are answered together (`{ ids }`).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SqliteEngine } from './sqlite-engine.js';
import type { PackedWrites } from './sqlite/packed-writes.js';
import type { AuditQuery, VmSnapshot } from './state-store.js';

export type WriterRequest =
  | { readonly op: 'write'; readonly writes: PackedWrites }
  | { readonly op: 'load' | 'legacy' | 'loadJobs' | 'close' | 'unfence' }
  | { readonly op: 'migrated'; readonly snapshots: readonly VmSnapshot[]; readonly quirks: string; readonly seq: number }
  | { readonly op: 'audit'; readonly query: AuditQuery }
  | { readonly op: 'meta'; readonly key: string; readonly initial: string }
  | { readonly op: 'trimAudit'; readonly at: number }
  | { readonly op: 'pruneAudit'; readonly above: number; readonly goal: number };

export interface WriterMessage {
  readonly id: number;
  readonly request: WriterRequest;
}

/** What a request answers (or why it failed), and how many transactions the engine has committed. */
export type WriterReply =
  | { readonly id: number; readonly value: unknown; readonly transactions: number }
  | { readonly id: number; readonly error: string }
  /** The write requests one transaction committed (or failed), answered in one message. */
  | { readonly ids: readonly number[]; readonly transactions: number; readonly error?: string };

if (parentPort === null) throw new Error('sqlite-writer runs in a worker thread');
const port = parentPort;
const engine = new SqliteEngine((workerData as { dataDir: string }).dataDir);

/**
 * A commit fence: once a transaction failed, every later write is refused until the service,
 * having learned of the failure, reloads its state and lifts the fence (`unfence`). A write sent
 * before the service knew (a change decided on top of the refused one) is never kept.
 */
let fenced: string | null = null;

/** Writes waiting for the next transaction, and the requests they came in. */
let queue: PackedWrites[] = [];
let ids: number[] = [];
let scheduled = false;

/** Commits everything queued in one transaction; every write of it is kept or fails together. */
function commit(): void {
  scheduled = false;
  const batch = queue;
  const waiting = ids;
  queue = [];
  ids = [];
  if (waiting.length === 0) return;
  let error: string | null = null;
  if (fenced !== null) {
    error = `an earlier write failed (${fenced}); nothing written after it is kept until the state is reloaded`;
  } else {
    try {
      engine.writePacked(batch);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      fenced = error;
    }
  }
  port.postMessage(error === null ? { ids: waiting, transactions: engine.transactions } : { ids: waiting, transactions: engine.transactions, error });
}

function run(request: Exclude<WriterRequest, { op: 'write' }>): unknown {
  switch (request.op) {
    case 'load':
      return engine.load();
    case 'legacy':
      return engine.legacy();
    case 'migrated':
      engine.migrated(request.snapshots, request.quirks, request.seq);
      return undefined;
    case 'audit':
      return engine.audit(request.query);
    case 'meta':
      return engine.meta(request.key, request.initial);
    case 'loadJobs':
      return engine.loadJobs();
    case 'trimAudit':
      return engine.trimAudit(request.at);
    case 'pruneAudit':
      return engine.pruneAudit(request.above, request.goal);
    case 'close':
      engine.close();
      return undefined;
    case 'unfence':
      fenced = null;
      return undefined;
  }
}

port.on('message', ({ id, request }: WriterMessage) => {
  if (request.op === 'write') {
    // Messages arriving before the next turn of this thread's loop share the transaction.
    queue.push(request.writes);
    ids.push(id);
    if (!scheduled) {
      scheduled = true;
      setImmediate(commit);
    }
    return;
  }
  commit();
  let reply: WriterReply;
  try {
    reply = { id, value: run(request), transactions: engine.transactions };
  } catch (err) {
    reply = { id, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
  if (request.op === 'close') port.close();
});
