/**
 * The embedded commit: this process is the only writer. A change is decided at once and kept
 * in the store (the SQLite writer thread); the answer waits until it is durable. Without a
 * store the state lives in memory only.
 */
import type { StateStore, StoredChange } from '../../store/state-store.js';
import type { Decided, Decider, PendingChange } from '../decide.js';
import { StoreUnavailableError } from '../errors.js';
import type { Health } from '../health.js';
import type { InFlight } from '../in-flight.js';
import type { Snapshots } from '../snapshots.js';
import type { Commit } from './commit.js';

export class EmbeddedCommit implements Commit {
  readonly #store: StateStore | undefined;
  readonly #decider: Decider;
  readonly #health: Health;
  readonly #snapshots: Snapshots | undefined;
  readonly #inFlight: InFlight;

  constructor(store: StateStore | undefined, decider: Decider, health: Health, snapshots: Snapshots | undefined, inFlight: InFlight) {
    this.#inFlight = inFlight;
    this.#store = store;
    this.#decider = decider;
    this.#health = health;
    this.#snapshots = snapshots;
  }

  async commit(change: PendingChange): Promise<Decided> {
    const d = this.#decider.decide(change, false);
    try {
      await this.#persist(d.change);
    } catch (err) {
      this.#decider.cancel(d);
      throw err;
    }
    this.#snapshots?.kept(d.change.effects);
    return d;
  }

  /** The answer waits for this: a change is acknowledged only once it is durable. */
  async #persist(stored: StoredChange): Promise<void> {
    if (this.#store === undefined) return;
    try {
      await this.#store.append([stored]);
    } catch (err) {
      // Memory is now ahead of the store: refuse changes until the state is rebuilt from it.
      this.#health.fail(err);
      throw err instanceof StoreUnavailableError ? err : new StoreUnavailableError('the store could not keep the change', { cause: err });
    }
  }

  /** One writer: what this process holds is all there is, once the changes being committed settle. */
  catchUp(): Promise<void> {
    return this.#inFlight.settled();
  }

  /** One writer: it holds every VM as it is. */
  serves(): boolean {
    return true;
  }

  catchUpAll(): Promise<void> {
    return this.#inFlight.settled();
  }

  learnJob(): Promise<void> {
    return Promise.resolve();
  }

  acknowledged(): Promise<void> {
    return Promise.resolve();
  }

  reloaded(): Promise<void> {
    return Promise.resolve();
  }

  follow(): void {}

  stop(): void {}
}
