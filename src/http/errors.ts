/**
 * One table from error code to HTTP answer, and the error the HTTP layer itself raises. Domain
 * codes come from the core; the rest belong to the edge or to the layers behind the service,
 * whose errors carry these codes themselves (CodedError), so the table is all the HTTP layer
 * needs to know of them.
 */
import { CodedError, type DomainErrorCode } from '../domain/index.js';

export type HttpErrorCode =
  | 'VALIDATION_FAILED'
  | 'MALFORMED_JSON'
  | 'MALFORMED_URL'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'BATCH_TOO_LARGE'
  | 'BODY_TOO_LARGE'
  | 'INVALID_CURSOR'
  | 'ROUTE_NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'UNKNOWN_FLUSH_JOB'
  | 'UNKNOWN_SIMULATION'
  | 'INVALID_TRACE'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'TOO_MANY_STREAMS'
  | 'OVERLOADED'
  | 'STORE_UNAVAILABLE'
  | 'NOT_READY'
  | 'FLUSH_ACK_TIMEOUT'
  | 'INTERNAL';

export type ErrorCode = DomainErrorCode | HttpErrorCode;

/**
 * How a code is answered. Most codes need only their status: the problem shows the error's own
 * message. A code whose cause is ours rather than the caller's is logged (`logged`: the log
 * line's message) and answered with a fixed `detail`, since its message may say more about the
 * service than a caller should see.
 */
export interface CodeAnswer {
  readonly status: number;
  readonly logged?: string;
  readonly detail?: string;
}

const BAD_REQUEST: CodeAnswer = { status: 400 };
const UNAUTHORIZED: CodeAnswer = { status: 401 };
const FORBIDDEN: CodeAnswer = { status: 403 };
const NOT_FOUND: CodeAnswer = { status: 404 };
const CONFLICT: CodeAnswer = { status: 409 };
const TOO_LARGE: CodeAnswer = { status: 413 };
const TOO_MANY: CodeAnswer = { status: 429 };
const UNAVAILABLE: CodeAnswer = { status: 503 };

export const STATUS: Readonly<Record<ErrorCode, CodeAnswer>> = {
  INVALID_ID: BAD_REQUEST,
  INVALID_PCI_ADDRESS: BAD_REQUEST,
  INVALID_HEX: BAD_REQUEST,
  UNALIGNED: BAD_REQUEST,
  ADDRESS_OVERFLOW: BAD_REQUEST,
  INVALID_LENGTH: BAD_REQUEST,
  INVALID_POLICY: BAD_REQUEST,
  INVALID_QUIRK: BAD_REQUEST,
  INVALID_DEVICE: BAD_REQUEST,
  VALIDATION_FAILED: BAD_REQUEST,
  MALFORMED_JSON: BAD_REQUEST,
  MALFORMED_URL: BAD_REQUEST,
  INVALID_CURSOR: BAD_REQUEST,
  INVALID_TRACE: BAD_REQUEST,
  UNAUTHENTICATED: UNAUTHORIZED,
  FORBIDDEN,
  UNKNOWN_VM: NOT_FOUND,
  UNKNOWN_DOMAIN: NOT_FOUND,
  UNKNOWN_DEVICE: NOT_FOUND,
  UNKNOWN_RANGE: NOT_FOUND,
  UNKNOWN_FLUSH_JOB: NOT_FOUND,
  UNKNOWN_SIMULATION: NOT_FOUND,
  ROUTE_NOT_FOUND: NOT_FOUND,
  METHOD_NOT_ALLOWED: { status: 405 },
  PIN_OVERLAP: CONFLICT,
  UNPIN_BISECTS: CONFLICT,
  DOMAIN_HAS_DEVICES: CONFLICT,
  VM_HAS_NO_DOMAINS: CONFLICT,
  ARCH_CHANGE: CONFLICT,
  NOT_PCI: CONFLICT,
  BATCH_TOO_LARGE: TOO_LARGE,
  BODY_TOO_LARGE: TOO_LARGE,
  UNSUPPORTED_MEDIA_TYPE: { status: 415 },
  RATE_LIMITED: TOO_MANY,
  TOO_MANY_STREAMS: TOO_MANY,
  INTERNAL: { status: 500, logged: 'unhandled error', detail: 'the service could not answer; the error is logged with this request id' },
  OVERLOADED: UNAVAILABLE,
  // Not logged per request: an outage refuses every change while it lasts. Its cause is logged
  // once when it starts (plugins/access-log.ts), and each refusal as a `refused` line, folded.
  STORE_UNAVAILABLE: { status: 503, detail: 'the state store is unavailable; nothing was changed' },
  NOT_READY: UNAVAILABLE,
  FLUSH_ACK_TIMEOUT: UNAVAILABLE
};

/** True when `code` is one the table answers. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(STATUS, code);
}

/** An error the HTTP layer raises itself: a limit, a cursor, a resource only it knows. */
export class HttpError extends CodedError<HttpErrorCode> {
  override readonly name = 'HttpError';

  constructor(code: HttpErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, { details });
  }
}
