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

export class DomainError extends Error {
  override readonly name = 'DomainError';
  readonly code: DomainErrorCode;
  /** Structured context (field, value, conflicting range...) safe to show to a caller. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: DomainErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

export function isDomainError(err: unknown): err is DomainError {
  return err instanceof DomainError;
}
