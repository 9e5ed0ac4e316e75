/**
 * One table from error code to HTTP status, and the error the HTTP layer itself raises. Domain
 * codes come from the core; the rest belong to the edge.
 */
import type { DomainErrorCode } from '../domain/index.js';

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

export const STATUS: Record<ErrorCode, number> = {
  INVALID_ID: 400,
  INVALID_PCI_ADDRESS: 400,
  INVALID_HEX: 400,
  UNALIGNED: 400,
  ADDRESS_OVERFLOW: 400,
  INVALID_LENGTH: 400,
  INVALID_POLICY: 400,
  INVALID_QUIRK: 400,
  INVALID_DEVICE: 400,
  VALIDATION_FAILED: 400,
  MALFORMED_JSON: 400,
  MALFORMED_URL: 400,
  INVALID_CURSOR: 400,
  INVALID_TRACE: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  UNKNOWN_VM: 404,
  UNKNOWN_DOMAIN: 404,
  UNKNOWN_DEVICE: 404,
  UNKNOWN_RANGE: 404,
  UNKNOWN_FLUSH_JOB: 404,
  UNKNOWN_SIMULATION: 404,
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  PIN_OVERLAP: 409,
  UNPIN_BISECTS: 409,
  DOMAIN_HAS_DEVICES: 409,
  VM_HAS_NO_DOMAINS: 409,
  ARCH_CHANGE: 409,
  NOT_PCI: 409,
  BATCH_TOO_LARGE: 413,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  TOO_MANY_STREAMS: 429,
  INTERNAL: 500,
  OVERLOADED: 503,
  STORE_UNAVAILABLE: 503,
  NOT_READY: 503,
  FLUSH_ACK_TIMEOUT: 503
};

export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly code: HttpErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {}
  ) {
    super(message);
  }
}
