/**
 * The per-VM activity summary's memory is bounded: records for VMs active in the current or
 * previous period only, at most MAX_VMS of them (the rest counted together), refusal counts per
 * client forgotten at each period's end and at most MAX_CLIENTS a period.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LogSummary, MAX_CLIENTS, MAX_VMS, REFUSALS_LOGGED_PER_PERIOD } from '../../src/http/log-summary.js';
import { LogSink } from '../helpers/app.js';

function summary(): { s: LogSummary; sink: LogSink } {
  const sink = new LogSink();
  return { s: new LogSummary(pino({ level: 'info' }, sink), 0), sink };
}

describe('LogSummary', () => {
  it('holds at most MAX_VMS VMs and counts the rest together; drops VMs idle for a period', () => {
    const { s, sink } = summary();
    for (let i = 0; i < MAX_VMS + 500; i++) s.decided(`vm-${i}`);
    expect(s.tracked.vms).toBe(MAX_VMS + 1);
    s.write();
    const lines = sink.lines.filter((l) => l['msg'] === 'vm activity');
    expect(lines).toHaveLength(MAX_VMS + 1);
    expect(lines.find((l) => l['vmId'] === '(other VMs)')).toMatchObject({ decisions: 500 });
    expect(lines.reduce((n, l) => n + (l['decisions'] as number), 0)).toBe(MAX_VMS + 500);
    // Idle for a period: forgotten.
    s.decided('vm-1');
    s.write();
    expect(s.tracked.vms).toBe(1);
    s.write();
    expect(s.tracked.vms).toBe(0);
  });

  it('forgets refusal counts at each period end, and holds at most MAX_CLIENTS clients a period', () => {
    const { s } = summary();
    let logged = 0;
    for (let i = 0; i < MAX_CLIENTS + 50; i++) if (s.refused(undefined, `10.0.${i >> 8}.${i & 255}`, 'RATE_LIMITED', 429)) logged++;
    expect(s.tracked.clients).toBe(MAX_CLIENTS + 1);
    // Each client's first refusal has its line; past the bound, the others share one client's allowance.
    expect(logged).toBe(MAX_CLIENTS + REFUSALS_LOGGED_PER_PERIOD);
    s.write();
    expect(s.tracked.clients).toBe(0);
  });

  it('a deleted VM is dropped at once, its last activity written', () => {
    const { s, sink } = summary();
    s.changed('vm-1', false);
    s.flushed('vm-1', 2, 1, 'fj-1');
    s.flushed('vm-1', 2, 1, 'fj-1');
    s.flushed('vm-1', 4, 2, 'fj-2');
    s.forget('vm-1');
    expect(s.tracked.vms).toBe(0);
    expect(sink.lines).toEqual([expect.objectContaining({ msg: 'vm activity', vmId: 'vm-1', pins: 1, flushes: 3, flushJobs: 2, flushBytes: '0x8000', flushRanges: 4 })]);
  });
});
