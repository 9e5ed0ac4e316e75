/**
 * The embedded default store: SQLite under DATA_DIR, in WAL mode with synchronous=FULL, owned by
 * one worker thread (sqlite-writer.ts) so that no commit, fsync or read of the store runs on the
 * event loop. Appends and snapshots made close together share one transaction (group commit);
 * each resolves only once its transaction committed, so an answer sent after it survives a
 * crash. The schema is checked and migrated here, once, before the worker starts, so a data
 * file this service cannot use stops the start with a clear message.
 */
import { Piscina } from 'piscina';
import { workerFile } from '../worker-file.js';
import { SqliteEngine, type WriteOp } from './sqlite-engine.js';
import type { WriterReply, WriterRequest } from './sqlite-writer.js';
import {
  StoreUnavailableError,
  type AuditEntry,
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
  readonly #pool: Piscina;
  #closed = false;
  /** Transactions committed, for tests of group commit. */
  transactions = 0;

  constructor(dataDir: string) {
    // Migrates the schema (or refuses a newer one) before anything else.
    const engine = new SqliteEngine(dataDir);
    this.path = engine.path;
    engine.close();
    // One thread owns the connection; it takes every request at once so that writes arriving
    // together share a transaction. A thread that dies fails what it had not answered (the
    // service then fails closed until it has reloaded) and is replaced on the next request.
    this.#pool = new Piscina({
      ...workerFile(import.meta.url, 'sqlite-writer'),
      workerData: { dataDir },
      minThreads: 1,
      maxThreads: 1,
      concurrentTasksPerWorker: 1_000_000,
      idleTimeout: Number.POSITIVE_INFINITY,
      // The thread's own event loop runs the group commit (setImmediate): it must not sleep in
      // Atomics.wait between tasks, as piscina's default does.
      atomics: 'disabled'
    });
  }

  async #call<T>(request: WriterRequest): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError('the store is closed');
    let reply: WriterReply;
    try {
      reply = (await this.#pool.run(request)) as WriterReply;
    } catch (err) {
      throw new StoreUnavailableError(`the store could not complete: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    this.transactions = reply.transactions;
    return reply.value as T;
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

  #writes: WriteOp[] = [];
  #waiting: { resolve(): void; reject(err: Error): void }[] = [];
  #sending = false;
  /** The last batch of writes sent, settled or not. */
  #sent: Promise<void> = Promise.resolve();

  /**
   * Writes made in one turn of the event loop travel to the writer thread as one message (and
   * commit in one transaction), in the order they were made; each resolves once committed.
   */
  #write(op: WriteOp): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#writes.push(op);
      this.#waiting.push({ resolve, reject });
      if (this.#sending) return;
      this.#sending = true;
      setImmediate(() => {
        const writes = this.#writes;
        const waiting = this.#waiting;
        this.#writes = [];
        this.#waiting = [];
        this.#sending = false;
        this.#sent = this.#call({ op: 'write', writes }).then(
          () => {
            for (const w of waiting) w.resolve();
          },
          (err: unknown) => {
            for (const w of waiting) w.reject(err as Error);
          }
        );
      });
    });
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

  forgetJobs(ids: readonly string[]): Promise<void> {
    return this.#call({ op: 'forgetJobs', ids });
  }

  trimAudit(at: number): Promise<number> {
    return this.#call({ op: 'trimAudit', at });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Writes made before the close are sent and committed first.
    if (this.#sending) await new Promise((resolve) => setImmediate(resolve));
    await this.#sent;
    // Everything queued is committed before the connection closes.
    await this.#call({ op: 'close' }).catch(() => undefined);
    this.#closed = true;
    await this.#pool.close();
  }
}
