/**
 * When a refused request is sent again. The service answers 503 with `Retry-After` when it is
 * overloaded (OVERLOADED), while its store cannot take or give changes (STORE_UNAVAILABLE), while
 * a restarted service restores its state (NOT_READY) and when a `?wait=true` change's earlier
 * flushes were not acknowledged in time (FLUSH_ACK_TIMEOUT). Each of these refuses before
 * anything is kept (SPEC: "a change is refused (503, nothing kept)"), so sending the same
 * request again, a change included, cannot apply it twice: every request is retried alike.
 * Only such answers are: a 503 without `Retry-After`, any other status, and a request that got no
 * answer (a dropped connection, a timeout: the change may have been kept) are thrown at once.
 */

/** How often and how long to wait for a 503 with `Retry-After`. */
export interface RetryOptions {
  /** Requests sent in all, the first included (default 3; 1: never retry). */
  readonly maxAttempts?: number;
  /**
   * The longest `Retry-After` waited for, in milliseconds (default 10,000). A 503 asking for
   * longer is thrown at once: waiting less than asked would only be refused again.
   */
  readonly maxDelayMs?: number;
}

export const DEFAULT_MAX_ATTEMPTS = 3;
export const DEFAULT_MAX_DELAY_MS = 10_000;

/**
 * `Retry-After` in milliseconds: delay-seconds or an HTTP date (RFC 9110 section 10.2.3);
 * undefined when absent or unreadable.
 */
export function retryAfterMs(header: string | string[] | undefined, now = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  // A date names its day or month ("Wed, 21 Oct 2015 07:28:00 GMT"); Date.parse takes "-1" too.
  if (!/[a-z]/i.test(value)) return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The wait before attempt `attempt + 1` after a 503 (`status`) asking for `delayMs`; undefined: do not retry. */
export function retryDelay(status: number, delayMs: number | undefined, attempt: number, options: RetryOptions): number | undefined {
  if (status !== 503 || delayMs === undefined) return undefined;
  if (attempt >= (options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS)) return undefined;
  if (delayMs > (options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS)) return undefined;
  return delayMs;
}
