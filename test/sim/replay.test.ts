/**
 * The simulator replays traces through the decision core against the cache model: exact figures
 * on small traces, zero violations for every mode on the reference traces (its VMM acting out of
 * order as the VMM protocol lets it), and a violation as soon as one demanded flush is skipped or
 * `flush.after` is ignored, so the model is shown to look.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, defaultQuirksFile, parseQuirkFile, POLICY_MODES, type PolicyMode } from '../../src/domain/index.js';
import { CacheModel } from '../../src/sim/coherency-model.js';
import { replay, type ModeResult } from '../../src/sim/replay.js';
import { Simulator } from '../../src/sim/simulator.js';
import { generateReferenceTrace, traceText } from '../../src/sim/reference-traces.js';
import { parseTrace } from '../../src/sim/trace.js';

const quirks = parseQuirkFile(defaultQuirksFile);
const MiB2 = 2 * 1024 * 1024;

/** A VM with one non-coherent domain and an FPGA (no quirk) whose bit is `bit` at attach. */
function smallTrace(bit: 'enabled' | 'disabled', tail: string[]): string {
  return [
    '{"t":"vm","vm":"vm1","arch":"x86_64"}',
    '{"t":"domain","vm":"vm1","domain":"d0","coherent":false}',
    `{"t":"device","vm":"vm1","bdf":"0000:00:05.0","domain":"d0","vendorId":"0x10ee","deviceId":"0x903f","nosnoop":"${bit}"}`,
    ...tail
  ].join('\n');
}

const PIN = '{"t":"pin","vm":"vm1","iova":"0x0","hpa":"0x100000000","length":"0x200000"}';
const UNPIN = '{"t":"unpin","vm":"vm1","iova":"0x0","length":"0x200000"}';

describe('cache model', () => {
  it('tracks dirty, clean and stale runs and splits them at the edges', () => {
    const m = new CacheModel();
    m.hostZero(100, 10);
    expect(m.noSnoopRead(95, 10)).toBe(5);
    m.flush(102, 3);
    expect(m.noSnoopRead(100, 10)).toBe(7);
    m.noSnoopWrite(98, 6); // 98, 99, 102 and 103 were clean: they become stale
    expect(m.release(98, 2)).toBe(2);
    expect(m.release(100, 10)).toBe(2);
    expect(m.noSnoopRead(90, 30)).toBe(0);
    expect(m.runs).toBe(0);
  });
});

describe('replay', () => {
  it('counts what each mode flushes for a device that never no-snoops', () => {
    const trace = parseTrace(smallTrace('disabled', [PIN, UNPIN]));
    const byMode = Object.fromEntries(POLICY_MODES.map((mode) => [mode, replay(trace, mode, { quirks })])) as Record<PolicyMode, ModeResult>;
    expect(byMode.pessimistic.flush).toEqual({ jobs: 2, bytes: 2 * MiB2, byCause: { pin: MiB2, unpin: MiB2, replay: 0, teardown: 0 }, pessimisticBytes: 2 * MiB2 });
    expect(byMode.trap.flush).toMatchObject({ jobs: 0, bytes: 0, pessimisticBytes: 2 * MiB2 });
    expect(byMode['virtualize-zero'].flush.bytes).toBe(0);
    for (const r of Object.values(byMode)) expect(r.violations.total).toBe(0);
    // clflushopt: 512 pages x 64 lines x 9 cycles + 2 fences x 13 cycles per page, at 4.49 GHz.
    expect(byMode.pessimistic.cost.cycles).toBe(2 * (512 * 64 * 9 + 512 * 2 * 13));
    expect(byMode.pessimistic.cost.seconds).toBeCloseTo((2 * (512 * 64 * 9 + 512 * 2 * 13)) / 4.49e9, 9);
  });

  it('replays before an allowed enable and denies it under virtualize-zero', () => {
    const trace = parseTrace(smallTrace('disabled', [PIN, '{"t":"devctl","vm":"vm1","bdf":"0000:00:05.0","nosnoopEnable":true}', UNPIN]));
    const trap = replay(trace, 'trap', { quirks: [{ vendorId: 0x10ee, deviceId: 0x903f, deviceMask: 0xffff, flags: ['needs-nosnoop'] }] });
    expect(trap.flush.byCause).toEqual({ pin: 0, unpin: MiB2, replay: MiB2, teardown: 0 });
    expect(trap.devctl).toEqual({ allow: 1, deny: 0, ignore: 0 });
    const vz = replay(trace, 'virtualize-zero', { quirks });
    expect(vz.devctl).toEqual({ allow: 0, deny: 1, ignore: 0 });
    expect(vz.flush.bytes).toBe(0);
    expect(vz.violations.total).toBe(0);
  });

  it("W8: a trace's per-device override decides that device's enables in trap and virtualize-zero, not in pessimistic", () => {
    const text = smallTrace('disabled', [PIN, '{"t":"devctl","vm":"vm1","bdf":"0000:00:05.0","nosnoopEnable":true}', UNPIN]).replace(
      '{"t":"vm","vm":"vm1","arch":"x86_64"}',
      '{"t":"vm","vm":"vm1","arch":"x86_64","policy":{"devices":{"0000:00:05.0":{"onEnable":"allow"}}}}'
    );
    const trace = parseTrace(text);
    for (const mode of ['trap', 'virtualize-zero'] as const) {
      const r = replay(trace, mode, { quirks });
      expect(r.devctl, mode).toEqual({ allow: 1, deny: 0, ignore: 0 });
      expect(r.flush.byCause.replay, mode).toBe(MiB2);
      expect(r.violations.total, mode).toBe(0);
    }
    const denied = parseTrace(text.replace('"onEnable":"allow"', '"onEnable":"deny"'));
    const quirked = [{ vendorId: 0x10ee, deviceId: 0x903f, deviceMask: 0xffff, flags: ['needs-nosnoop' as const] }];
    expect(replay(denied, 'trap', { quirks: quirked }).devctl).toEqual({ allow: 0, deny: 1, ignore: 0 });
    expect(replay(denied, 'pessimistic', { quirks }).devctl).toEqual({ allow: 1, deny: 0, ignore: 0 });
  });

  it('sees a leak when the pin flush is skipped and a stale line when the unpin flush is', () => {
    const trace = parseTrace(smallTrace('enabled', [PIN, UNPIN]));
    // Under the built-in trap policy the enabled FPGA is cleared at attach: nothing to flush.
    expect(replay(trace, 'trap', { quirks }).flush.jobs).toBe(0);
    // A server whose default onEnable is allow leaves it enabled.
    const allow = { quirks, defaults: { ...DEFAULT_POLICY, onEnable: 'allow' as const } };
    const safe = replay(trace, 'trap', allow);
    expect(safe.flush.jobs).toBe(2);
    expect(safe.violations.total).toBe(0);
    const noPinFlush = replay(trace, 'trap', { ...allow, dropFlush: 0 });
    expect(noPinFlush.violations).toMatchObject({ total: 1, leakPages: 512, stalePages: 0 });
    expect(noPinFlush.violations.samples[0]).toMatchObject({ kind: 'leak', event: 4, vm: 'vm1', pages: 512 });
    const noUnpinFlush = replay(trace, 'trap', { ...allow, dropFlush: 1 });
    expect(noUnpinFlush.violations).toMatchObject({ total: 1, leakPages: 0, stalePages: 512 });
    expect(noUnpinFlush.violations.samples[0]).toMatchObject({ kind: 'stale', event: 5 });
  });

  it('sees a leak when a replay is skipped and a stale line when teardown skips a flush', () => {
    // A reset that restores config (what vfio-pci does) replays nothing; one that does not, does.
    const restored = parseTrace(smallTrace('disabled', [PIN, '{"t":"reset","vm":"vm1","bdf":"0000:00:05.0"}', '{"t":"delete-vm","vm":"vm1"}']));
    expect(replay(restored, 'trap', { quirks }).flush.bytes).toBe(0);
    const trace = parseTrace(smallTrace('disabled', [PIN, '{"t":"reset","vm":"vm1","bdf":"0000:00:05.0","restoresConfig":false}', '{"t":"delete-vm","vm":"vm1"}']));
    const safe = replay(trace, 'pessimistic', { quirks });
    expect(safe.flush.byCause).toEqual({ pin: MiB2, unpin: 0, replay: 0, teardown: MiB2 });
    expect(safe.violations.total).toBe(0);
    const trap = replay(trace, 'trap', { quirks });
    expect(trap.flush.byCause).toEqual({ pin: 0, unpin: 0, replay: MiB2, teardown: MiB2 });
    expect(replay(trace, 'trap', { quirks, dropFlush: 0 }).violations.samples[0]?.kind).toBe('leak');
    expect(replay(trace, 'trap', { quirks, dropFlush: 1 }).violations.samples[0]?.kind).toBe('stale');
  });

  it('counts rejected commands instead of stopping', () => {
    const trace = parseTrace(smallTrace('disabled', [PIN, PIN, '{"t":"unpin","vm":"vm1","iova":"0x1000","length":"0x1000"}']));
    const r = replay(trace, 'trap', { quirks });
    expect(r.rejected).toEqual({ PIN_OVERLAP: 1, UNPIN_BISECTS: 1 });
    expect(r.violations.total).toBe(0);
  });
});

describe('the VMM protocol in the replay', () => {
  // Two FPGAs (allowed: needs-nosnoop) in one non-coherent domain, 2 MiB pinned while neither may
  // no-snoop. A's enable replays it; its VMM performs that replay two events later. B's enable,
  // the next event, lists A's replay in `flush.after`; B then reads the page with No-Snoop.
  const fpga = (bdf: string): string => `{"t":"device","vm":"vm1","bdf":"${bdf}","domain":"d0","vendorId":"0x10ee","deviceId":"0x903f","nosnoop":"disabled"}`;
  const enable = (bdf: string): string => `{"t":"devctl","vm":"vm1","bdf":"${bdf}","nosnoopEnable":true}`;
  const trace = parseTrace(
    [
      '{"t":"vm","vm":"vm1","arch":"x86_64"}',
      '{"t":"domain","vm":"vm1","domain":"d0","coherent":false}',
      fpga('0000:00:05.0'),
      fpga('0000:00:06.0'),
      PIN,
      enable('0000:00:05.0'),
      enable('0000:00:06.0'),
      '{"t":"dma","vm":"vm1","bdf":"0000:00:06.0","iova":"0x0","length":"0x1000","write":false,"noSnoop":true}',
      UNPIN
    ].join('\n')
  );
  const allowed = { quirks: [{ vendorId: 0x10ee, deviceId: 0x903f, deviceMask: 0xffff, flags: ['needs-nosnoop' as const] }] };

  it('a VMM that performs replays late, newest first, and writes a bit only after flush.after sees no violation', () => {
    const r = replay(trace, 'trap', allowed);
    expect(r.devctl.allow).toBe(2);
    expect(r.flush.byCause.replay).toBe(MiB2);
    expect(r.violations.total).toBe(0);
  });

  it('one that does not wait for flush.after lets the second device read a page the first one\'s replay has not flushed yet', () => {
    const r = replay(trace, 'trap', { ...allowed, vmm: 'ignore-after' });
    expect(r.violations.leakPages).toBeGreaterThan(0);
    expect(r.violations.samples[0]).toMatchObject({ kind: 'leak', event: 7 });
  });
});

describe('simulations of the reference traces', () => {
  it('need every flush desktop-gpu demands: dropping the replay, a boot pin or the teardown is seen', () => {
    const trace = parseTrace(traceText(generateReferenceTrace('desktop-gpu')));
    const trap = replay(trace, 'trap', { quirks });
    expect(trap.flush.byCause.replay).toBe(16 * 2 ** 30);
    // Job 0 is the replay before the enable; the last one is the teardown.
    expect(replay(trace, 'trap', { quirks, dropFlush: 0 }).violations.leakPages).toBeGreaterThan(0);
    expect(replay(trace, 'trap', { quirks, dropFlush: trap.flush.jobs - 1 }).violations.stalePages).toBeGreaterThan(0);
    // Under pessimistic, job 0 is the first boot pin.
    expect(replay(trace, 'pessimistic', { quirks, dropFlush: 0 }).violations.leakPages).toBe(160);
  });


  it('reproduce the same numbers twice in the worker pool, with 0 violations in every mode', async () => {
    const simulator = new Simulator({ threads: 2 });
    try {
      for (const reference of ['desktop-gpu', 'desktop-gpu-arm64', 'viommu-network', 'server-1tib'] as const) {
        const first = await simulator.run({ reference }, quirks);
        const second = await simulator.run({ reference }, quirks);
        expect(second.id).not.toBe(first.id);
        expect(second.modes, reference).toEqual(first.modes);
        expect(second.trace).toEqual(first.trace);
        expect(second.summary).toEqual(first.summary);
        expect(first.modes.map((m) => m.mode)).toEqual([...POLICY_MODES]);
        for (const m of first.modes) expect(m.violations.total, `${reference} ${m.mode}`).toBe(0);
        expect(first.summary.safe).toBe(true);
        expect(simulator.get(first.id)).toBe(first);
      }
    } finally {
      await simulator.close();
    }
  });

  it('prices aarch64 flushes with DC CIVAC and the same bytes as x86', async () => {
    const simulator = new Simulator({ threads: 0 });
    const x86 = await simulator.run({ reference: 'desktop-gpu' }, quirks, ['pessimistic']);
    const arm = await simulator.run({ reference: 'desktop-gpu-arm64' }, quirks, ['pessimistic']);
    expect(arm.modes[0]?.flush.bytes).toBe(x86.modes[0]?.flush.bytes);
    expect(arm.modes[0]?.cost.cycles).not.toBe(x86.modes[0]?.cost.cycles);
    await simulator.close();
  });
});
