/**
 * Requests per minute per caller (a token, or a client address without tokens), counted in fixed
 * windows: a caller's window opens at its first request and lasts `windowMs`; the request after
 * the `max`th in a window is refused until it ends. Synchronous: one map lookup and a counter per
 * request, no promise and no object. Windows that ended are swept, so callers that went quiet
 * cost nothing.
 */
export interface RateWindow {
  /** Requests counted in this window, the current one included. */
  count: number;
  /** When the window opened (ms since the epoch). */
  start: number;
}

export class RateLimiter {
  readonly max: number;
  readonly windowMs: number;
  readonly #windows = new Map<string, RateWindow>();

  constructor(max: number, windowMs: number) {
    this.max = max;
    this.windowMs = windowMs;
  }

  /** Counts one request of `key` at `now`; its window, which says whether it is over the limit. Valid until the next call. */
  take(key: string, now: number): RateWindow {
    let w = this.#windows.get(key);
    if (w === undefined) this.#windows.set(key, (w = { count: 1, start: now }));
    else if (w.start + this.windowMs <= now) {
      w.count = 1;
      w.start = now;
    } else w.count++;
    return w;
  }

  exceeded(w: RateWindow): boolean {
    return w.count > this.max;
  }

  /** Requests left in the window (0 once over). */
  remaining(w: RateWindow): number {
    return w.count >= this.max ? 0 : this.max - w.count;
  }

  /** Whole seconds until the window ends, at least 1 while it runs. */
  resetSeconds(w: RateWindow, now: number): number {
    return Math.ceil((w.start + this.windowMs - now) / 1000);
  }

  /** Forgets the windows that ended before `now`. */
  sweep(now: number): void {
    for (const [key, w] of this.#windows) if (w.start + this.windowMs <= now) this.#windows.delete(key);
  }

  get size(): number {
    return this.#windows.size;
  }
}

/** A wait as a caller reads it: "59 seconds", "1 minute". */
export function inWords(seconds: number): string {
  if (seconds < 60) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  const minutes = Math.round(seconds / 60);
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}
