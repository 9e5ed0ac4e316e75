/**
 * Addresses and lengths. They travel as hex strings because IOVAs use all 64 bits; inside the
 * core they are 4 KiB page numbers. A page number is below 2^52, so it is an exact JS number;
 * byte counts above 2^53 are only ever formed as bigint.
 */
import { DomainError } from './errors.js';

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
/** Number of 4 KiB pages in the 64-bit address space (2^52). */
export const ADDRESS_SPACE_PAGES = 2 ** 52;

/** A 4 KiB page number (byte address >> 12). */
export type PageNumber = number;

const HEX = /^0x[0-9a-f]{1,16}$/i;
const PAGE_MASK = BigInt(PAGE_SIZE - 1);
const MAX_U64 = (1n << 64n) - 1n;

/**
 * Parses a byte address or length given as a hex string ("0x7f3a00000") or a non-negative safe
 * integer, requires 4 KiB alignment, and returns it as a page number.
 */
export function parsePageAddress(input: unknown, field: string): PageNumber {
  // Common case first, without bigint: up to 13 hex digits (below 2^52 bytes) or a safe integer
  // is exact as a JS number.
  const n = typeof input === 'string' ? (input.length <= 15 && HEX.test(input) ? Number.parseInt(input, 16) : -1) : typeof input === 'number' && Number.isSafeInteger(input) ? input : -1;
  if (n >= 0) {
    if (n % PAGE_SIZE !== 0) {
      throw new DomainError('UNALIGNED', `${field} must be a multiple of 4 KiB (0x1000)`, {
        field,
        value: input
      });
    }
    return n / PAGE_SIZE;
  }
  let bytes: bigint;
  if (typeof input === 'string') {
    if (!HEX.test(input)) {
      throw new DomainError('INVALID_HEX', `${field} must be a hex string like "0x1000"`, {
        field,
        value: input
      });
    }
    bytes = BigInt(input);
  } else if (typeof input === 'number' && Number.isSafeInteger(input) && input >= 0) {
    bytes = BigInt(input);
  } else {
    throw new DomainError('INVALID_HEX', `${field} must be a hex string or a non-negative safe integer`, {
      field
    });
  }
  if (bytes > MAX_U64) {
    throw new DomainError('ADDRESS_OVERFLOW', `${field} does not fit in 64 bits`, { field, value: input });
  }
  if ((bytes & PAGE_MASK) !== 0n) {
    throw new DomainError('UNALIGNED', `${field} must be a multiple of 4 KiB (0x1000)`, {
      field,
      value: input
    });
  }
  return Number(bytes >> BigInt(PAGE_SHIFT));
}

/** Parses a length: like an address, but it must be at least one page. */
export function parsePageLength(input: unknown, field: string): number {
  const pages = parsePageAddress(input, field);
  if (pages === 0) {
    throw new DomainError('INVALID_LENGTH', `${field} must be at least 0x1000`, { field });
  }
  return pages;
}

/** Requires [start, start + pages) to stay inside the 64-bit address space. */
export function checkSpan(start: PageNumber, pages: number, field: string): void {
  if (start + pages > ADDRESS_SPACE_PAGES) {
    throw new DomainError('ADDRESS_OVERFLOW', `${field} + length runs past the end of the 64-bit address space`, {
      field
    });
  }
}

/** 2^28: page numbers are written as two int32-sized hex halves below and above this. */
const LOW_PAGES = 2 ** 28;

/**
 * Formats a page number (or page count) as a byte hex string: 0x1 -> "0x1000". A page is 0x1000
 * bytes, so the hex of the page number followed by "000"; written from int32 halves because
 * V8 formats int32 values in hex much faster than larger numbers, and this runs twice per range
 * of every batched answer.
 */
export function formatPages(pages: number): string {
  if (pages === 0) return '0x0';
  if (pages <= 0x7fffffff) return '0x' + pages.toString(16) + '000';
  const high = Math.floor(pages / LOW_PAGES);
  // The low half padded to 7 hex digits: set bit 28, format, drop the leading "1".
  const low = (pages - high * LOW_PAGES + LOW_PAGES).toString(16).slice(1);
  return '0x' + high.toString(16) + low + '000';
}

/** Byte count of a page count, exactly. */
export function pagesToBytes(pages: number): bigint {
  return BigInt(pages) << BigInt(PAGE_SHIFT);
}
