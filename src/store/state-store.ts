/**
 * Where acknowledged changes live. The state is rebuilt at start by replaying every stored
 * command through the decision core, with the time each was applied at, so a restart loses
 * nothing that was acknowledged. Every implementation passes test/store/state-store.contract.ts.
 */
import type { Command } from '../domain/index.js';

export interface StoredCommand {
  /** Position in the log, from 1, without gaps. */
  readonly seq: number;
  /** The time the command was applied at (ms since the epoch); replays use it. */
  readonly at: number;
  readonly command: Command;
}

export interface StateStore {
  readonly kind: 'memory' | 'sqlite';
  /** Every stored command, in order. */
  load(): Promise<StoredCommand[]>;
  /** Appends durably: resolves only once the commands survive a crash. */
  append(commands: readonly StoredCommand[]): Promise<void>;
  close(): Promise<void>;
}

/** Raised when the store cannot take or give changes; the service then fails closed. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  readonly code = 'STORE_UNAVAILABLE';
}
