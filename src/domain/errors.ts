/**
 * Stable, machine-readable error codes of the decision core. Callers branch on `code`, never on
 * the message. The HTTP layer maps each code to a status in exactly one table.
 */
export type DomainErrorCode =
  | 'INVALID_ID'
  | 'INVALID_PCI_ADDRESS'
  | 'INVALID_HEX'
  | 'UNALIGNED'
  | 'ADDRESS_OVERFLOW'
  | 'INVALID_LENGTH'
  | 'INVALID_POLICY'
  | 'INVALID_QUIRK'
  | 'INVALID_DEVICE'
  | 'UNKNOWN_VM'
  | 'UNKNOWN_DOMAIN'
  | 'UNKNOWN_DEVICE'
  | 'UNKNOWN_RANGE'
  | 'PIN_OVERLAP'
  | 'UNPIN_BISECTS'
  | 'DOMAIN_HAS_DEVICES'
  | 'VM_HAS_NO_DOMAINS'
  | 'ARCH_CHANGE'
  | 'NOT_PCI';

/**
 * An error with a stable code, as fastify's `createError(code, message, status)` and undici's
 * `UND_ERR_*`: every layer throws these, and the HTTP layer answers each with one lookup of its
 * code in its one status table.
 */
export class CodedError<C extends string = string> extends Error {
  readonly code: C;
  /** Structured context (field, value, conflicting range...) safe to show to a caller. */
  readonly details: Readonly<Record<string, unknown>>;
  /** When retrying later helps: how long to wait (the answer's Retry-After), in seconds. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: C, message: string, options: { readonly details?: Record<string, unknown>; readonly retryAfterSeconds?: number; readonly cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isCodedError(err: unknown): err is CodedError {
  return err instanceof CodedError;
}

export class DomainError extends CodedError<DomainErrorCode> {
  override readonly name = 'DomainError';

  constructor(code: DomainErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, { details });
  }
}

export function isDomainError(err: unknown): err is DomainError {
  return err instanceof DomainError;
}
