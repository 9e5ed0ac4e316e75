/**
 * Batches of 64 ranges or more are looked up in IOVA order (each leaf of the pin map read once)
 * and answered in request order. On a VM of many pinned ranges, flagged or not, mmio or not, a
 * large batch in random order must answer exactly as its ranges asked one at a time (looked up
 * in request order): the same verdict and rule per range, the same flush ranges, and when ranges
 * are refused, the error of the first refused range in request order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainError, mustFlush, type FlushQueryAnswer, type HostRange } from '../../src/domain/index.js';
import { Core, IGPU } from '../helpers/core.js';

const RUNS = Math.max(20, Math.floor(Number(process.env['PROPERTY_RUNS'] ?? 1000) / 10));
/** Pinned ranges: 4 pages each, every 6 pages (2-page gaps). */
const PINNED = 300;
const at = (k: number): number => k * 6;

type Asked = { iova: number; pages: number };

function single(core: Core, op: 'map' | 'unmap', r: { iova: number; pages: number }): FlushQueryAnswer | DomainError {
  try {
    return mustFlush(core.state, core.vm, op, [r]);
  } catch (err) {
    if (err instanceof DomainError) return err;
    throw err;
  }
}

/** The union of host ranges, sorted and coalesced. */
function union(ranges: readonly HostRange[]): HostRange[] {
  const out: { hpa: number; pages: number }[] = [];
  for (const r of [...ranges].sort((a, b) => a.hpa - b.hpa)) {
    const last = out[out.length - 1];
    if (last !== undefined && r.hpa <= last.hpa + last.pages) last.pages = Math.max(last.pages, r.hpa + r.pages - last.hpa);
    else out.push({ ...r });
  }
  return out;
}

describe('a large flush question looked up in IOVA order', () => {
  it(`${RUNS} random batches of 64 to 200 ranges answer as their ranges one at a time`, () => {
    let refused = 0;
    let answered = 0;
    fc.assert(
      fc.property(
        fc.constantFrom<'map' | 'unmap'>('map', 'unmap'),
        fc.array(fc.tuple(fc.nat(PINNED - 1), fc.nat(9)), { minLength: 64, maxLength: 200 }),
        fc.nat(1000),
        (op, picks, seed) => {
          const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
          core.domain('d0', false);
          core.device('0000:00:02.0', { domain: 'd0', nosnoop: 'disabled', kind: IGPU });
          // Half the ranges pinned while d0 is exposed (flagged), a tenth mmio UC.
          const ranges = Array.from({ length: PINNED }, (_, k) => ({ iova: at(k), pages: 4, hpa: 0x10000 + ((k * 7919 + seed) % PINNED) * 8, ...(k % 10 === 0 ? { memType: 'UC' as const, mmio: true } : {}) }));
          core.pinBatch(ranges.slice(0, PINNED / 2));
          core.devctl('0000:00:02.0', { nosnoopEnable: true });
          core.pinBatch(ranges.slice(PINNED / 2));
          // Mostly whole pinned ranges; sometimes a sub-range (a replay question for map, a
          // bisecting unpin for unmap), a gap (a pin preview, or an unknown range) or a range
          // across two pinned ones (refused by map).
          // Half the batches ask nothing the change would refuse.
          const refusing = seed % 2 === 0;
          const asked = picks.map(([k, kind]): Asked => {
            if (!refusing && kind <= 1 && op === 'unmap') return { iova: at(k), pages: 4 };
            if (!refusing && kind === 1) return { iova: at(k) + 4, pages: 2 };
            if (kind === 0) return { iova: at(k) + 1, pages: 2 };
            if (kind === 1 && op === 'unmap') return { iova: at(k) + 4, pages: 1 };
            if (kind === 1 && op === 'map') return { iova: at(k) + 2, pages: 6 };
            return { iova: at(k), pages: 4 };
          });
          // Map questions of gaps are previews of pins: kept distinct so the pin batch itself is valid.
          const batch = op === 'map' ? asked.filter((r, i) => !asked.slice(0, i).some((o) => o.iova < r.iova + r.pages && r.iova < o.iova + o.pages)) : asked;
          if (batch.length < 64) return;
          const one = batch.map((r) => single(core, op, r));
          const firstRefused = one.find((x) => x instanceof DomainError);
          let whole: FlushQueryAnswer | DomainError;
          try {
            whole = mustFlush(core.state, core.vm, op, batch);
          } catch (err) {
            if (!(err instanceof DomainError)) throw err;
            whole = err;
          }
          if (firstRefused !== undefined) {
            refused++;
            expect(whole).toBeInstanceOf(DomainError);
            expect({ code: (whole as DomainError).code, message: (whole as DomainError).message }).toEqual({ code: firstRefused.code, message: firstRefused.message });
            return;
          }
          answered++;
          const answer = whole as FlushQueryAnswer;
          const singles = one as FlushQueryAnswer[];
          expect(answer.results.map((r) => [r.required, r.rule])).toEqual(singles.map((s) => [s.results[0]?.required, s.results[0]?.rule]));
          expect(answer.decision.flush.ranges).toEqual(union(singles.flatMap((s) => s.decision.flush.ranges)));
        }
      ),
      { numRuns: RUNS }
    );
    expect(refused).toBeGreaterThan(RUNS / 10);
    expect(answered).toBeGreaterThan(RUNS / 10);
  });
});
