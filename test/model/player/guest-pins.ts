/**
 * What a VMM has pinned for its guests and mapped in the IOMMU, as the host really has it: each
 * range from the moment its mapping takes effect until it is unmapped (its pages then go back to
 * the host once any flush due after the unmap is done).
 */
import { pick, type Range } from './ranges.js';

export interface PinnedRange extends Range {
  /** The VM it is pinned for (an index into the model's VM ids). */
  readonly vm: number;
  /** The guest page it is mapped at. */
  readonly iova: number;
  /** A device BAR: no RAM behind it, never reached by the adversary. */
  readonly mmio: boolean;
}

/** How an unpin event names its range: one pinned range exactly, it and the next one, or pages at random (usually no whole range). */
export type UnpinHow = 'exact' | 'span' | 'random';

export class GuestPins<P extends PinnedRange> {
  #pins: P[] = [];

  get all(): readonly P[] {
    return this.#pins;
  }

  add(pin: P): void {
    this.#pins.push(pin);
  }

  /** Unmaps the ranges `gone` selects; returns them, in the order they were mapped. */
  unmap(gone: (pin: P) => boolean): P[] {
    const out: P[] = [];
    this.#pins = this.#pins.filter((p) => {
      if (!gone(p)) return true;
      out.push(p);
      return false;
    });
    return out;
  }

  /** The range an unpin event of VM `vm` asks for, `pick` choosing among its ranges by guest address. */
  unpinRange(vm: number, n: number, how: UnpinHow): { iova: number; pages: number } {
    const mine = this.#pins.filter((p) => p.vm === vm).sort((a, b) => a.iova - b.iova);
    const a = pick(mine, n);
    if (how === 'random' || a === undefined) return { iova: n % 100, pages: 1 + (n % 3) };
    const b = mine[mine.indexOf(a) + 1];
    return { iova: a.iova, pages: how === 'span' && b !== undefined ? b.iova + b.pages - a.iova : a.pages };
  }

  /** The RAM page of VM `vm` a guest CPU access picks (`n` picks the range, `off` the page in it). */
  guestPage(vm: number, n: number, off: number): number | undefined {
    const pin = pick(
      this.#pins.filter((p) => p.vm === vm && !p.mmio),
      n
    );
    return pin === undefined ? undefined : pin.hpa + (off % pin.pages);
  }
}
