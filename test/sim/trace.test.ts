/**
 * The trace format: JSON Lines with a zod schema, errors that name the line, repeat runs, and a
 * deterministic reference generator.
 */
import { describe, expect, it } from 'vitest';
import { generateReferenceTrace, REFERENCE_TRACES, traceText } from '../../src/sim/reference-traces.js';
import { parseTrace, TraceError } from '../../src/sim/trace.js';

const VM = '{"t":"vm","vm":"vm1","arch":"x86_64"}';

function errorOf(text: string): TraceError {
  try {
    parseTrace(text);
  } catch (err) {
    if (err instanceof TraceError) return err;
    throw err;
  }
  throw new Error('the trace parsed');
}

describe('trace format', () => {
  it('parses a header and events, skipping blank lines, with addresses in pages', () => {
    const trace = parseTrace(
      [
        '{"t":"trace","version":1,"name":"tiny","description":"two events"}',
        VM,
        '',
        '{"t":"pin","vm":"vm1","iova":"0x200000","hpa":"0x40000000","length":"0x2000","memType":"WC","mmio":true,"domains":["d0"]}'
      ].join('\n')
    );
    expect(trace.header).toEqual({ t: 'trace', version: 1, name: 'tiny', description: 'two events' });
    expect(trace.events).toHaveLength(2);
    expect(trace.events[1]).toEqual({
      t: 'pin',
      vm: 'vm1',
      run: { iova: 0x200, hpa: 0x40000, pages: 2, count: 1, iovaStride: 2, hpaStride: 2 },
      memType: 'WC',
      mmio: true,
      domains: ['d0']
    });
  });

  it('expands repeat runs with their strides', () => {
    const trace = parseTrace(`${VM}\n{"t":"pin","vm":"vm1","iova":"0x0","hpa":"0x100000000","length":"0x200000","repeat":{"count":3,"hpaStride":"0x400000"}}\n`);
    const pin = trace.events[1];
    expect(pin?.t === 'pin' && pin.run).toEqual({ iova: 0, hpa: 0x100000, pages: 512, count: 3, iovaStride: 512, hpaStride: 1024 });
    expect(trace.ranges).toBe(3);
  });

  it.each([
    ['not JSON', `${VM}\n{"t":`, 2, 'not a JSON object'],
    ['an unknown event', `${VM}\n{"t":"teleport","vm":"vm1"}`, 2, 't'],
    ['an unknown field', `{"t":"vm","vm":"vm1","arch":"x86_64","mode":"trap"}`, 1, 'mode'],
    ['a missing field', `${VM}\n\n{"t":"pin","vm":"vm1","iova":"0x0","length":"0x1000"}`, 3, 'hpa'],
    ['an unaligned address', `${VM}\n{"t":"pin","vm":"vm1","iova":"0x10","hpa":"0x0","length":"0x1000"}`, 2, '4 KiB'],
    ['a bad PCI address', `${VM}\n{"t":"reset","vm":"vm1","bdf":"00:02"}`, 2, 'PCI address'],
    ['overlapping repeats', `${VM}\n{"t":"pin","vm":"vm1","iova":"0x0","hpa":"0x0","length":"0x2000","repeat":{"count":2,"iovaStride":"0x1000"}}`, 2, 'strides'],
    ['no events', '\n\n', 3, 'no events'],
    [
      'more ranges than a simulation may replay',
      `${VM}\n{"t":"pin","vm":"vm1","iova":"0x0","hpa":"0x0","length":"0x1000","repeat":{"count":4194304}}\n{"t":"unpin","vm":"vm1","iova":"0x0","length":"0x1000"}`,
      3,
      'at most 4,194,304 ranges'
    ]
  ])('rejects %s, naming the line', (_what, text, line, detail) => {
    const err = errorOf(text);
    expect(err.line).toBe(line);
    expect(err.message).toContain(`trace line ${line}`);
    expect(err.detail).toContain(detail);
  });

  it('carries the code INVALID_TRACE with the line in its details', () => {
    const err = errorOf(`${VM}\n{"t":`);
    expect(err.code).toBe('INVALID_TRACE');
    expect(err.details).toEqual({ line: 2 });
    expect(err.name).toBe('TraceError');
  });

  it("gives a VM line's policy to the core as set, and refuses what the core's input has no place for", () => {
    const head = '{"t":"vm","vm":"vm1","arch":"x86_64"';
    expect(parseTrace(`${head}}`).events[0]).toEqual({ t: 'vm', vm: 'vm1', arch: 'x86_64', policy: {} });
    const policy = { onEnable: 'deny', exemptNeedsNoSnoop: false, flushMethod: 'clflush' };
    expect(parseTrace(`${head},"policy":${JSON.stringify(policy)}}`).events[0]).toEqual({ t: 'vm', vm: 'vm1', arch: 'x86_64', policy });
    expect(errorOf(`${head},"policy":{"wbinvdAbove":"0x1000"}}`).detail).toBe('policy: Unrecognized key: "wbinvdAbove"');
    expect(errorOf(`${head},"policy":{"onEnable":"maybe"}}`).detail).toBe('policy.onEnable: Invalid option: expected one of "allow"|"deny"|"allow-needs-nosnoop"');
  });

  it('generates every reference trace byte for byte the same twice, and each parses', () => {
    for (const name of REFERENCE_TRACES) {
      const a = traceText(generateReferenceTrace(name));
      const b = traceText(generateReferenceTrace(name));
      expect(a === b, name).toBe(true);
      const parsed = parseTrace(a);
      expect(parsed.header?.name).toBe(name);
    }
  });

  it('builds the reference traces the issue describes', () => {
    const desktop = parseTrace(traceText(generateReferenceTrace('desktop-gpu')));
    const ramPins = desktop.events.filter((e) => e.t === 'pin').slice(0, 4);
    const ram = ramPins.reduce((sum, e) => sum + (e.t === 'pin' ? e.run.pages * e.run.count : 0), 0);
    expect(ram * 4096).toBe(16 * 2 ** 30);
    expect(desktop.events.some((e) => e.t === 'devctl' && e.nosnoopEnable)).toBe(true);
    expect(desktop.events.at(-1)?.t).toBe('delete-vm');

    const arm = parseTrace(traceText(generateReferenceTrace('desktop-gpu-arm64')));
    expect(arm.events[0]).toMatchObject({ t: 'vm', arch: 'aarch64' });
    expect(arm.events.length).toBe(desktop.events.length);

    const net = parseTrace(traceText(generateReferenceTrace('viommu-network')));
    const mapUnmap = net.events.filter((e) => (e.t === 'pin' || e.t === 'unpin') && e.run.pages === 1 && e.run.count === 1);
    expect(mapUnmap).toHaveLength(200_000);
    expect(net.events.filter((e) => e.t === 'domain').map((e) => e.t === 'domain' && e.coherent)).toEqual([true, false]);

    const server = parseTrace(traceText(generateReferenceTrace('server-1tib')));
    expect(server.ranges * 2 * 2 ** 20).toBe(2 ** 40);
    expect(server.events.filter((e) => e.t === 'reset')).toHaveLength(2);
  });
});
