/**
 * A page-granular model of what CPU caches and DRAM hold, and of DMA with and without the PCIe
 * No-Snoop attribute. One cache line stands for a whole 4 KiB page: the hazards are per page.
 *
 * The two invariants are the two hazards of SPEC section 1:
 * - leak: a no-snoop DMA read returns data of another owner than the page's current one (the
 *   host zeroed the page through the cache; DRAM still holds the previous owner's data);
 * - stale: a page goes back to the host while a clean cache line disagrees with DRAM (a device
 *   wrote DRAM with no-snoop under a clean line; later readers may see either value).
 */

export interface Value {
  /** Whose data this is: a VM id, or 'host' for the host's own. */
  readonly owner: string;
  /** Unique per write, so two values compare equal only if they are the same write. */
  readonly tag: string;
}

interface Line {
  value: Value;
  dirty: boolean;
}

export interface Violation {
  readonly kind: 'leak' | 'stale';
  readonly page: number;
  readonly detail: string;
}

export class CoherencyModel {
  readonly #dram = new Map<number, Value>();
  readonly #cache = new Map<number, Line>();
  readonly violations: Violation[] = [];
  #gen = 0;

  #fresh(owner: string, what: string): Value {
    return { owner, tag: `${what}:${owner}:${++this.#gen}` };
  }

  dram(page: number): Value {
    return this.#dram.get(page) ?? { owner: 'host', tag: `boot:${page}` };
  }

  /** The host hands `page` to `owner`, zeroing it with ordinary cached stores. */
  hostZero(page: number, owner: string): void {
    this.#cache.set(page, { value: this.#fresh(owner, 'zero'), dirty: true });
  }

  /** CLFLUSH(OPT) / DC CIVAC of the page: write back if dirty, then invalidate. */
  flush(page: number): void {
    const line = this.#cache.get(page);
    if (line === undefined) return;
    if (line.dirty) this.#dram.set(page, line.value);
    this.#cache.delete(page);
  }

  /** The cache evicts the line on its own: same effect as a flush. */
  evict(page: number): void {
    this.flush(page);
  }

  /** A CPU load: fills a clean line from DRAM on a miss. */
  cpuRead(page: number): Value {
    let line = this.#cache.get(page);
    if (line === undefined) {
      line = { value: this.dram(page), dirty: false };
      this.#cache.set(page, line);
    }
    return line.value;
  }

  /** A CPU store by `owner`: the line becomes dirty with a new value. */
  cpuWrite(page: number, owner: string): void {
    this.#cache.set(page, { value: this.#fresh(owner, 'cpu'), dirty: true });
  }

  /** A device read. Snooped reads see the cache; no-snoop reads go straight to DRAM. */
  dmaRead(page: number, reader: string, noSnoop: boolean): Value {
    const value = noSnoop ? this.dram(page) : (this.#cache.get(page)?.value ?? this.dram(page));
    if (noSnoop && value.owner !== reader) {
      this.violations.push({ kind: 'leak', page, detail: `${reader} read ${value.tag} with no-snoop` });
    }
    return value;
  }

  /** A device write. Snooped writes invalidate the line; no-snoop writes leave it as it was. */
  dmaWrite(page: number, writer: string, noSnoop: boolean): void {
    this.#dram.set(page, this.#fresh(writer, noSnoop ? 'ns-dma' : 'dma'));
    if (!noSnoop) this.#cache.delete(page);
  }

  /** The page goes back to the host: a clean line must agree with DRAM. */
  release(page: number): void {
    const line = this.#cache.get(page);
    if (line !== undefined && !line.dirty && line.value.tag !== this.dram(page).tag) {
      this.violations.push({ kind: 'stale', page, detail: `clean line ${line.value.tag} over DRAM ${this.dram(page).tag}` });
    }
  }
}
