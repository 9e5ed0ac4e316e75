/**
 * The flush jobs' refusals carry stable codes, the details a caller is shown and how long to
 * wait: the HTTP layer answers each from these alone.
 */
import { describe, expect, it } from 'vitest';
import { CodedError, isCodedError } from '../../src/domain/index.js';
import { FlushAckTimeoutError, OverloadedError } from '../../src/jobs/flush-jobs.js';

describe('flush job errors', () => {
  it('OVERLOADED carries the Retry-After it was given, and its message', () => {
    const err = new OverloadedError(3, 'VM vm1 is behind');
    expect(err).toBeInstanceOf(CodedError);
    expect(isCodedError(err)).toBe(true);
    expect(err).toMatchObject({ name: 'OverloadedError', code: 'OVERLOADED', retryAfterSeconds: 3, message: 'VM vm1 is behind', details: {} });
    expect(new OverloadedError(1).message).toBe('the flush queue is full; retry shortly');
  });

  it('FLUSH_ACK_TIMEOUT names the jobs waited for and the timeout, and asks for a retry after a second', () => {
    const err = new FlushAckTimeoutError(['fj-a', 'fj-b'], 250);
    expect(err).toBeInstanceOf(CodedError);
    expect(err).toMatchObject({ name: 'FlushAckTimeoutError', code: 'FLUSH_ACK_TIMEOUT', retryAfterSeconds: 1, jobIds: ['fj-a', 'fj-b'], timeoutMs: 250 });
    expect(err.details).toEqual({ after: ['fj-a', 'fj-b'], timeoutMs: 250 });
    expect(err.message).toBe('flush job(s) fj-a, fj-b were not acknowledged within 250 ms; nothing was changed');
  });
});
