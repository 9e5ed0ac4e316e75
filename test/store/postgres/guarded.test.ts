import { describe, expect, it } from 'vitest';
import { DomainError } from '../../../src/domain/index.js';
import { callers, guarded } from '../../../src/store/postgres/guarded.js';
import { StoreUnavailableError } from '../../../src/store/state-store.js';

describe('guarded', () => {
  it('answers a failure of the database as StoreUnavailableError, naming PostgreSQL and keeping the cause', async () => {
    const cause = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
    const err = await guarded(() => Promise.reject(cause)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', message: 'PostgreSQL: terminating connection due to administrator command', cause });
  });

  it('passes a StoreUnavailableError on as it is', async () => {
    const err = new StoreUnavailableError('PostgreSQL: timeout exceeded when trying to connect');
    await expect(guarded(() => Promise.reject(err))).rejects.toBe(err);
  });

  it("lets the caller's own errors through as they are, even from inside a transaction", async () => {
    const rejected = new DomainError('PIN_OVERLAP', 'the range overlaps one pinned');
    // As a transaction does: what `fn` threw is rethrown after the rollback.
    const err = await guarded(() => Promise.resolve().then(() => callers(() => {
      throw rejected;
    }))).catch((e: unknown) => e);
    expect(err).toBe(rejected);
  });

  it('answers with what `fn` resolved to', async () => {
    await expect(guarded(() => Promise.resolve(callers(() => 42)))).resolves.toBe(42);
  });
});
