import { describe, expect, it } from 'vitest';
import {
  DEFAULT_POLICY,
  defaultQuirksFile,
  DomainError,
  parseQuirkFile,
  QuirkTable,
  quirkToWire,
  resolvePolicy
} from '../../src/domain/index.js';

describe('policy', () => {
  it('defaults: trap, allow-needs-nosnoop, exempt, clflushopt on x86 and dc-civac on arm64, never WBINVD', () => {
    expect(resolvePolicy('x86_64', DEFAULT_POLICY)).toEqual({
      mode: 'trap',
      onEnable: 'allow-needs-nosnoop',
      exemptNeedsNoSnoop: true,
      flushMethod: 'clflushopt',
      wbinvdAbovePages: null
    });
    expect(resolvePolicy('aarch64', DEFAULT_POLICY).flushMethod).toBe('dc-civac');
  });

  it('overlays a VM policy on the defaults', () => {
    const p = resolvePolicy('x86_64', DEFAULT_POLICY, { mode: 'pessimistic', flushMethod: 'clflush' });
    expect(p.mode).toBe('pessimistic');
    expect(p.flushMethod).toBe('clflush');
    expect(p.onEnable).toBe('allow-needs-nosnoop');
  });

  it('WBINVD only when explicitly allowed above a threshold, and only on x86', () => {
    expect(resolvePolicy('x86_64', DEFAULT_POLICY, { wbinvdAbovePages: 262144 }).wbinvdAbovePages).toBe(262144);
    expect(() => resolvePolicy('aarch64', DEFAULT_POLICY, { wbinvdAbovePages: 1 })).toThrow(DomainError);
    expect(() => resolvePolicy('x86_64', DEFAULT_POLICY, { wbinvdAbovePages: 0 })).toThrow(/positive/);
  });

  it('rejects instructions of the other architecture', () => {
    expect(() => resolvePolicy('x86_64', DEFAULT_POLICY, { flushMethod: 'dc-civac' })).toThrow(/aarch64/);
    expect(() => resolvePolicy('aarch64', DEFAULT_POLICY, { flushMethod: 'clflushopt' })).toThrow(/x86/);
  });
});

describe('quirks', () => {
  it('the shipped quirk file validates and marks Intel integrated graphics needs-nosnoop, with sources', () => {
    const quirks = parseQuirkFile(defaultQuirksFile);
    expect(quirks.length).toBeGreaterThan(10);
    const table = new QuirkTable(quirks);
    // Tiger Lake (the SPEC example), Alder Lake, Meteor Lake, Skylake iGPUs.
    for (const id of [0x9a49, 0x46a6, 0x7d55, 0x1912]) {
      expect([...table.flagsFor(0x8086, id)], id.toString(16)).toEqual(['needs-nosnoop']);
    }
    expect(table.flagsFor(0x8086, 0x1572).size).toBe(0); // an Intel NIC
    expect(table.flagsFor(0x10de, 0x9a49).size).toBe(0); // same device id, other vendor
    for (const q of quirks) expect(q.source).toMatch(/i915_pciids/);
  });

  it('matches the device id under its mask', () => {
    const [q] = parseQuirkFile({ quirks: [{ vendorId: '0x1425', deviceId: '0x5400', deviceMask: '0xff00', flags: ['ignores-nosnoop-enable'] }] });
    const table = new QuirkTable(q === undefined ? [] : [q]);
    expect(table.flagsFor(0x1425, 0x54ff).has('ignores-nosnoop-enable')).toBe(true);
    expect(table.flagsFor(0x1425, 0x5500).size).toBe(0);
  });

  it('rejects malformed quirk lists with INVALID_QUIRK', () => {
    for (const bad of [{}, { quirks: [{ vendorId: '8086', deviceId: '0x1', flags: ['needs-nosnoop'] }] }, { quirks: [{ vendorId: '0x8086', deviceId: '0x1', flags: [] }] }, { quirks: [{ vendorId: '0x8086', deviceId: '0x1', flags: ['fast'] }] }]) {
      try {
        parseQuirkFile(bad);
        expect.unreachable();
      } catch (err) {
        expect((err as DomainError).code).toBe('INVALID_QUIRK');
      }
    }
  });

  it('round-trips through the wire form', () => {
    const quirks = parseQuirkFile(defaultQuirksFile);
    expect(parseQuirkFile({ quirks: quirks.map(quirkToWire) })).toEqual(quirks);
  });
});
