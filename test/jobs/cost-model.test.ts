import { describe, expect, it } from 'vitest';
import { coalescePairs, DEFAULT_COST_MODEL, planFlush } from '../../src/domain/index.js';

const GiB = 262_144; // pages
const x86 = { flushMethod: 'clflushopt' as const, wbinvdAbovePages: null };

describe('cost model', () => {
  it("reproduces the series' cover letter: 8 GiB with CLFLUSHOPT is about +1233 M cycles (within 15%)", () => {
    const r = planFlush(new Float64Array([0x100000, 8 * GiB]), 'x86_64', x86, GiB);
    expect(r.method).toBe('clflushopt');
    expect(r.lines).toBe(134_217_728);
    expect(Math.abs(r.modeledCycles - 1_233_000_000) / 1_233_000_000).toBeLessThan(0.15);
    expect(r.modeledNs).toBe(Math.round(r.modeledCycles / 4.49));
    expect(r.fences).toBe(2 * 8 * GiB);
    expect(r.chunks).toBe(8);
  });

  it('CLFLUSH is far slower than CLFLUSHOPT', () => {
    const opt = planFlush(new Float64Array([0, GiB]), 'x86_64', x86, GiB);
    const legacy = planFlush(new Float64Array([0, GiB]), 'x86_64', { flushMethod: 'clflush', wbinvdAbovePages: null }, GiB);
    expect(legacy.method).toBe('clflush');
    expect(legacy.modeledCycles / opt.modeledCycles).toBeGreaterThan(20);
  });

  it('WBINVD only above the policy threshold, as a fixed whole-system stall', () => {
    const policy = { flushMethod: 'clflushopt' as const, wbinvdAbovePages: 4 * GiB };
    expect(planFlush(new Float64Array([0, 4 * GiB]), 'x86_64', policy, GiB).method).toBe('clflushopt');
    const big = planFlush(new Float64Array([0, 64 * GiB]), 'x86_64', policy, GiB);
    expect(big.method).toBe('wbinvd');
    expect(big.modeledCycles).toBe(DEFAULT_COST_MODEL.wbinvdCycles);
  });

  it('arm64 flushes by line with DC CIVAC and one DSB per range', () => {
    const r = planFlush(new Float64Array([0, 16, 100, 16]), 'aarch64', { flushMethod: 'dc-civac', wbinvdAbovePages: null }, GiB);
    expect(r).toMatchObject({ method: 'dc-civac', ranges: 2, lines: 32 * 64, fences: 2 });
    expect(r.modeledNs).toBe(Math.round(r.modeledCycles / 3.0));
  });

  it('coalesces: sorts, merges adjacent, counts overlaps once', () => {
    expect([...coalescePairs(new Float64Array([10, 2, 0, 4, 4, 1, 12, 3, 13, 1, 100, 1]))]).toEqual([0, 5, 10, 5, 100, 1]);
    expect([...coalescePairs(new Float64Array([]))]).toEqual([]);
  });
});
