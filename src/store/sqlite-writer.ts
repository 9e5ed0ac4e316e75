/**
 * Worker-thread entry of the embedded store (a one-thread piscina pool that takes many requests
 * at once): owns the SQLite connection, so commits and their fsyncs never run on the service's
 * event loop. Writes (changes, snapshots, job records) that arrive together are committed in one
 * transaction, in order (group commit); any other request first commits what is queued, so it
 * sees every write made before it.
 */
import { workerData } from 'node:worker_threads';
import { SqliteEngine, type WriteOp } from './sqlite-engine.js';
import type { AuditQuery, VmSnapshot } from './state-store.js';

export type WriterRequest =
  | { readonly op: 'write'; readonly writes: readonly WriteOp[] }
  | { readonly op: 'load' | 'legacy' | 'loadJobs' | 'close' }
  | { readonly op: 'migrated'; readonly snapshots: readonly VmSnapshot[]; readonly quirks: string; readonly seq: number }
  | { readonly op: 'audit'; readonly query: AuditQuery }
  | { readonly op: 'meta'; readonly key: string; readonly initial: string }
  | { readonly op: 'forgetJobs'; readonly ids: readonly string[] }
  | { readonly op: 'trimAudit'; readonly at: number };

/** What a request answers, and how many transactions the engine has committed (for tests). */
export interface WriterReply {
  readonly value: unknown;
  readonly transactions: number;
}

const engine = new SqliteEngine((workerData as { dataDir: string }).dataDir);

interface Queued {
  readonly write: WriteOp;
  resolve(): void;
  reject(err: unknown): void;
}

let queue: Queued[] = [];
let scheduled = false;

/** Commits everything queued in one transaction; every write of it resolves or fails together. */
function commit(): void {
  scheduled = false;
  const batch = queue;
  queue = [];
  if (batch.length === 0) return;
  try {
    engine.write(batch.map((q) => q.write));
  } catch (err) {
    for (const q of batch) q.reject(err);
    return;
  }
  for (const q of batch) q.resolve();
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
    case 'forgetJobs':
      engine.forgetJobs(request.ids);
      return undefined;
    case 'trimAudit':
      return engine.trimAudit(request.at);
    case 'close':
      engine.close();
      return undefined;
  }
}

/**
 * One request. Writes (the ones a turn of the service's event loop made, sent together) wait
 * for the transaction that commits them with the others queued here.
 */
export default async function handle(request: WriterRequest): Promise<WriterReply> {
  if (request.op === 'write') {
    await Promise.all(
      request.writes.map(
        (write) =>
          new Promise<void>((resolve, reject) => {
            queue.push({ write, resolve, reject });
            if (!scheduled) {
              scheduled = true;
              setImmediate(commit);
            }
          })
      )
    );
    return { value: undefined, transactions: engine.transactions };
  }
  commit();
  return { value: run(request), transactions: engine.transactions };
}
