/**
 * Merging quirk entries (POST /v1/quirks): an entry replaces the entry for the same devices
 * (vendor id, mask, device id under it) where it stood, or joins the end; the core merges a
 * put-quirks with `merge` into the list in force when it applies it, so two merges decided one
 * after the other both keep their entries whatever list their callers last read.
 */
import { describe, expect, it } from 'vitest';
import { applyCommand, createState, DEFAULT_POLICY, DomainError, mergeQuirks, parseQuirkFile, quirkToWire, type Quirk } from '../../src/domain/index.js';

const q = (vendorId: string, deviceId: string, flags: string[], deviceMask?: string): Quirk => {
  const [parsed] = parseQuirkFile({ quirks: [{ vendorId, deviceId, flags, ...(deviceMask === undefined ? {} : { deviceMask }) }] });
  if (parsed === undefined) throw new Error('no quirk');
  return parsed;
};
const wire = (list: readonly Quirk[]): string[] => list.map((x) => `${quirkToWire(x).vendorId}:${quirkToWire(x).deviceId}/${quirkToWire(x).deviceMask}=${x.flags.join('+')}`);

describe('mergeQuirks', () => {
  const list = [q('0x8086', '0x0400', ['needs-nosnoop'], '0xff00'), q('0x10de', '0x0001', ['needs-nosnoop'])];

  it('adds at the end, replaces in place, and tells entries apart by their mask', () => {
    expect(wire(mergeQuirks(list, [q('0x1d0f', '0x1234', ['ignores-nosnoop-enable'])]))).toEqual(['0x8086:0x0400/0xff00=needs-nosnoop', '0x10de:0x0001/0xffff=needs-nosnoop', '0x1d0f:0x1234/0xffff=ignores-nosnoop-enable']);
    // Ids compared as numbers and the device id under its mask: 0x04AB/0xff00 is the family entry.
    expect(wire(mergeQuirks(list, [q('0x8086', '0x04AB', ['ignores-nosnoop-enable'], '0xFF00')]))).toEqual(['0x8086:0x0400/0xff00=ignores-nosnoop-enable', '0x10de:0x0001/0xffff=needs-nosnoop']);
    expect(wire(mergeQuirks(list, [q('0x10DE', '0x1', ['ignores-nosnoop-enable'])]))).toEqual(['0x8086:0x0400/0xff00=needs-nosnoop', '0x10de:0x0001/0xffff=ignores-nosnoop-enable']);
    // One device of the family under another mask is an entry of its own.
    expect(wire(mergeQuirks(list, [q('0x8086', '0x0412', ['ignores-nosnoop-enable'])]))).toHaveLength(3);
  });

  it('replaces every entry for the same devices with one, where the first stood', () => {
    const doubled = [list[1] as Quirk, list[0] as Quirk, list[1] as Quirk];
    expect(wire(mergeQuirks(doubled, [q('0x10de', '0x0001', ['ignores-nosnoop-enable'])]))).toEqual(['0x10de:0x0001/0xffff=ignores-nosnoop-enable', '0x8086:0x0400/0xff00=needs-nosnoop']);
  });

  it('refuses two entries for the same devices in one merge', () => {
    expect(() => mergeQuirks(list, [q('0x1d0f', '0x1234', ['needs-nosnoop']), q('0x1D0F', '0x1234', ['ignores-nosnoop-enable'], '0xFFFF')])).toThrow(DomainError);
    expect(() => mergeQuirks(list, [q('0x1d0f', '0x12ff', ['needs-nosnoop'], '0xff00'), q('0x1d0f', '0x1200', ['needs-nosnoop'], '0xff00')])).toThrow(/same devices/);
  });
});

describe('put-quirks with merge', () => {
  it('merges into the list in force when applied: two merges made from one read both keep their entries', () => {
    const state = createState(DEFAULT_POLICY, [q('0x10de', '0x0001', ['needs-nosnoop'])]);
    const first = { type: 'put-quirks', merge: true, quirks: [q('0x1d0f', '0x0001', ['needs-nosnoop'])] } as const;
    const second = { type: 'put-quirks', merge: true, quirks: [q('0x1d0f', '0x0002', ['needs-nosnoop'])] } as const;
    expect(wire(applyCommand(state, first, 1).quirks ?? [])).toHaveLength(2);
    const result = applyCommand(state, second, 2, { revision: 2 });
    expect(wire(state.quirks.quirks)).toEqual(['0x10de:0x0001/0xffff=needs-nosnoop', '0x1d0f:0x0001/0xffff=needs-nosnoop', '0x1d0f:0x0002/0xffff=needs-nosnoop']);
    // The list it put in force is what it answers and what the store keeps of it.
    expect(result.quirks).toBe(state.quirks.quirks);
    expect(result.effects.quirks).toBe(true);
  });

  it('a refused merge changes nothing', () => {
    const state = createState(DEFAULT_POLICY, [q('0x10de', '0x0001', ['needs-nosnoop'])]);
    const table = state.quirks;
    expect(() => applyCommand(state, { type: 'put-quirks', merge: true, quirks: [q('0x1d0f', '0x0001', ['needs-nosnoop']), q('0x1d0f', '0x0001', ['ignores-nosnoop-enable'])] }, 1)).toThrow(DomainError);
    expect(state.quirks).toBe(table);
  });
});
