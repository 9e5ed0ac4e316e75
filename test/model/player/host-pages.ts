/**
 * Host physical pages as the host hands them out: RAM pages (released ones reused first when
 * asked, so that a leak shows another owner's data) and MMIO pages (never reused).
 */
const RAM_BASE = 0x1000;
const MMIO_BASE = 0x10_0000;

export interface HostPagesOptions {
  /** Hand out released RAM pages again (default true), or always fresh ones. */
  readonly reuse?: boolean;
  /** The first RAM page (default 0x1000). */
  readonly ramBase?: number;
  /** Pages left unused after each fresh run, so that runs never touch (default 0). */
  readonly gap?: number;
}

export class HostPages {
  readonly #reuse: boolean;
  readonly #ramBase: number;
  readonly #gap: number;
  #free: number[] = [];
  #nextRam: number;
  #nextMmio = MMIO_BASE;

  constructor(options: HostPagesOptions = {}) {
    this.#reuse = options.reuse ?? true;
    this.#ramBase = options.ramBase ?? RAM_BASE;
    this.#gap = options.gap ?? 0;
    this.#nextRam = this.#ramBase;
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
    this.#nextRam += pages + this.#gap;
    return start;
  }

  mmio(pages: number): number {
    const start = this.#nextMmio;
    this.#nextMmio += pages;
    return start;
  }

  /** A RAM page goes back to the host. */
  release(page: number): void {
    if (this.#reuse) this.#free.push(page);
  }

  /** A RAM page handed out so far, chosen by `n` (for evictions). */
  anyRam(n: number): number {
    return this.#ramBase + (n % Math.max(1, this.#nextRam - this.#ramBase));
  }
}
