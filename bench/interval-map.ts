/**
 * Pinned-range map benchmark (npm run bench:core): insert, remove and lookup rates and heap
 * bytes per range at 100 k and 1 M ranges in one VM, for the B+tree PinMap and, as the baseline
 * in the same run, the obvious sorted array of range objects (binary search + splice).
 *
 * Target: >= 500 k pin+unpin operations/s at 1 M ranges, <= 200 bytes per range.
 */
import { applyCommand, createState, DEFAULT_POLICY, parseDomainId, parseVmId, PinMap } from '../src/domain/index.js';
import { fmt, gc, header, median } from './machine.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const SIZES = (process.env['BENCH_SIZES'] ?? '100000,1000000').split(',').map(Number);
const CHURN = 200_000;

interface Range {
  start: number;
  pages: number;
  hpa: number;
  attr: number;
}

/** The baseline: what one writes first. */
class SortedArrayMap {
  readonly ranges: Range[] = [];
  #find(start: number): number {
    let lo = 0;
    let hi = this.ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.ranges[mid] as Range).start < start) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  insert(start: number, pages: number, hpa: number, attr: number): boolean {
    const i = this.#find(start);
    const prev = this.ranges[i - 1];
    const next = this.ranges[i];
    if ((prev !== undefined && prev.start + prev.pages > start) || (next !== undefined && next.start < start + pages)) return false;
    this.ranges.splice(i, 0, { start, pages, hpa, attr });
    return true;
  }
  remove(start: number): boolean {
    const i = this.#find(start);
    if (this.ranges[i]?.start !== start) return false;
    this.ranges.splice(i, 1);
    return true;
  }
  overlaps(start: number, end: number): boolean {
    const i = this.#find(start);
    const prev = this.ranges[i - 1];
    const next = this.ranges[i];
    return (prev !== undefined && prev.start + prev.pages > start) || (next !== undefined && next.start < end);
  }
}

/** JS heap plus the ArrayBuffers behind typed arrays, which V8 keeps outside heapUsed. */
function heapBytes(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

interface MapLike {
  insert(start: number, pages: number, hpa: number, attr: number): boolean;
  remove(start: number): boolean;
  overlaps(start: number, end: number): boolean;
}

/** Deterministic xorshift, so every run and both structures see the same keys. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

interface Result {
  fillPerSec: number;
  randomFillPerSec: number;
  churnPerSec: number;
  lookupPerSec: number;
  bytesPerRange: number;
}

/**
 * Ranges are 2 MiB-aligned single pages 512 pages apart (a sparse vIOMMU-style layout), so the
 * churn can pin and unpin in the gaps without overlap.
 */
function measure(make: () => MapLike, n: number, seed: number, churnPairs: number): Result {
  gc();
  const heap0 = heapBytes();
  const map = make();
  let t = performance.now();
  for (let i = 0; i < n; i++) map.insert(i * 512, 1, i, 0);
  const fillPerSec = n / ((performance.now() - t) / 1000);
  gc();
  const bytesPerRange = (heapBytes() - heap0) / n;

  // Random-order fill of a second map, to show the tree does not depend on ascending input.
  // The baseline's O(n) splice makes this take minutes at 1 M, so it is measured only up to 200 k.
  if (!(make() instanceof PinMap) && n > 200_000) return finish(map, n, seed, churnPairs, fillPerSec, Number.NaN, bytesPerRange);
  const order = Array.from({ length: n }, (_, i) => i);
  const r0 = rng(seed + 7);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r0() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const random = make();
  t = performance.now();
  for (const i of order) random.insert(i * 512, 1, i, 0);
  const randomFillPerSec = n / ((performance.now() - t) / 1000);
  return finish(map, n, seed, churnPairs, fillPerSec, randomFillPerSec, bytesPerRange);
}

function finish(map: MapLike, n: number, seed: number, churn: number, fillPerSec: number, randomFillPerSec: number, bytesPerRange: number): Result {
  // Steady-state churn at n ranges: pin a page in a random gap, then unpin it.
  const r = rng(seed);
  const keys = Array.from({ length: churn }, () => Math.floor(r() * n) * 512 + 1 + Math.floor(r() * 500));
  let t = performance.now();
  for (const k of keys) {
    map.insert(k, 1, k, 0);
    map.remove(k);
  }
  const churnPerSec = (2 * churn) / ((performance.now() - t) / 1000);

  t = performance.now();
  let hits = 0;
  for (const k of keys) if (map.overlaps(k - 1, k + 1)) hits++;
  const lookupPerSec = churn / ((performance.now() - t) / 1000);
  if (hits === 0) throw new Error('lookup found nothing: the benchmark is broken');
  return { fillPerSec, randomFillPerSec, churnPerSec, lookupPerSec, bytesPerRange };
}

/** The same churn through the whole decision core: pin and unpin commands with their decisions. */
function measureCore(n: number, seed: number): number {
  const state = createState(DEFAULT_POLICY, []);
  const vmId = parseVmId('bench');
  applyCommand(state, { type: 'put-vm', vmId, arch: 'x86_64', policy: { mode: 'pessimistic' } }, 0);
  applyCommand(state, { type: 'put-domain', vmId, domainId: parseDomainId('d0'), enforceCacheCoherency: false }, 0);
  for (let i = 0; i < n; i += 10_000) {
    const ranges = [];
    for (let k = i; k < Math.min(n, i + 10_000); k++) ranges.push({ iova: k * 512, pages: 1, hpa: k });
    applyCommand(state, { type: 'pin', vmId, ranges }, 0);
  }
  const r = rng(seed);
  const churn = 50_000;
  const keys = Array.from({ length: churn }, () => Math.floor(r() * n) * 512 + 1 + Math.floor(r() * 500));
  const t = performance.now();
  for (const k of keys) {
    applyCommand(state, { type: 'pin', vmId, ranges: [{ iova: k, pages: 1, hpa: k }] }, 0);
    applyCommand(state, { type: 'unpin', vmId, ranges: [{ iova: k, pages: 1 }] }, 0);
  }
  return (2 * churn) / ((performance.now() - t) / 1000);
}

header('npm run bench:core  (node --expose-gc --import tsx bench/interval-map.ts)');
console.log(`runs: ${RUNS} per figure, median reported; churn: ${CHURN.toLocaleString('en-US')} pin+unpin pairs at steady state (baseline: ${(CHURN / 10).toLocaleString('en-US')})`);
console.log('random fill of the baseline is skipped above 200 k ranges (minutes per run); shown as n/a');
console.log('');
console.log('| ranges | structure | sequential fill /s | random fill /s | pin+unpin ops/s | overlap lookups /s | heap bytes/range |');
console.log('|---:|---|---:|---:|---:|---:|---:|');
for (const n of SIZES) {
  const rows: Record<string, Result[]> = { PinMap: [], 'sorted array (baseline)': [] };
  for (let run = 0; run < RUNS; run++) {
    rows['PinMap']?.push(measure(() => new PinMap(), n, run + 1, CHURN));
    // Fewer pairs for the baseline: each of its operations moves half the array.
    rows['sorted array (baseline)']?.push(measure(() => new SortedArrayMap(), n, run + 1, CHURN / 10));
  }
  const med = (name: string, f: (r: Result) => number): number => median((rows[name] ?? []).map(f));
  for (const name of Object.keys(rows)) {
    console.log(
      `| ${n.toLocaleString('en-US')} | ${name} | ${fmt(med(name, (r) => r.fillPerSec))} | ${fmt(med(name, (r) => r.randomFillPerSec))} | ${fmt(med(name, (r) => r.churnPerSec))} | ${fmt(med(name, (r) => r.lookupPerSec))} | ${fmt(med(name, (r) => r.bytesPerRange))} |`
    );
  }
  const ratio = (f: (r: Result) => number): string => {
    const x = med('PinMap', f) / med('sorted array (baseline)', f);
    return Number.isNaN(x) ? 'n/a' : `${x.toFixed(1)}x`;
  };
  console.log(
    `| ${n.toLocaleString('en-US')} | ratio PinMap / baseline | ${ratio((r) => r.fillPerSec)} | ${ratio((r) => r.randomFillPerSec)} | ${ratio((r) => r.churnPerSec)} | ${ratio((r) => r.lookupPerSec)} | ${ratio((r) => r.bytesPerRange)} |`
  );
}
console.log('');
const coreRates: number[] = [];
const coreN = SIZES[SIZES.length - 1] ?? 1_000_000;
for (let run = 0; run < RUNS; run++) coreRates.push(measureCore(coreN, run + 1));
console.log(`through the decision core (applyCommand pin + unpin, decisions included) at ${coreN.toLocaleString('en-US')} ranges: ${fmt(median(coreRates))} ops/s (median of ${RUNS})`);
