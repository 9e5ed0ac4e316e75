/**
 * Branded identifiers. A value of one of these types has been through its parser, so the rest of
 * the core never re-validates it.
 */
import { DomainError } from './errors.js';

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

export type VmId = Brand<string, 'VmId'>;
export type DomainId = Brand<string, 'DomainId'>;
/** PCI address `SSSS:BB:DD.F`, normalised to lower-case hex. */
export type PciAddress = Brand<string, 'PciAddress'>;

/** VM ids, as SPEC section 2 defines them; IOMMU domain ids use the same alphabet. */
/** What a VM or domain id looks like (INVALID_ID otherwise). */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ID = ID_PATTERN;
const BDF = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/i;

export function parseVmId(input: string): VmId {
  if (!ID.test(input)) {
    throw new DomainError('INVALID_ID', 'VM id must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', {
      field: 'vmId',
      value: input
    });
  }
  return input as VmId;
}

export function parseDomainId(input: string): DomainId {
  if (!ID.test(input)) {
    throw new DomainError('INVALID_ID', 'domain id must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', {
      field: 'domainId',
      value: input
    });
  }
  return input as DomainId;
}

/** Parses `SSSS:BB:DD.F` (device 0x00–0x1f, function 0–7) and normalises it to lower case. */
export function parsePciAddress(input: string): PciAddress {
  const m = BDF.exec(input);
  if (m === null || Number.parseInt(m[3] ?? '', 16) > 0x1f) {
    throw new DomainError('INVALID_PCI_ADDRESS', 'PCI address must be SSSS:BB:DD.F, e.g. 0000:00:02.0', {
      field: 'bdf',
      value: input
    });
  }
  return input.toLowerCase() as PciAddress;
}

const HEX16 = /^0x[0-9a-f]{1,4}$/i;

/** Parses a 16-bit hex id such as a PCI vendor or device id ("0x8086"). */
export function parseHex16(input: unknown, field: string): number {
  if (typeof input === 'string' && HEX16.test(input)) return Number.parseInt(input.slice(2), 16);
  if (typeof input === 'number' && Number.isInteger(input) && input >= 0 && input <= 0xffff) return input;
  throw new DomainError('INVALID_HEX', `${field} must be a 16-bit hex string like "0x8086"`, {
    field,
    value: input
  });
}

export function formatHex16(value: number): string {
  return '0x' + value.toString(16).padStart(4, '0');
}
