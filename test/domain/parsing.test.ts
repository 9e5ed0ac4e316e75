import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DomainError,
  formatHex16,
  formatPages,
  pagesToBytes,
  parseHex16,
  parsePageAddress,
  parsePageLength,
  parsePciAddress,
  parseVmId,
  checkSpan,
  type DomainErrorCode
} from '../../src/domain/index.js';

function code(fn: () => unknown): DomainErrorCode | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof DomainError) return err.code;
    throw err;
  }
  return undefined;
}

describe('addresses and lengths', () => {
  it('round-trips every 4 KiB-aligned 64-bit address exactly', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 52n) - 1n }), (page) => {
        const hex = '0x' + (page << 12n).toString(16);
        const parsed = parsePageAddress(hex, 'iova');
        expect(BigInt(parsed)).toBe(page);
        expect(formatPages(parsed)).toBe(hex);
      }),
      { numRuns: 2000 }
    );
  });

  it('keeps the top of the 64-bit space exact', () => {
    const top = parsePageAddress('0xfffffffffffff000', 'iova');
    expect(top).toBe(2 ** 52 - 1);
    expect(formatPages(top)).toBe('0xfffffffffffff000');
    expect(pagesToBytes(2 ** 52 - 1)).toBe(0xfffffffffffff000n);
    expect(parsePageAddress('0XFFFFFFFFFFFFF000', 'iova')).toBe(2 ** 52 - 1);
  });

  it('accepts non-negative safe integers', () => {
    expect(parsePageAddress(0, 'iova')).toBe(0);
    expect(parsePageAddress(8192, 'iova')).toBe(2);
  });

  it('rejects unaligned, non-hex, negative, unsafe and over-64-bit input with stable codes', () => {
    expect(code(() => parsePageAddress('0x1', 'iova'))).toBe('UNALIGNED');
    expect(code(() => parsePageAddress(4097, 'iova'))).toBe('UNALIGNED');
    expect(code(() => parsePageAddress('4096', 'iova'))).toBe('INVALID_HEX');
    expect(code(() => parsePageAddress('0xg000', 'iova'))).toBe('INVALID_HEX');
    expect(code(() => parsePageAddress('0x', 'iova'))).toBe('INVALID_HEX');
    expect(code(() => parsePageAddress(-4096, 'iova'))).toBe('INVALID_HEX');
    expect(code(() => parsePageAddress(2 ** 53, 'iova'))).toBe('INVALID_HEX');
    expect(code(() => parsePageAddress(1.5, 'iova'))).toBe('INVALID_HEX');
    expect(code(() => parsePageAddress(null, 'iova'))).toBe('INVALID_HEX');
    expect(code(() => parsePageAddress('0x10000000000000000', 'iova'))).toBe('INVALID_HEX');
    expect(code(() => parsePageLength('0x0', 'length'))).toBe('INVALID_LENGTH');
  });

  it('rejects a range that runs past the end of the address space', () => {
    expect(code(() => checkSpan(2 ** 52 - 1, 1, 'iova'))).toBeUndefined();
    expect(code(() => checkSpan(2 ** 52 - 1, 2, 'iova'))).toBe('ADDRESS_OVERFLOW');
  });

  it('names the field in the error details', () => {
    try {
      parsePageAddress('0x123', 'hpa');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(DomainError);
      expect((err as DomainError).details['field']).toBe('hpa');
    }
  });
});

describe('identifiers', () => {
  it('VM ids follow ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', () => {
    expect(parseVmId('vm-1.a_b')).toBe('vm-1.a_b');
    expect(parseVmId('a'.repeat(64))).toHaveLength(64);
    for (const bad of ['', '-vm', 'a'.repeat(65), 'vm/1', 'vm 1', 'é']) {
      expect(code(() => parseVmId(bad)), bad).toBe('INVALID_ID');
    }
  });

  it('PCI addresses are SSSS:BB:DD.F with device <= 0x1f and function <= 7, normalised to lower case', () => {
    expect(parsePciAddress('0000:00:02.0')).toBe('0000:00:02.0');
    expect(parsePciAddress('000A:FF:1F.7')).toBe('000a:ff:1f.7');
    for (const bad of ['00:02.0', '0000:00:20.0', '0000:00:02.8', '0000:0:02.0', '0000:00:02', 'zzzz:00:02.0']) {
      expect(code(() => parsePciAddress(bad)), bad).toBe('INVALID_PCI_ADDRESS');
    }
  });

  it('16-bit hex ids parse and format', () => {
    expect(parseHex16('0x8086', 'vendorId')).toBe(0x8086);
    expect(formatHex16(0x2)).toBe('0x0002');
    expect(code(() => parseHex16('0x10000', 'vendorId'))).toBe('INVALID_HEX');
    expect(code(() => parseHex16('8086', 'vendorId'))).toBe('INVALID_HEX');
  });
});
