/**
 * Host physical pages as the models hand them out: RAM pages (released ones reused first when
 * asked, so a leak shows another owner's data) and MMIO pages (never reused).
 */
const RAM_BASE = 0x1000;
const MMIO_BASE = 0x10_0000;

export class HostPages {
  readonly #reuse: boolean;
  #free: number[] = [];
  #nextRam = RAM_BASE;
  #nextMmio = MMIO_BASE;

  constructor(reuse = true) {
    this.#reuse = reuse;
  }

  /** `pages` contiguous RAM pages: the lowest run of released ones, or fresh ones. */
  ram(pages: number): number {
    if (this.#reuse && this.#free.length >= pages) {
      const free = [...new Set(this.#free)].sort((x, y) => x - y);
      for (let i = 0; i + pages <= free.length; i++) {
        const start = free[i] as number;
        if ((free[i + pages - 1] as number) - start === pages - 1) {
          this.#free = free.filter((p) => p < start || p >= start + pages);
          return start;
        }
      }
    }
    const start = this.#nextRam;
    this.#nextRam += pages;
    return start;
  }

  mmio(pages: number): number {
    const start = this.#nextMmio;
    this.#nextMmio += pages;
    return start;
  }

  /** A RAM page goes back to the host. */
  release(page: number): void {
    this.#free.push(page);
  }

  /** A RAM page handed out so far, chosen by `n` (for evictions). */
  anyRam(n: number): number {
    return RAM_BASE + (n % Math.max(1, this.#nextRam - RAM_BASE));
  }
}
