/**
 * A simulation as an SVG bar chart: one bar per policy mode, its height the bytes the mode
 * flushed, labelled with the bytes, the modelled flush time and the model's verdict. Plain SVG
 * with no scripts or external references, so it renders anywhere and can be embedded as is.
 */
import type { PolicyMode } from '../domain/index.js';
import type { SimulationResult } from './simulator.js';

const COLORS: Record<PolicyMode, string> = {
  pessimistic: '#8c8c8c',
  trap: '#1f6feb',
  'virtualize-zero': '#2da44e'
};
const DANGER = '#cf222e';

const WIDTH = 720;
const HEIGHT = 420;
const PLOT = { left: 90, right: 30, top: 70, bottom: 110 };

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? String(v) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u] ?? 'B'}`;
}

export function formatSeconds(s: number): string {
  if (s === 0) return '0 s';
  if (s < 1e-3) return `${(s * 1e6).toFixed(1)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(1)} ms`;
  return `${s.toFixed(2)} s`;
}

function escape(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A round axis maximum at or above `max` (1, 2 or 5 times a power of two's worth of bytes). */
function axisMax(max: number): number {
  if (max <= 0) return 1;
  const unit = 1024 ** Math.max(0, Math.floor(Math.log(max) / Math.log(1024)));
  const scaled = max / unit;
  const pow = 10 ** Math.floor(Math.log10(scaled));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= scaled) return m * pow * unit;
  return 10 * pow * unit;
}

export function renderChart(result: SimulationResult): string {
  const plotW = WIDTH - PLOT.left - PLOT.right;
  const plotH = HEIGHT - PLOT.top - PLOT.bottom;
  const max = axisMax(Math.max(0, ...result.modes.map((m) => m.flush.bytes)));
  const slot = plotW / Math.max(1, result.modes.length);
  const barW = Math.min(120, slot * 0.6);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" role="img" aria-labelledby="chart-title">`,
    `<title id="chart-title">Bytes flushed per policy mode: ${escape(result.trace.name)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${PLOT.left}" y="30" font-size="18" font-weight="600" fill="#1f2328">Bytes flushed per policy mode: ${escape(result.trace.name)}</text>`,
    `<text x="${PLOT.left}" y="52" font-size="13" fill="#57606a">${result.trace.events.toLocaleString('en-US')} events, ${result.trace.ranges.toLocaleString('en-US')} ranges · ${result.summary.safe ? 'no mode let the coherency model see a hazard' : 'HAZARDS: a mode let the coherency model see a leak or a stale line'}</text>`
  );
  // Grid lines and the axis.
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const y = PLOT.top + plotH - (plotH * i) / 4;
    out.push(
      `<line x1="${PLOT.left}" x2="${WIDTH - PLOT.right}" y1="${y}" y2="${y}" stroke="${i === 0 ? '#57606a' : '#d0d7de'}" stroke-width="1"/>`,
      `<text x="${PLOT.left - 8}" y="${y + 4}" font-size="12" text-anchor="end" fill="#57606a">${formatBytes(v)}</text>`
    );
  }
  result.modes.forEach((m, i) => {
    const h = Math.max(2, (plotH * m.flush.bytes) / max);
    const cx = PLOT.left + slot * i + slot / 2;
    const x = cx - barW / 2;
    const y = PLOT.top + plotH - h;
    const unsafe = m.violations.total > 0;
    const saved = result.summary.bytesSavedVsPessimistic[m.mode];
    out.push(
      `<rect class="bar" data-mode="${m.mode}" data-bytes="${m.flush.bytes}" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barW.toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[m.mode]}"${unsafe ? ` stroke="${DANGER}" stroke-width="3"` : ''}><title>${m.mode}: ${formatBytes(m.flush.bytes)} in ${m.flush.jobs.toLocaleString('en-US')} flush jobs</title></rect>`,
      `<text x="${cx}" y="${(y - 8).toFixed(1)}" font-size="13" font-weight="600" text-anchor="middle" fill="#1f2328">${formatBytes(m.flush.bytes)}</text>`,
      `<text x="${cx}" y="${PLOT.top + plotH + 22}" font-size="14" font-weight="600" text-anchor="middle" fill="#1f2328">${m.mode}</text>`,
      `<text x="${cx}" y="${PLOT.top + plotH + 40}" font-size="12" text-anchor="middle" fill="#57606a">${formatSeconds(m.cost.seconds)} modelled · ${m.flush.jobs.toLocaleString('en-US')} jobs</text>`,
      `<text x="${cx}" y="${PLOT.top + plotH + 58}" font-size="12" text-anchor="middle" fill="${unsafe ? DANGER : '#1a7f37'}">${unsafe ? `${m.violations.total} violations` : '0 violations'}</text>`,
      m.mode === 'pessimistic' || saved === undefined
        ? ''
        : `<text x="${cx}" y="${PLOT.top + plotH + 76}" font-size="12" text-anchor="middle" fill="#57606a">${(saved * 100).toFixed(1)}% fewer bytes</text>`
    );
  });
  out.push('</svg>');
  return out.filter((s) => s !== '').join('\n') + '\n';
}
