/**
 * What this process holds of the store's log: the state, the last sequence number it applied,
 * and per VM (and for the quirk list) the last change applied here. The commits advance it; a
 * restore swaps it whole.
 */
import type { CoherencyState } from '../domain/index.js';

export class Ledger {
  state: CoherencyState;
  /** The last change applied (its sequence number). */
  seq = 0;
  /**
   * Per VM (and for the quirk list, QUIRKS_EFFECT), the sequence number of the last change to it
   * applied here: with a shared store, what this replica asks the others' changes after.
   */
  known = new Map<string, number>();

  constructor(state: CoherencyState) {
    this.state = state;
  }

  /** A change `seq` was applied (a shared store's numbers may arrive out of order across replicas). */
  advance(seq: number): void {
    if (seq > this.seq) this.seq = seq;
  }

  /** Takes a restored state and what it was rebuilt from. */
  reset(state: CoherencyState, seq: number, known: Map<string, number>): void {
    this.state = state;
    this.seq = seq;
    this.known = known;
  }
}
