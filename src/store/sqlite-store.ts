/**
 * The embedded default store: SQLite under DATA_DIR, in WAL mode with synchronous=FULL, owned by
 * one worker thread (sqlite-writer.ts) so that no commit, fsync or read of the store runs on the
 * event loop. Appends and snapshots made close together share one transaction (group commit);
 * each resolves only once its transaction committed, so an answer sent after it survives a
 * crash. The schema is checked and migrated here, once, before the worker starts, so a data
 * file this service cannot use stops the start with a clear message.
 */
import { Worker } from 'node:worker_threads';
import { workerEntry } from '../worker-file.js';
import { SqliteEngine, type AuditPruned } from './sqlite-engine.js';
import { numbersOf, packWrites, type WriteOp } from './sqlite/packed-writes.js';
import type { WriterMessage, WriterReply, WriterRequest } from './sqlite-writer.js';
import {
  AUDIT_PRUNE_TO,
  StoreUnavailableError,
  type AuditEntry,
  type AuditSize,
  type AuditQuery,
  type LegacyCommand,
  type LoadedJob,
  type LoadedState,
  type StateStore,
  type StoredChange,
  type StoredJob,
  type VmSnapshot
} from './state-store.js';

export class SqliteStore implements StateStore {
  readonly kind = 'sqlite' as const;
  readonly path: string;
  readonly #dataDir: string;
  #worker: Worker | null = null;
  /** Requests not answered yet, and when each was handed to the thread (performance.now()). */
  readonly #pending = new Map<number, { resolve(value: unknown): void; reject(err: Error): void; at: number }>();
  #nextId = 0;
  #closed = false;
  /** Transactions committed, for tests of group commit. */
  transactions = 0;

  constructor(dataDir: string) {
    // Migrates the schema (or refuses a newer one) before anything else.
    const engine = new SqliteEngine(dataDir);
    this.path = engine.path;
    engine.close();
    this.#dataDir = dataDir;
  }

  /**
   * The thread that owns the connection, started on first use. A thread that dies fails what it
   * had not answered (the service then fails closed until it has reloaded) and is replaced on
   * the next request.
   */
  #thread(): Worker {
    if (this.#worker !== null) return this.#worker;
    const entry = workerEntry(import.meta.url, 'sqlite-writer');
    const worker = new Worker(entry.script, { eval: entry.eval, workerData: { dataDir: this.#dataDir } });
    const settle = (id: number, error: string | undefined, value: unknown): void => {
      const waiting = this.#pending.get(id);
      if (waiting === undefined) return;
      this.#pending.delete(id);
      if (error === undefined) waiting.resolve(value);
      else waiting.reject(new Error(error));
    };
    worker.on('message', (reply: WriterReply) => {
      if ('ids' in reply) {
        this.transactions = reply.transactions;
        // One group commit: timed from the hand-off of its first write (the oldest) to its answer.
        const first = this.#pending.get(reply.ids[0] as number);
        if (reply.error === undefined && first !== undefined) this.#committed(performance.now() - first.at);
        for (const id of reply.ids) settle(id, reply.error, undefined);
      } else if ('error' in reply) {
        settle(reply.id, reply.error, undefined);
      } else {
        this.transactions = reply.transactions;
        settle(reply.id, undefined, reply.value);
      }
      // An idle thread does not keep the process alive (a busy one does, until it answers).
      if (this.#pending.size === 0) worker.unref();
    });
    const lost = (why: string): void => {
      if (this.#worker !== worker) return;
      this.#worker = null;
      const err = new Error(why);
      for (const waiting of this.#pending.values()) waiting.reject(err);
      this.#pending.clear();
    };
    worker.on('error', (err) => lost(`the store's writer thread failed: ${err.message}`));
    worker.on('exit', (code) => lost(`the store's writer thread exited (${code})`));
    this.#worker = worker;
    return worker;
  }

  async #call<T>(request: WriterRequest, transfer: readonly ArrayBuffer[] = []): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError('the store is closed');
    try {
      return (await new Promise<unknown>((resolve, reject) => {
        const id = ++this.#nextId;
        this.#pending.set(id, { resolve, reject, at: performance.now() });
        const thread = this.#thread();
        if (this.#pending.size === 1) thread.ref();
        thread.postMessage({ id, request } satisfies WriterMessage, transfer);
      })) as T;
    } catch (err) {
      throw new StoreUnavailableError(`the store could not complete: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  load(): Promise<LoadedState> {
    return this.#call({ op: 'load' });
  }

  legacy(): Promise<LegacyCommand[] | null> {
    return this.#call({ op: 'legacy' });
  }

  migrated(snapshots: readonly VmSnapshot[], quirks: string, seq: number): Promise<void> {
    return this.#call({ op: 'migrated', snapshots, quirks, seq });
  }

  append(changes: readonly StoredChange[]): Promise<void> {
    return this.#write({ kind: 'append', changes });
  }

  snapshot(snapshot: VmSnapshot): Promise<void> {
    return this.#write({ kind: 'snapshot', snapshot });
  }

  probe(): Promise<void> {
    return this.#write({ kind: 'probe', at: Date.now() });
  }

  /** Lifts the commit fence a failed write put up (the service has reloaded, or is about to). */
  unfence(): Promise<void> {
    return this.#call({ op: 'unfence' });
  }

  #writes: WriteOp[] = [];
  #waiting: { resolve(): void; reject(err: Error): void }[] = [];
  /** Numbers the queued writes carry (pin operations, job ranges, pinned ranges). */
  #numbers = 0;
  /** Resolves once the queued writes have been handed to the writer thread; null: none queued. */
  #sending: Promise<void> | null = null;
  /** The last batch of writes sent, settled or not. */
  #sent: Promise<void> = Promise.resolve();

  /**
   * Writes made in one turn of the event loop travel to the writer thread as one message (and
   * commit in one transaction), in the order they were made; each resolves once committed. They
   * are packed after the turn's I/O (setImmediate); writes carrying many numbers (a replay of a
   * large VM) are packed one turn later still, so that a request waiting meanwhile is not held
   * up by the decision and the packing together.
   */
  #write(op: WriteOp): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#writes.push(op);
      this.#waiting.push({ resolve, reject });
      this.#numbers += numbersOf(op);
      if (this.#sending !== null) return;
      this.#sending = new Promise<void>((sent) => {
        const send = (): void => {
          this.#send();
          sent();
        };
        setImmediate(() => (this.#numbers >= LARGE_WRITE ? setImmediate(send) : send()));
      });
    });
  }

  /** Packs the queued writes and hands them to the writer thread as one message. */
  #send(): void {
    const writes = this.#writes;
    const waiting = this.#waiting;
    this.#writes = [];
    this.#waiting = [];
    this.#numbers = 0;
    this.#sending = null;
    let sent: Promise<void>;
    try {
      // Packed here, once per turn: one message of strings and numbers, its numbers moved.
      const packed = packWrites(writes);
      sent = this.#call({ op: 'write', writes: packed }, [packed.floats.buffer as ArrayBuffer]);
    } catch (err) {
      sent = Promise.reject(err instanceof StoreUnavailableError ? err : new StoreUnavailableError('the store could not take the writes', { cause: err }));
    }
    this.#sent = sent.then(
      () => {
        for (const w of waiting) w.resolve();
      },
      (err: unknown) => {
        for (const w of waiting) w.reject(err as Error);
        // The writer refuses every write from now on (the commit fence): whoever holds the state
        // must hear of it, even when the write was one nobody waits for (a snapshot, a record).
        for (const listener of this.#fenceListeners) listener(err as Error);
      }
    );
  }

  readonly #fenceListeners = new Set<(err: Error) => void>();
  readonly #commitListeners = new Set<(seconds: number) => void>();

  onCommit(listener: (seconds: number) => void): void {
    this.#commitListeners.add(listener);
  }

  #committed(ms: number): void {
    for (const listener of this.#commitListeners) listener(ms / 1000);
  }

  /** Calls `listener` whenever a write fails (the store then refuses writes until `unfence`). */
  onFence(listener: (err: Error) => void): void {
    this.#fenceListeners.add(listener);
  }

  audit(query: AuditQuery): Promise<AuditEntry[]> {
    return this.#call({ op: 'audit', query });
  }

  meta(key: string, initial: string): Promise<string> {
    return this.#call({ op: 'meta', key, initial });
  }

  /** Job records travel with the writes of their turn (one message, one transaction). */
  saveJob(job: StoredJob): Promise<void> {
    return this.#write({ kind: 'job', job });
  }

  loadJobs(): Promise<LoadedJob[]> {
    return this.#call({ op: 'loadJobs' });
  }

  /** Forgotten jobs go with the writes of their turn too. */
  forgetJobs(ids: readonly string[]): Promise<void> {
    return this.#write({ kind: 'forget', ids });
  }

  trimAudit(at: number): Promise<number> {
    return this.#call({ op: 'trimAudit', at });
  }

  /**
   * Runs in the writer thread, a chunk of records per request: writes queued meanwhile commit
   * between chunks, and a failure (its own transaction) leaves the commit fence down.
   */
  async pruneAudit(budgetBytes: number): Promise<AuditSize> {
    const goal = budgetBytes * AUDIT_PRUNE_TO;
    let size = await this.#call<AuditPruned>({ op: 'pruneAudit', above: budgetBytes, goal });
    let removed = size.removed;
    let removedThrough = size.removedThrough;
    while (size.more) {
      // Removing: on to the goal. Still counting (the first check): as if not begun.
      const counting = size.removed === 0;
      size = await this.#call<AuditPruned>({ op: 'pruneAudit', above: counting ? budgetBytes : goal, goal });
      removed += size.removed;
      removedThrough = Math.max(removedThrough, size.removedThrough);
    }
    return { auditBytes: size.auditBytes, storeBytes: size.storeBytes, removed, removedThrough };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Writes made before the close are sent and committed first.
    await this.#sending;
    await this.#sent;
    // Everything queued is committed before the connection closes.
    await this.#call({ op: 'close' }).catch(() => undefined);
    this.#closed = true;
    await this.#worker?.terminate();
    this.#worker = null;
  }
}

/** Writes carrying at least this many numbers (2 MiB) are packed on a turn of their own. */
const LARGE_WRITE = 262_144;
