/**
 * The store's failures, as coded errors: the HTTP layer answers each by its code and waits the
 * caller out for `retryAfterSeconds`, whichever store failed.
 */
import { CodedError } from '../domain/index.js';

export type StoreErrorCode = 'STORE_UNAVAILABLE' | 'NOT_READY';

/** Raised when the store cannot take or give changes; the service then fails closed. */
export class StoreUnavailableError extends CodedError<StoreErrorCode> {
  override readonly name: string = 'StoreUnavailableError';

  constructor(message: string, options: { readonly cause?: unknown } = {}) {
    // A store comes back (a restart, a failover) in seconds, not at once.
    super('STORE_UNAVAILABLE', message, { retryAfterSeconds: 5, cause: options.cause });
  }
}

/**
 * The state is still being restored from the store: nothing about it can be answered yet. It is
 * a kind of unavailability (callers that fail closed on one fail closed on the other), but a
 * short one: the restore is already under way.
 */
export class NotReadyError extends StoreUnavailableError {
  override readonly name = 'NotReadyError';
  override readonly code = 'NOT_READY';
  override readonly retryAfterSeconds = 1;
}
