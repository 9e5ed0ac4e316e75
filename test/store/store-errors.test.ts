import { describe, expect, it } from 'vitest';
import { isCodedError } from '../../src/domain/index.js';
import { NotReadyError, StoreUnavailableError } from '../../src/store/state-store.js';

describe('store errors', () => {
  it('an unavailable store is coded STORE_UNAVAILABLE, to be retried after 5 s, and keeps its cause', () => {
    const cause = new Error('connection refused');
    const err = new StoreUnavailableError('the store could not keep the change', { cause });
    expect(isCodedError(err)).toBe(true);
    expect(err).toMatchObject({ name: 'StoreUnavailableError', code: 'STORE_UNAVAILABLE', retryAfterSeconds: 5, message: 'the store could not keep the change', cause });
  });

  it('a store still restoring is coded NOT_READY, to be retried after 1 s, and is a kind of unavailability', () => {
    const err = new NotReadyError('the state is being restored from the store; retry shortly');
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect(isCodedError(err)).toBe(true);
    expect(err).toMatchObject({ name: 'NotReadyError', code: 'NOT_READY', retryAfterSeconds: 1 });
    expect(err.cause).toBeUndefined();
  });
});
