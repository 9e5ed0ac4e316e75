/** A simulation as a plain-text table for terminals. */
import { formatBytes, formatSeconds } from './chart.js';
import type { SimulationResult } from './simulator.js';

export function formatTable(result: SimulationResult): string {
  const head = ['mode', 'flushed', 'vs pessimistic', 'flush jobs', 'modelled cycles', 'modelled time', 'violations'];
  const rows = result.modes.map((m) => {
    const saved = result.summary.bytesSavedVsPessimistic[m.mode];
    return [
      m.mode,
      formatBytes(m.flush.bytes),
      m.mode === 'pessimistic' || saved === undefined ? '-' : `${(saved * 100).toFixed(1)}% fewer`,
      m.flush.jobs.toLocaleString('en-US'),
      Math.round(m.cost.cycles).toLocaleString('en-US'),
      formatSeconds(m.cost.seconds),
      m.violations.total === 0 ? '0' : `${m.violations.total} (${m.violations.leakPages} leaked, ${m.violations.stalePages} stale pages)`
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  const t = result.trace;
  const out = [
    `trace ${t.name}: ${t.events.toLocaleString('en-US')} events, ${t.ranges.toLocaleString('en-US')} ranges, sha256 ${t.sha256.slice(0, 16)}`,
    ...(t.description === null ? [] : [t.description]),
    '',
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
    result.summary.safe ? 'safe: no mode let the coherency model see a leak or a stale line' : 'UNSAFE: a mode let the coherency model see a hazard (see violations)'
  ];
  for (const m of result.modes) for (const s of m.violations.samples) out.push(`  ${m.mode}: ${s.kind} at event ${s.event} (VM ${s.vm}): ${s.detail}`);
  return out.join('\n') + '\n';
}
