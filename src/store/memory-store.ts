/**
 * Keeps commands in memory: for tests, or `STORE=memory` when losing state on restart is fine.
 */
import type { AuditQuery, StateStore, StoredCommand, StoredJob } from './state-store.js';
import { decodeCommand, encodeCommand } from './codec.js';

export class MemoryStore implements StateStore {
  readonly kind = 'memory' as const;
  // Encoded, like a real store, so a command that does not survive the codec fails here too.
  readonly #log: { seq: number; at: number; body: string; actor?: string; rules?: readonly string[] }[] = [];

  load(): Promise<StoredCommand[]> {
    return Promise.resolve(this.#log.map((r) => ({ seq: r.seq, at: r.at, command: decodeCommand(r.body) })));
  }

  audit(query: AuditQuery): Promise<StoredCommand[]> {
    const out: StoredCommand[] = [];
    for (const r of this.#log) {
      if (out.length >= query.limit) break;
      if (r.seq <= (query.afterSeq ?? 0) || r.at < (query.since ?? 0)) continue;
      const command = decodeCommand(r.body);
      if (query.vmId !== undefined && (!('vmId' in command) || command.vmId !== query.vmId)) continue;
      out.push({ seq: r.seq, at: r.at, command, ...(r.actor === undefined ? {} : { actor: r.actor }), ...(r.rules === undefined ? {} : { rules: r.rules }) });
    }
    return Promise.resolve(out);
  }

  append(commands: readonly StoredCommand[]): Promise<void> {
    for (const c of commands) this.#log.push({ seq: c.seq, at: c.at, body: encodeCommand(c.command), ...(c.actor === undefined ? {} : { actor: c.actor }), ...(c.rules === undefined ? {} : { rules: c.rules }) });
    return Promise.resolve();
  }

  readonly #meta = new Map<string, string>();

  meta(key: string, initial: string): Promise<string> {
    if (!this.#meta.has(key)) this.#meta.set(key, initial);
    return Promise.resolve(this.#meta.get(key) as string);
  }

  readonly #jobs = new Map<string, StoredJob>();

  saveJob(job: StoredJob): Promise<void> {
    this.#jobs.set(job.id, { ...job, pairs: job.pairs === null ? null : job.pairs.slice() });
    return Promise.resolve();
  }

  loadJobs(): Promise<StoredJob[]> {
    return Promise.resolve([...this.#jobs.values()]);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
