/**
 * A range-granular model of what the CPU caches hold over host memory, against which a replay
 * checks every decision. It tracks, per host page, one of three states:
 *
 * - clean: the cache agrees with DRAM (or holds nothing);
 * - dirty: the host zeroed the page through the cache when it handed it over; DRAM still holds
 *   the previous owner's data, so a no-snoop read would leak it (SPEC section 1, first hazard);
 * - stale: a device wrote DRAM with no-snoop under a clean line the guest had read; if the page
 *   goes back to the host like that, later readers may see either value (second hazard);
 * - written: the host's zeroes are still dirty in the cache, but a device has since written the
 *   guest's own data to DRAM, so a no-snoop read no longer leaks (the write-back will clobber
 *   the guest's data, its own problem, not a hazard between owners).
 *
 * A flush (CLFLUSHOPT / DC CIVAC) makes pages clean. Runs of dirty or stale pages are kept in a
 * PinMap keyed by host page, so a terabyte of 2 MiB pages costs one entry per range, not per page.
 */
import { PinMap } from '../domain/index.js';

const CLEAN = 0;
const DIRTY = 1;
const STALE = 2;
const WRITTEN = 3;

export class CacheModel {
  readonly #runs = new PinMap();

  /** Runs of non-clean pages (for tests and sizing). */
  get runs(): number {
    return this.#runs.size;
  }

  /** The host zeroes pages with ordinary cached stores as it hands them to a guest. */
  hostZero(hpa: number, pages: number): void {
    this.#assign(hpa, pages, DIRTY);
  }

  /** A flush of the range: dirty lines are written back, every line invalidated. */
  flush(hpa: number, pages: number): void {
    this.#assign(hpa, pages, CLEAN);
  }

  /** A no-snoop DMA read: returns the pages that would read another owner's data. */
  noSnoopRead(hpa: number, pages: number): number {
    return this.#count(hpa, pages, DIRTY);
  }

  /**
   * A no-snoop DMA write under lines the guest may have read: clean pages become stale, dirty
   * ones written (DRAM now holds the owner's data).
   */
  noSnoopWrite(hpa: number, pages: number): void {
    const end = hpa + pages;
    const gaps: number[] = [];
    const dirty: number[] = [];
    let at = hpa;
    this.#runs.forEachOverlap(hpa, end, (start, n, _h, state) => {
      if (start > at) gaps.push(at, start - at);
      if (state === DIRTY) {
        const lo = Math.max(start, hpa);
        dirty.push(lo, Math.min(start + n, end) - lo);
      }
      at = Math.max(at, start + n);
      return undefined;
    });
    if (at < end) gaps.push(at, end - at);
    for (let i = 0; i < gaps.length; i += 2) this.#runs.insert(gaps[i] as number, gaps[i + 1] as number, 0, STALE);
    for (let i = 0; i < dirty.length; i += 2) this.#assign(dirty[i] as number, dirty[i + 1] as number, WRITTEN);
  }

  /** A snooped DMA write: DRAM gets the data and the lines are invalidated. */
  snoopedWrite(hpa: number, pages: number): void {
    this.#assign(hpa, pages, CLEAN);
  }

  /**
   * The pages go back to the host: returns how many hold a stale clean line. The host owns
   * them afterwards; what its caches hold no longer concerns a guest.
   */
  release(hpa: number, pages: number): number {
    const stale = this.#count(hpa, pages, STALE);
    this.#assign(hpa, pages, CLEAN);
    return stale;
  }

  /** Pages of [hpa, hpa + pages) in `state`. */
  #count(hpa: number, pages: number, state: number): number {
    let n = 0;
    this.#runs.forEachOverlap(hpa, hpa + pages, (start, len, _h, s) => {
      if (s === state) n += Math.min(start + len, hpa + pages) - Math.max(start, hpa);
      return undefined;
    });
    return n;
  }

  /** Sets every page of [hpa, hpa + pages) to `state`, splitting runs at the edges. */
  #assign(hpa: number, pages: number, state: number): void {
    const end = hpa + pages;
    const hits: number[] = [];
    this.#runs.forEachOverlap(hpa, end, (start, n, _h, s) => {
      hits.push(start, n, s);
      return undefined;
    });
    for (let i = 0; i < hits.length; i += 3) {
      const start = hits[i] as number;
      const stop = start + (hits[i + 1] as number);
      const s = hits[i + 2] as number;
      this.#runs.remove(start);
      if (start < hpa) this.#runs.insert(start, hpa - start, 0, s);
      if (stop > end) this.#runs.insert(end, stop - end, 0, s);
    }
    if (state !== CLEAN) this.#runs.insert(hpa, pages, 0, state);
  }
}
