/**
 * PostgreSQL, for several replicas serving the same VMs. The store keeps decided state as the
 * embedded store does (state-store.ts): per VM a snapshot and the effects after it. Changes are
 * serialised per VM (postgres/change-writer.ts): two replicas changing one VM at once take turns,
 * and changes to different VMs do not wait for each other. A snapshot drops its VM's effects up
 * to it: a replica that had not read them starts the VM from the snapshot.
 *
 * Replicas follow each other through notifications (postgres/change-listener.ts), which name the
 * VMs changed, and the events each publishes for the others' subscribers (postgres/event-log.ts),
 * read for the VMs a replica serves. Every failure of the
 * database reaches the service as StoreUnavailableError (postgres/guarded.ts), on which it fails
 * closed.
 */
import { AuditTrail } from './postgres/audit-trail.js';
import { ChangeWriter } from './postgres/change-writer.js';
import { listenForChanges } from './postgres/change-listener.js';
import { Database } from './postgres/database.js';
import { EventLog, type EventPage } from './postgres/event-log.js';
import { guarded } from './postgres/guarded.js';
import { JobTables } from './postgres/job-tables.js';
import { StateTables } from './postgres/state-tables.js';
import type {
  AuditEntry,
  AuditQuery,
  AuditSize,
  EventCursor,
  Known,
  LegacyCommand,
  LoadedJob,
  LoadedState,
  Missed,
  SharedStateStore,
  StoredChange,
  StoredEvent,
  StoredJob,
  VmSnapshot,
  WriteScope
} from './state-store.js';

export { advisoryLock } from './postgres/advisory-locks.js';
export { MIGRATIONS } from './postgres/migrations.js';

export interface PostgresStoreOptions {
  readonly connectionString: string;
  /** Schema holding the tables; created when missing. */
  readonly schema?: string;
  /** Events kept for the other replicas (default 65,536). */
  readonly keepEvents?: number;
}

export class PostgresStore implements SharedStateStore {
  readonly kind = 'postgres' as const;
  readonly #db: Database;
  readonly #state: StateTables;
  readonly #events: EventLog;
  readonly #changes: ChangeWriter;
  readonly #jobs: JobTables;
  readonly #audit: AuditTrail;
  readonly #commitListeners = new Set<(seconds: number) => void>();

  constructor(options: PostgresStoreOptions) {
    this.#db = new Database(options.connectionString, options.schema ?? 'coherency');
    this.#state = new StateTables(this.#db);
    this.#events = new EventLog(this.#db, options.keepEvents);
    this.#changes = new ChangeWriter(this.#db, this.#events, (seconds) => {
      for (const listener of this.#commitListeners) listener(seconds);
    });
    this.#jobs = new JobTables(this.#db);
    this.#audit = new AuditTrail(this.#db);
  }

  load(): Promise<LoadedState> {
    return guarded(() => this.#state.load());
  }

  legacy(): Promise<LegacyCommand[] | null> {
    return guarded(() => this.#state.legacy());
  }

  migrated(snapshots: readonly VmSnapshot[], quirks: string, seq: number): Promise<void> {
    return guarded(() => this.#state.migrated(snapshots, quirks, seq));
  }

  since(vmIds: readonly string[] | null, known: Known): Promise<Missed> {
    return guarded(() => this.#state.since(vmIds, known));
  }

  snapshot(snapshot: VmSnapshot): Promise<void> {
    return guarded(() => this.#state.snapshot(snapshot));
  }

  probe(): Promise<void> {
    return guarded(() => this.#state.probe());
  }

  meta(key: string, initial: string): Promise<string> {
    return guarded(() => this.#state.meta(key, initial));
  }

  append(changes: readonly StoredChange[]): Promise<void> {
    return guarded(() => this.#changes.append(changes));
  }

  write(scope: WriteScope, known: Known, seqs: number, decide: (missed: Missed, seqs: readonly number[]) => readonly StoredChange[]): Promise<void> {
    return guarded(() => this.#changes.write(scope, known, seqs, decide));
  }

  /** Change transactions (append, write) are timed; job records, snapshots and events are not changes. */
  onCommit(listener: (seconds: number) => void): void {
    this.#commitListeners.add(listener);
  }

  publish(event: StoredEvent): Promise<void> {
    return guarded(() => this.#events.publish(event));
  }

  eventsAfter(after: EventCursor | null, vmIds: readonly string[] | null = null): Promise<EventPage> {
    return guarded(() => this.#events.eventsAfter(after, vmIds));
  }

  watch(onChange: (vmIds: readonly string[] | null) => void): () => void {
    return listenForChanges({ connectionString: this.#db.connectionString, schema: this.#db.schema, origin: this.#events.origin }, onChange);
  }

  saveJob(job: StoredJob): Promise<void> {
    return guarded(() => this.#jobs.save(job));
  }

  forgetJobs(ids: readonly string[]): Promise<void> {
    return guarded(() => this.#jobs.forget(ids));
  }

  jobVm(id: string): Promise<string | null> {
    return guarded(() => this.#jobs.jobVm(id));
  }

  jobRecords(ids: readonly string[]): Promise<{ readonly id: string; readonly body: string }[]> {
    return guarded(() => this.#jobs.jobRecords(ids));
  }

  loadJobs(): Promise<LoadedJob[]> {
    return guarded(() => this.#jobs.load());
  }

  audit(query: AuditQuery): Promise<AuditEntry[]> {
    return guarded(() => this.#audit.audit(query));
  }

  trimAudit(at: number): Promise<number> {
    return guarded(() => this.#audit.trim(at));
  }

  pruneAudit(budgetBytes: number): Promise<AuditSize> {
    return guarded(() => this.#audit.prune(budgetBytes));
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}
