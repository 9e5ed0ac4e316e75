/**
 * Changes decided and being committed. A read waits for them to settle (kept or refused): it
 * then shows only what the store holds, since a change decided in memory but still being
 * committed could yet be refused.
 */
export class InFlight {
  readonly #commits = new Set<Promise<unknown>>();

  /** Tracks `commit` until it settles; returns it. */
  track<T>(commit: Promise<T>): Promise<T> {
    this.#commits.add(commit);
    const done = (): void => {
      this.#commits.delete(commit);
    };
    commit.then(done, done);
    return commit;
  }

  /** Resolves once every change decided before it has been kept or refused. */
  async settled(): Promise<void> {
    if (this.#commits.size > 0) await Promise.allSettled([...this.#commits]);
  }
}
