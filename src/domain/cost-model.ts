/**
 * The flush cost model: how long a flush of host ranges takes on a CPU, by method. Pure; the
 * worker pool runs `planFlush`, the tests check it against the series' measurement.
 *
 * Sources (see README "Cost model"):
 * - x86 CLFLUSHOPT: Yan Zhao's cover letter measured +1233 M cycles to map an 8 GiB guest with
 *   every page flushed (4.49 GHz): 134 M lines, about 9.2 cycles a line including the two
 *   mb() fences the kernel puts around each 4 KiB page. We split it into 9.0 cycles a line and
 *   13 cycles a fence, which reproduces the figure within 3%.
 * - x86 CLFLUSH (legacy, serialising): 1 MiB in 1.59 ms on an older CPU, about 97 ns a line.
 * - x86 WBINVD: a whole-system stall; about 200 ms reported on a 128-core Xeon 8369B. Only when a
 *   policy allows it above a size threshold.
 * - arm64 DC CIVAC: no published figure; an estimate of 10 cycles a line and one DSB per range
 *   at 3.0 GHz. Configurable.
 */
import { FLUSH_METHODS, type Arch, type FlushMethod, type Policy } from './policy.js';

export const CACHE_LINE_BYTES = 64;
export const LINES_PER_PAGE = 4096 / CACHE_LINE_BYTES;

export interface CostModel {
  readonly clockGhz: Readonly<Record<Arch, number>>;
  readonly clflushoptCyclesPerLine: number;
  readonly clflushCyclesPerLine: number;
  /** mb() (MFENCE) cost; two per 4 KiB page around the line flushes. */
  readonly fenceCycles: number;
  /** WBINVD stall, cycles, per call. */
  readonly wbinvdCycles: number;
  readonly dcCivacCyclesPerLine: number;
  /** DSB after each range of DC CIVAC. */
  readonly dsbCycles: number;
}

export const DEFAULT_COST_MODEL: CostModel = Object.freeze({
  clockGhz: Object.freeze({ x86_64: 4.49, aarch64: 3.0 }),
  clflushoptCyclesPerLine: 9.0,
  clflushCyclesPerLine: 435, // 97 ns at 4.49 GHz
  fenceCycles: 13,
  wbinvdCycles: 898_000_000, // 200 ms at 4.49 GHz
  dcCivacCyclesPerLine: 10,
  dsbCycles: 50
});

export const PLANNED_METHODS = [...FLUSH_METHODS, 'wbinvd'] as const;
export type PlannedMethod = FlushMethod | 'wbinvd';

export interface FlushReceipt {
  readonly method: PlannedMethod;
  /** Coalesced host ranges flushed. */
  readonly ranges: number;
  readonly pages: number;
  readonly lines: number;
  readonly fences: number;
  readonly chunks: number;
  readonly modeledCycles: number;
  readonly modeledNs: number;
}

/**
 * Sorts and merges [hpa, pages] pairs (adjacent ranges joined, overlaps counted once). Returns a
 * new array of pairs; the input is left as it is.
 */
export function coalescePairs(pairs: Float64Array): Float64Array {
  const n = pairs.length >> 1;
  if (n === 0) return new Float64Array(0);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) if ((pairs[2 * i] as number) < (pairs[2 * i - 2] as number)) sorted = false;
  // Replays walk ranges in IOVA order, which is usually host order too: skip the sort then.
  if (!sorted) order.sort((a, b) => (pairs[2 * a] as number) - (pairs[2 * b] as number));
  const out = new Float64Array(2 * n);
  let k = 0;
  let start = pairs[2 * (order[0] as number)] as number;
  let end = start + (pairs[2 * (order[0] as number) + 1] as number);
  for (let j = 1; j < n; j++) {
    const i = order[j] as number;
    const s = pairs[2 * i] as number;
    const e = s + (pairs[2 * i + 1] as number);
    if (s <= end) {
      if (e > end) end = e;
    } else {
      out[k++] = start;
      out[k++] = end - start;
      start = s;
      end = e;
    }
  }
  out[k++] = start;
  out[k++] = end - start;
  return out.slice(0, k);
}

/** Prices a flush of coalesced [hpa, pages] pairs on `arch` under `policy`. */
export function planFlush(
  coalesced: Float64Array,
  arch: Arch,
  policy: Pick<Policy, 'flushMethod' | 'wbinvdAbovePages'>,
  chunkPages: number,
  model: CostModel = DEFAULT_COST_MODEL
): FlushReceipt {
  let pages = 0;
  let chunks = 0;
  const ranges = coalesced.length >> 1;
  for (let i = 0; i < ranges; i++) {
    const p = coalesced[2 * i + 1] as number;
    pages += p;
    chunks += Math.ceil(p / chunkPages);
  }
  const lines = pages * LINES_PER_PAGE;
  const ghz = model.clockGhz[arch];
  let method: PlannedMethod = policy.flushMethod;
  let fences = 0;
  let cycles: number;
  if (arch === 'x86_64' && policy.wbinvdAbovePages !== null && pages > policy.wbinvdAbovePages) {
    method = 'wbinvd';
    cycles = model.wbinvdCycles;
  } else if (method === 'dc-civac') {
    fences = ranges;
    cycles = lines * model.dcCivacCyclesPerLine + fences * model.dsbCycles;
  } else {
    fences = 2 * pages;
    const perLine = method === 'clflush' ? model.clflushCyclesPerLine : model.clflushoptCyclesPerLine;
    cycles = lines * perLine + fences * model.fenceCycles;
  }
  return { method, ranges, pages, lines, fences, chunks, modeledCycles: Math.round(cycles), modeledNs: Math.round(cycles / ghz) };
}
