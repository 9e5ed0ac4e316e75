/**
 * Simulation benchmark (npm run bench:sim).
 *
 * (a) What the modes flush on the reference traces: bytes per mode, trap against pessimistic,
 *     and violations (deterministic: the same on every run and every machine).
 * (b) Throughput on the vIOMMU trace (200,000 map/unmap events): events/s of one replay (the
 *     decision core, the VMM and the cache model) on one thread, of the whole simulation (three
 *     modes in the worker pool), and the baseline: the same commands through the decision core
 *     alone, no model. Medians of BENCH_RUNS (default 3) runs.
 *
 * Targets: on desktop-gpu, trap flushes >= 90% fewer bytes than pessimistic, 0 violations in
 * every mode of every trace.
 */
import {
  applyCommand,
  createState,
  DEFAULT_POLICY,
  defaultQuirksFile,
  parseQuirkFile,
  POLICY_MODES,
  type Command
} from '../src/domain/index.js';
import { formatBytes } from '../src/sim/chart.js';
import { generateReferenceTrace, REFERENCE_TRACES, traceText } from '../src/sim/reference-traces.js';
import { replay } from '../src/sim/replay.js';
import { Simulator } from '../src/sim/simulator.js';
import { parseTrace, type Trace } from '../src/sim/trace.js';
import { fmt, header, median } from './machine.js';

const RUNS = Math.max(3, Number(process.env['BENCH_RUNS'] ?? 3));
const quirks = parseQuirkFile(defaultQuirksFile);

header('npm run bench:sim  (node --import tsx bench/simulation.ts)');

// ---- (a) bytes per mode ----------------------------------------------------------------------

const simulator = new Simulator();
console.log('');
console.log('(a) bytes flushed per mode on the reference traces (deterministic), 0 violations expected everywhere');
console.log('');
console.log('| trace | events | mode | flushed | vs pessimistic | flush jobs | modelled flush time | violations |');
console.log('|---|---:|---|---:|---:|---:|---:|---:|');
let violations = 0;
let trapSaved = Number.NaN;
try {
  for (const reference of REFERENCE_TRACES) {
    const result = await simulator.run({ reference }, quirks);
    for (const m of result.modes) {
      violations += m.violations.total;
      const saved = result.summary.bytesSavedVsPessimistic[m.mode] ?? 0;
      if (reference === 'desktop-gpu' && m.mode === 'trap') trapSaved = saved;
      console.log(
        `| ${reference} | ${result.trace.events.toLocaleString('en-US')} | ${m.mode} | ${formatBytes(m.flush.bytes)} | ${m.mode === 'pessimistic' ? '-' : `${(saved * 100).toFixed(1)}% fewer`} | ${m.flush.jobs.toLocaleString('en-US')} | ${m.cost.seconds.toFixed(3)} s | ${m.violations.total} |`
      );
    }
  }
} finally {
  await simulator.close();
}

// ---- (b) throughput on viommu-network -----------------------------------------------------------

const text = traceText(generateReferenceTrace('viommu-network'));
const trace = parseTrace(text);
const events = trace.events.length;

/** The baseline: the trace's commands through the decision core alone (no VMM, no model). */
function coreOnly(t: Trace): void {
  const state = createState({ ...DEFAULT_POLICY, mode: 'trap' }, quirks);
  let now = 0;
  for (const e of t.events) {
    let cmd: Command | undefined;
    switch (e.t) {
      case 'vm':
        cmd = { type: 'put-vm', vmId: e.vm, arch: e.arch, policy: { ...e.policy, mode: 'trap' } };
        break;
      case 'domain':
        cmd = { type: 'put-domain', vmId: e.vm, domainId: e.domain, enforceCacheCoherency: e.coherent };
        break;
      case 'device':
        cmd = { type: 'put-device', vmId: e.vm, device: { bdf: e.bdf, domainId: e.domain, vendorId: e.vendorId, deviceId: e.deviceId, function: e.function, physfn: e.physfn, nosnoop: e.nosnoop } };
        break;
      case 'pin':
        cmd = { type: 'pin', vmId: e.vm, ranges: [{ iova: e.run.iova, hpa: e.run.hpa, pages: e.run.pages, domains: e.domains }] };
        break;
      case 'unpin':
        cmd = { type: 'unpin', vmId: e.vm, ranges: [{ iova: e.run.iova, pages: e.run.pages }] };
        break;
      case 'delete-vm':
        cmd = { type: 'delete-vm', vmId: e.vm };
        break;
      case 'delete-domain':
      case 'delete-device':
      case 'reset':
      case 'devctl':
      case 'dma':
        // Not in this trace.
        break;
    }
    if (cmd !== undefined) applyCommand(state, cmd, ++now);
  }
}

const rows: { core: number; replay: number; parse: number; pool: number }[] = [];
const pool = new Simulator();
try {
  // Warm the threads and the JIT once.
  await pool.run({ text }, quirks);
  for (let run = 0; run < RUNS; run++) {
    let t = performance.now();
    parseTrace(text);
    const parse = performance.now() - t;
    t = performance.now();
    coreOnly(trace);
    const core = performance.now() - t;
    t = performance.now();
    replay(trace, 'trap', { quirks });
    const one = performance.now() - t;
    t = performance.now();
    await pool.run({ text }, quirks);
    const all = performance.now() - t;
    rows.push({ core: events / (core / 1000), replay: events / (one / 1000), parse: events / (parse / 1000), pool: (events * POLICY_MODES.length) / (all / 1000) });
  }
} finally {
  await pool.close();
}
const m = (f: (r: (typeof rows)[number]) => number): number => median(rows.map(f));
console.log('');
console.log(`(b) throughput on viommu-network (${fmt(events)} events, ${(text.length / 2 ** 20).toFixed(1)} MiB of JSON Lines); median of ${RUNS}`);
console.log('');
console.log('| what | events/s | vs core alone |');
console.log('|---|---:|---:|');
console.log(`| decision core alone, trap (baseline) | ${fmt(m((r) => r.core))} | 1.00x |`);
console.log(`| one replay, trap (core + VMM + cache model), one thread | ${fmt(m((r) => r.replay))} | ${(m((r) => r.replay) / m((r) => r.core)).toFixed(2)}x |`);
console.log(`| parsing the JSON Lines (zod) | ${fmt(m((r) => r.parse))} | ${(m((r) => r.parse) / m((r) => r.core)).toFixed(2)}x |`);
console.log(`| whole simulation: parse + ${POLICY_MODES.length} modes in the worker pool (mode-events/s) | ${fmt(m((r) => r.pool))} | ${(m((r) => r.pool) / m((r) => r.core)).toFixed(2)}x |`);

const figures = [
  {
    id: 'sim-events-per-s',
    label: 'simulation throughput on viommu-network: one replay (trap), events/s',
    value: m((r) => r.replay),
    display: `${fmt(m((r) => r.replay))} events/s (whole simulation, ${POLICY_MODES.length} modes in the pool: ${fmt(m((r) => r.pool))} mode-events/s)`,
    target: '(reference)',
    met: true
  },
  {
    id: 'trap-bytes-saved-desktop-gpu',
    label: 'desktop-gpu: trap flushes fewer bytes than pessimistic',
    value: Math.round(trapSaved * 1000) / 10,
    display: `${(trapSaved * 100).toFixed(1)}% fewer`,
    target: '>= 90% fewer',
    met: trapSaved >= 0.9
  },
  {
    id: 'sim-violations',
    label: 'model violations, every mode of every reference trace',
    value: violations,
    display: String(violations),
    target: '0',
    met: violations === 0
  }
];
console.log(`FIGURES ${JSON.stringify(figures)}`);
