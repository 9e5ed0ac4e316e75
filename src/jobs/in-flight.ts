/**
 * Work accepted and not finished yet (plans being made, records being kept): what `drain` waits
 * for, so that no accepted job is lost by a shutdown.
 */
export class InFlight {
  readonly #work = new Set<Promise<unknown>>();

  add(work: Promise<unknown>): void {
    this.#work.add(work);
  }

  delete(work: Promise<unknown>): void {
    this.#work.delete(work);
  }

  /** Resolves once nothing is in flight, work started meanwhile included. */
  async settled(): Promise<void> {
    while (this.#work.size > 0) await Promise.all([...this.#work]);
  }
}
