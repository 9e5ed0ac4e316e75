/** The commit a store calls for: replicated when the store is shared, embedded otherwise. */
import { isShared, type StateStore } from '../../store/state-store.js';
import type { Snapshots } from '../snapshots.js';
import type { Commit } from './commit.js';
import { EmbeddedCommit } from './embedded-commit.js';
import { ReplicatedCommit, type ReplicatedParts } from './replicated-commit.js';

export type { Commit } from './commit.js';

export interface CommitParts extends Omit<ReplicatedParts, 'store' | 'snapshots'> {
  /** Absent: the state lives in memory only. */
  readonly store: StateStore | undefined;
  /** Present with a store. */
  readonly snapshots: Snapshots | undefined;
}

export function commitFor(parts: CommitParts): Commit {
  const { store, snapshots } = parts;
  if (store !== undefined && snapshots !== undefined && isShared(store)) return new ReplicatedCommit({ ...parts, store, snapshots });
  return new EmbeddedCommit(store, parts.decider, parts.health, snapshots, parts.inFlight);
}
