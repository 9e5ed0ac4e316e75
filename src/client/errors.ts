/**
 * An answer other than 2xx, thrown with the service's stable error `code` (callers branch on the
 * code, never on the message) and, for a refusal that says when to come back, its `Retry-After`.
 */
import type { ProblemDetails } from './types.js';

/** An answer other than 2xx. `code` is the service's stable error code. */
export class CoherencyApiError extends Error {
  override readonly name = 'CoherencyApiError';
  readonly status: number;
  readonly code: string;
  readonly problem: ProblemDetails | undefined;
  /** The answer's `Retry-After`, in milliseconds, when it had one. */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, code: string, message: string, problem?: ProblemDetails, retryAfterMs?: number) {
    super(message);
    this.status = status;
    this.code = code;
    this.problem = problem;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The error for an answer: its problem+json when it is one, else `HTTP_<status>`. */
export function apiError(status: number, text: string, retryAfterMs?: number): CoherencyApiError {
  let problem: ProblemDetails | undefined;
  try {
    problem = JSON.parse(text) as ProblemDetails;
  } catch {
    problem = undefined;
  }
  return new CoherencyApiError(status, problem?.code ?? `HTTP_${status}`, problem?.detail ?? `HTTP ${status}`, problem, retryAfterMs);
}
