/**
 * How a failure of PostgreSQL reaches the service: whatever the driver or the server throws (a
 * lost connection, a timeout, a failed statement, a schema too new) becomes one
 * StoreUnavailableError, on which the service fails closed. Only errors the caller's own code
 * raised inside a transaction (a rejected decision) pass as they are.
 */
import { StoreUnavailableError } from '../store-errors.js';

/** An error of the caller's code, carried through the transaction's rollback untouched. */
class CallersError extends Error {
  override readonly name = 'CallersError';
  readonly error: unknown;

  constructor(error: unknown) {
    super('an error of the caller, passing through the store');
    this.error = error;
  }
}

/** Runs `fn`: its errors are the caller's, not the store's, and `guarded` lets them through as they are. */
export function callers<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new CallersError(err);
  }
}

/** Runs `fn`, answering any failure of the store as StoreUnavailableError. */
export async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw unavailable(err);
  }
}

function unavailable(err: unknown): unknown {
  if (err instanceof CallersError) return err.error;
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`PostgreSQL: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
