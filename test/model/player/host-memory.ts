/**
 * The host's memory as the hardware has it, whatever the service believes: pages handed to
 * guests and taken back (HostPages), what the CPU caches and DRAM hold for each page
 * (CoherencyModel), and which pages the adversary has cached clean and overwritten with No-Snoop
 * since their last flush.
 *
 * - The host hands a RAM page over zeroed with ordinary cached stores: a dirty line in the cache,
 *   the previous owner's data still in DRAM, until a flush writes the line back.
 * - A flush (CLFLUSHOPT, DC CIVAC) writes a dirty line back and drops the line; it is also what
 *   lets the adversary overwrite the page again, since no line is left to go stale.
 * - A page that goes back to the host must have no clean line over other data in DRAM.
 * - A device read with No-Snoop goes straight to DRAM: another owner's data there is a leak.
 */
import { CoherencyModel } from '../coherency-model.js';
import { HostPages } from './host-pages.js';
import type { Range } from './ranges.js';

export class HostMemory {
  readonly model = new CoherencyModel();
  readonly #pages: HostPages;
  /** Pages cached clean and overwritten with No-Snoop since their last flush. */
  readonly #overwritten = new Set<number>();

  constructor(pages: HostPages = new HostPages()) {
    this.#pages = pages;
  }

  /** `pages` contiguous RAM pages handed to `owner`, zeroed through the cache. */
  handOut(pages: number, owner: string): number {
    const hpa = this.#pages.ram(pages);
    for (let p = hpa; p < hpa + pages; p++) this.model.hostZero(p, owner);
    return hpa;
  }

  /** `pages` MMIO pages (a BAR): no cache line to worry about, never handed out again. */
  mmio(pages: number): number {
    return this.#pages.mmio(pages);
  }

  /** Pages handed out for a mapping that never happened (the service refused the pin): back to the host unused. */
  unused(range: Range): void {
    for (let p = range.hpa; p < range.hpa + range.pages; p++) this.#pages.release(p);
  }

  /** Flushes every page of `ranges`. */
  flush(ranges: readonly Range[]): void {
    for (const r of ranges) {
      for (let p = r.hpa; p < r.hpa + r.pages; p++) {
        this.model.flush(p);
        this.#overwritten.delete(p);
      }
    }
  }

  /**
   * A range goes back to the host once unmapped (and flushed, if it was to be): returns the
   * pages found with a stale line. MMIO is not the host's to reuse and is not checked.
   */
  release(range: Range & { readonly mmio?: boolean }): number[] {
    const stale: number[] = [];
    if (range.mmio === true) return stale;
    for (let p = range.hpa; p < range.hpa + range.pages; p++) {
      const before = this.model.violations.length;
      this.model.release(p);
      if (this.model.violations.length > before) stale.push(p);
      this.#pages.release(p);
      this.#overwritten.delete(p);
    }
    return stale;
  }

  /** A device of `reader`'s reads `page` with No-Snoop; returns whether it read another owner's data (a leak). */
  read(page: number, reader: string): boolean {
    const before = this.model.violations.length;
    this.model.dmaRead(page, reader, true);
    return this.model.violations.length > before;
  }

  /**
   * The adversary's write: the guest caches `page` clean, then a device of `owner`'s overwrites
   * DRAM under that line with No-Snoop. Only a flush before the page goes back removes the line.
   */
  overwrite(page: number, owner: string): void {
    this.model.cpuRead(page);
    this.model.dmaWrite(page, owner, true);
    this.#overwritten.add(page);
  }

  /** `overwrite`, unless the page was overwritten since its last flush; returns whether it was now. */
  overwriteOnce(page: number, owner: string): boolean {
    if (this.#overwritten.has(page)) return false;
    this.overwrite(page, owner);
    return true;
  }

  /**
   * A device of `owner`'s that can put No-Snoop on the wire reaches `ranges`: it reads every page
   * with No-Snoop, and overwrites each page the first time since the page's last flush. Returns
   * the pages whose read leaked, and how many pages were overwritten now.
   */
  reach(ranges: Iterable<Range>, owner: string): { leaked: number[]; overwritten: number } {
    const leaked: number[] = [];
    let overwritten = 0;
    for (const r of ranges) {
      for (let p = r.hpa; p < r.hpa + r.pages; p++) {
        if (this.read(p, owner)) leaked.push(p);
        if (this.overwriteOnce(p, owner)) overwritten++;
      }
    }
    return { leaked, overwritten };
  }

  /** A device of `owner`'s DMA to `page`; with No-Snoop it bypasses the CPU caches. */
  dma(page: number, owner: string, write: boolean, noSnoop: boolean): void {
    if (write) this.model.dmaWrite(page, owner, noSnoop);
    else this.model.dmaRead(page, owner, noSnoop);
  }

  /** A guest CPU load or store. */
  cpu(page: number, owner: string, write: boolean): void {
    if (write) this.model.cpuWrite(page, owner);
    else this.model.cpuRead(page);
  }

  /** The cache evicts the line of a RAM page handed out so far, chosen by `n`. */
  evict(n: number): void {
    this.model.evict(this.#pages.anyRam(n));
  }
}
