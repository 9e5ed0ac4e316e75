/**
 * The flushes a VMM is told to perform, in order: each is logged with its pages and performed on
 * the host's memory, except the one a test asks to skip (by index), to show the model notices.
 */
import type { HostMemory } from './host-memory.js';
import { totalPages, type Range } from './ranges.js';

export class FlushLog {
  /** Pages of every demanded flush, in order, the skipped one included. */
  readonly flushes: number[] = [];
  readonly #memory: HostMemory;
  readonly #drop: number;

  /** `drop`: the index of the demanded flush to skip (none by default). */
  constructor(memory: HostMemory, drop = -1) {
    this.#memory = memory;
    this.#drop = drop;
  }

  /** Pages flushed in all, as demanded. */
  get pages(): number {
    return this.flushes.reduce((a, b) => a + b, 0);
  }

  /** Performs a demanded flush of `ranges` (`pages` pages as the answer counts them); false: the one skipped. */
  perform(ranges: readonly Range[], pages = totalPages(ranges)): boolean {
    const index = this.flushes.length;
    this.flushes.push(pages);
    if (index === this.#drop) return false;
    this.#memory.flush(ranges);
    return true;
  }
}
