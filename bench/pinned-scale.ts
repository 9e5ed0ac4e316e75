/**
 * Pinned-state scale benchmark (npm run bench:scale): heap bytes per pinned range at 1 M and
 * 10 M ranges in one VM, built through the decision core (put-vm, put-domain, then pin commands
 * of 10,000 ranges each) with nothing kept but the state.
 *
 * Bytes per range = growth of heapUsed + arrayBuffers (the typed arrays of the pin map live
 * outside heapUsed) after a full GC, divided by the number of ranges. Ranges are one page each,
 * one page apart, so none can merge with its neighbour.
 *
 * Target: <= 128 bytes per range at 10 M.
 */
import { applyCommand, createState, DEFAULT_POLICY, parseDomainId, parseVmId, type PinInput } from '../src/domain/index.js';
import { fmt, gc, header, median } from './machine.js';

const RUNS = Math.max(3, Number(process.env['BENCH_RUNS'] ?? 3));
const SIZES = [1_000_000, 10_000_000];
const BATCH = 10_000;
const TARGET = 128;

header('npm run bench:scale  (node --expose-gc --import tsx bench/pinned-scale.ts)');

function heapBytes(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

interface Result {
  bytesPerRange: number;
  fillPerSec: number;
}

function measure(n: number): Result {
  gc();
  const heap0 = heapBytes();
  const t = performance.now();
  const state = createState(DEFAULT_POLICY, []);
  const vmId = parseVmId('scale');
  applyCommand(state, { type: 'put-vm', vmId, arch: 'x86_64', policy: { mode: 'pessimistic' } }, 0);
  applyCommand(state, { type: 'put-domain', vmId, domainId: parseDomainId('d0'), enforceCacheCoherency: false }, 0);
  for (let start = 0; start < n; start += BATCH) {
    const ranges: PinInput[] = [];
    const end = Math.min(n, start + BATCH);
    // One page every other page: a gap after each range, so nothing is adjacent.
    for (let k = start; k < end; k++) ranges.push({ iova: 2 * k, pages: 1, hpa: 2 * k + 1 });
    applyCommand(state, { type: 'pin', vmId, ranges }, 0);
  }
  const fillPerSec = n / ((performance.now() - t) / 1000);
  gc();
  const bytesPerRange = (heapBytes() - heap0) / n;
  const pinned = state.vms.get(vmId)?.pins.size;
  if (pinned !== n) throw new Error(`expected ${n} pinned ranges, found ${String(pinned)}`);
  return { bytesPerRange, fillPerSec };
}

const results = new Map<number, Result[]>();
for (const n of SIZES) {
  const runs: Result[] = [];
  for (let run = 0; run < RUNS; run++) runs.push(measure(n));
  results.set(n, runs);
}

console.log('');
console.log(`heap bytes per pinned range in one VM (pessimistic mode, every range flagged flushOnUnpin), pinned through applyCommand in batches of ${BATCH.toLocaleString('en-US')}; median of ${RUNS} runs`);
console.log('');
console.log('| ranges | heap bytes/range | min | max | pin rate (ranges/s) | target |');
console.log('|---:|---:|---:|---:|---:|---|');
const figures: { id: string; label: string; value: number; display: string; target: string; met: boolean }[] = [];
for (const n of SIZES) {
  const runs = results.get(n) ?? [];
  const bytes = runs.map((r) => r.bytesPerRange);
  const value = median(bytes);
  const reference = n < 10_000_000;
  const target = reference ? '(reference)' : `<= ${TARGET} bytes/range`;
  console.log(`| ${n.toLocaleString('en-US')} | ${value.toFixed(1)} | ${Math.min(...bytes).toFixed(1)} | ${Math.max(...bytes).toFixed(1)} | ${fmt(median(runs.map((r) => r.fillPerSec)))} | ${target} |`);
  figures.push({
    id: reference ? 'bytes-per-range-1m' : 'bytes-per-range-10m',
    label: `Heap bytes per pinned range at ${reference ? '1 M' : '10 M'} ranges (one VM)`,
    value: Math.round(value * 10) / 10,
    display: `${value.toFixed(1)} B`,
    target,
    met: reference || value <= TARGET
  });
}
console.log('');
console.log(`FIGURES ${JSON.stringify(figures)}`);
