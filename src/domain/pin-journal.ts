/**
 * A PinMap's journal: what the map did, as its effects. The store keeps these instead of the
 * command that caused them, so a restart applies what was decided and decides nothing again.
 */

/**
 * Operation codes of a PinJournal, and its stride: [op, start, pages, hpa, attr]. PIN_RECODE
 * replaces one attribute word by another on every range, as one walk did: the walk's k
 * replacements are k consecutive operations [PIN_RECODE, k - i, 0, from, to] (i = 0 .. k - 1),
 * applied together, so a replay of a whole VM is a few numbers rather than five a range.
 */
export const PIN_INSERT = 1;
export const PIN_REMOVE = 2;
export const PIN_ATTR = 3;
export const PIN_RECODE = 4;
export const PIN_OP_STRIDE = 5;
/** Journals up to this many numbers are copied out by `take` and their buffer kept. */
const JOURNAL_KEPT = 4096 * PIN_OP_STRIDE;

/** What a PinMap did: inserts, removes and attribute changes, in order, five numbers each. */
export class PinJournal {
  #d = new Float64Array(16 * PIN_OP_STRIDE);
  #n = 0;

  /** Operations recorded. */
  get length(): number {
    return this.#n / PIN_OP_STRIDE;
  }

  record(op: number, start: number, pages: number, hpa: number, attr: number): void {
    if (this.#n + PIN_OP_STRIDE > this.#d.length) {
      const grown = new Float64Array(this.#d.length * 2);
      grown.set(this.#d);
      this.#d = grown;
    }
    const d = this.#d;
    d[this.#n++] = op;
    d[this.#n++] = start;
    d[this.#n++] = pages;
    d[this.#n++] = hpa;
    d[this.#n++] = attr;
  }

  /**
   * The operations so far, and an empty journal. A journal at least half full hands its buffer
   * over instead of copying it (a replay of a large VM records an operation per range).
   */
  take(): Float64Array {
    const n = this.#n;
    this.#n = 0;
    if (n < JOURNAL_KEPT || 2 * n < this.#d.length) return this.#d.slice(0, n);
    const ops = this.#d.subarray(0, n);
    this.#d = new Float64Array(16 * PIN_OP_STRIDE);
    return ops;
  }
}
