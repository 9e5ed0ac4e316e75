/**
 * How long settled jobs are remembered: at most `history` of them, none finished longer ago than
 * `maxAgeMs`, the oldest forgotten first, here and in the store. A forgotten job leaves a
 * tombstone (bounded) so that acknowledging it again still answers as before.
 */
import { isSettled, type FlushJob } from './flush-job.js';
import type { JobRegistry } from './job-registry.js';

/** Settled jobs remembered after they left the history, so that acking again still answers 200. */
const FORGOTTEN_KEPT = 16_384;

export interface JobRetentionOptions {
  readonly registry: JobRegistry;
  readonly history: number;
  readonly maxAgeMs: number;
  readonly clock: () => number;
  /** Called with the ids of forgotten jobs, so their records go too. */
  readonly onForget: (ids: readonly string[]) => void;
  /** Whether a settled job must still be remembered (its acknowledgement is not kept yet). */
  readonly held: (id: string) => boolean;
}

export class JobRetention {
  readonly #registry: JobRegistry;
  readonly #history: number;
  readonly #maxAgeMs: number;
  readonly #clock: () => number;
  readonly #onForget: (ids: readonly string[]) => void;
  readonly #held: (id: string) => boolean;
  /** Settled jobs forgotten from the history (oldest first, bounded): acking one again answers as before. */
  readonly #forgotten = new Map<string, FlushJob>();
  /** Ids forgotten this turn, for the store. */
  #forgetting: string[] = [];
  #sweeper: NodeJS.Timeout | null;

  constructor(options: JobRetentionOptions) {
    this.#registry = options.registry;
    this.#history = options.history;
    this.#maxAgeMs = options.maxAgeMs;
    this.#clock = options.clock;
    this.#onForget = options.onForget;
    this.#held = options.held;
    // Old jobs go even when no new ones come.
    this.#sweeper = setInterval(() => this.forgetOld(), 60_000).unref();
  }

  /** A job forgotten since it settled (undefined: remembered still, or never known here). */
  tombstone(id: string): FlushJob | undefined {
    return this.#forgotten.get(id);
  }

  /**
   * Keeps at most `history` finished jobs, none finished longer ago than `maxAgeMs`; the others
   * are forgotten oldest first, here and in the store (acknowledging one again still answers).
   */
  forgetOld(): void {
    const oldest = this.#clock() - this.#maxAgeMs;
    const forgotten: string[] = [];
    for (const [id, job] of this.#registry.entries()) {
      if (this.#registry.size <= this.#history && (job.finishedAt === null || job.finishedAt >= oldest)) {
        if (isSettled(job)) break;
        continue;
      }
      // A job its VMM has not acknowledged (or whose acknowledgement is not kept yet) is never forgotten.
      if (!isSettled(job) || this.#held(id)) continue;
      this.#registry.forget(job);
      forgotten.push(id);
      job.ranges = null;
      this.#forgotten.set(id, job);
      if (this.#forgotten.size > FORGOTTEN_KEPT) this.#forgotten.delete(this.#forgotten.keys().next().value as string);
    }
    if (forgotten.length === 0) return;
    // Forgotten in the store together, once a turn: one write for every job forgotten meanwhile.
    if (this.#forgetting.length === 0) {
      setImmediate(() => {
        const ids = this.#forgetting;
        this.#forgetting = [];
        this.#onForget(ids);
      });
    }
    this.#forgetting.push(...forgotten);
  }

  /** Stops the periodic sweep (closing). */
  stop(): void {
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    this.#sweeper = null;
  }
}
