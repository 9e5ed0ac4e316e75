/**
 * Whether the state can be vouched for. After a store failure memory may hold a change that is
 * not durable: until the store takes a real write again and the state is rebuilt from it,
 * changes are refused, decisions fail closed and reads answer 503. Recovery is retried every
 * second, so the service recovers by itself when the store does.
 */
import { NotReadyError, StoreUnavailableError } from './errors.js';

/**
 * Told when the store fails (once per outage, however many writes it refuses meanwhile) and
 * when the state is vouched for again, with how long that took: the operator's log lines.
 */
export interface HealthObserver {
  down(err: Error): void;
  up(outageMs: number, err: Error): void;
}

export class Health {
  #failure: Error | null = null;
  #restored: boolean;
  #recovery: NodeJS.Timeout | null = null;
  readonly #recover: () => Promise<unknown>;
  readonly #observers: HealthObserver[] = [];
  /** When the current outage began (Date.now()), while there is one. */
  #downSince = 0;

  /** `restored`: whether there is nothing to restore (no store); `recover` reloads from the store. */
  constructor(restored: boolean, recover: () => Promise<unknown>) {
    this.#restored = restored;
    this.#recover = recover;
  }

  /** False while the state cannot be vouched for: decisions then fail closed. */
  get healthy(): boolean {
    return this.#failure === null && this.#restored;
  }

  /** Readiness: state rebuilt from the store, and the store has not failed since. */
  get ready(): { state: boolean; store: boolean } {
    return { state: this.#restored, store: this.#failure === null };
  }

  /** Whether the state was restored at least once. */
  get restored(): boolean {
    return this.#restored;
  }

  /** What made the state unsure, while it is. */
  get failure(): Error | null {
    return this.#failure;
  }

  /** Adds an observer of outages and recoveries. */
  observe(observer: HealthObserver): void {
    this.#observers.push(observer);
  }

  markRestored(): void {
    this.#restored = true;
  }

  /** The store refused a write (or could not be read): fail closed and start recovering. */
  fail(err: unknown): void {
    if (this.#failure === null) {
      const failure = err instanceof Error ? err : new Error(String(err));
      this.#failure = failure;
      this.#downSince = Date.now();
      for (const o of this.#observers) o.down(failure);
    }
    if (this.#recovery !== null) return;
    const attempt = (): void => {
      this.#recover().then(
        () => {
          const failure = this.#failure;
          this.#failure = null;
          this.#recovery = null;
          if (failure !== null) for (const o of this.#observers) o.up(Date.now() - this.#downSince, failure);
        },
        () => {
          this.#recovery = setTimeout(attempt, 1000).unref();
        }
      );
    };
    this.#recovery = setTimeout(attempt, 1000).unref();
  }

  /** Refuses a change while the state cannot be vouched for. */
  assertHealthy(): void {
    if (!this.healthy) throw new StoreUnavailableError('the state cannot be vouched for: the store failed or has not been loaded; refusing changes', { cause: this.#failure ?? undefined });
  }

  /**
   * Reads answer only what the store holds: while the state is being restored, 503 NOT_READY
   * (never a 404 for something the store may hold); after a store failure, until the state is
   * reloaded, 503 STORE_UNAVAILABLE (memory may hold a change that was refused).
   */
  readable(): void {
    this.restoring();
    if (this.#failure !== null) throw new StoreUnavailableError('a change could not be kept and the state is being reloaded from the store; retry shortly', { cause: this.#failure });
  }

  /** While the state (and the flush jobs) are being restored, nothing held can be answered for. */
  restoring(): void {
    if (!this.#restored) throw new NotReadyError('the state is being restored from the store; retry shortly');
  }

  stop(): void {
    if (this.#recovery !== null) clearTimeout(this.#recovery);
    this.#recovery = null;
  }
}
