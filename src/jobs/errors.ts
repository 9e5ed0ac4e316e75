/**
 * The flush jobs' refusals, with stable codes: the HTTP layer answers each with one lookup of its
 * code (status, Retry-After from `retryAfterSeconds`, `details` as given).
 */
import { CodedError } from '../domain/index.js';

/** A change that waits for earlier flushes (?wait=true) did not see them acknowledged in time. */
export class FlushAckTimeoutError extends CodedError<'FLUSH_ACK_TIMEOUT'> {
  override readonly name = 'FlushAckTimeoutError';

  constructor(
    readonly jobIds: readonly string[],
    readonly timeoutMs: number
  ) {
    // Retrying at once is pointless, but the VMM may well acknowledge within the second.
    super('FLUSH_ACK_TIMEOUT', `flush job(s) ${jobIds.join(', ')} were not acknowledged within ${timeoutMs} ms; nothing was changed`, {
      details: { after: [...jobIds], timeoutMs },
      retryAfterSeconds: 1
    });
  }
}

/** New work refused before any decision is made: the flush queue is full, or a VMM is too far behind. */
export class OverloadedError extends CodedError<'OVERLOADED'> {
  override readonly name = 'OverloadedError';
  declare readonly retryAfterSeconds: number;

  constructor(retryAfterSeconds: number, message = 'the flush queue is full; retry shortly') {
    super('OVERLOADED', message, { retryAfterSeconds });
  }
}
