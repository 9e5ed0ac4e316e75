/**
 * The flush jobs a VMM knows of, kept as the README tells a VMM: each job with the ranges it was
 * told (its own answer's, or what the service lists for a job someone else caused) until it has
 * performed the job and the service has its acknowledgement. A job answered again after its
 * acknowledgement is outstanding again.
 */
import type { Range } from './ranges.js';

interface Told {
  /** Who holds the job: the VM (or the caller) it was told to. */
  readonly owner: number;
  readonly ranges: readonly Range[];
}

export class JobBook {
  readonly #told = new Map<string, Told>();
  readonly #done = new Set<string>();

  /** Told of job `id` carrying `ranges`: added to what it was told of the job before, or instead of it (`replace`: the service's list, read again). */
  tell(id: string, owner: number, ranges: readonly Range[], replace = false): void {
    const told = this.#told.get(id);
    if (told === undefined || replace) this.#told.set(id, { owner, ranges: [...ranges] });
    else this.#told.set(id, { owner: told.owner, ranges: [...told.ranges, ...ranges] });
    this.#done.delete(id);
  }

  /** Outstanding: told and not done. */
  has(id: string): boolean {
    return this.#told.has(id);
  }

  told(id: string): Told | undefined {
    return this.#told.get(id);
  }

  /** Outstanding jobs, in the order they were first told. */
  outstanding(): string[] {
    return [...this.#told.keys()];
  }

  /** Performed and acknowledged (or moot, its VM gone): forgotten, and done. */
  done(id: string): void {
    this.#told.delete(id);
    this.#done.add(id);
  }

  isDone(id: string): boolean {
    return this.#done.has(id);
  }

  /** Every outstanding job of `owner` is moot (its VM was deleted, and its VMM with it). */
  moot(owner: number): void {
    for (const [id, told] of this.#told) if (told.owner === owner) this.done(id);
  }
}
