/**
 * The product's cache model (src/sim, runs of pages in three states) is an abstraction of the
 * page-granular coherency model the decision core was proven against (test/model: lines with
 * owners and values, DRAM, snooped and no-snoop DMA). On random sequences of the operations a
 * replay performs, both must report the same leaked and stale pages.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CacheModel } from '../../src/sim/coherency-model.js';
import { CoherencyModel } from '../model/coherency-model.js';

type Kind = 'hostZero' | 'flush' | 'noSnoopRead' | 'noSnoopWrite' | 'snoopedWrite' | 'release';
interface Op {
  op: Kind;
  hpa: number;
  pages: number;
}

const op: fc.Arbitrary<Op> = fc.record({
  op: fc.constantFrom<Kind>('hostZero', 'flush', 'noSnoopRead', 'noSnoopWrite', 'snoopedWrite', 'release'),
  hpa: fc.nat(40),
  pages: fc.integer({ min: 1, max: 12 })
});

describe('the cache model abstracts the page-granular coherency model', () => {
  it('reports the same leaked and stale pages on 2,000 random sequences', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const runs = new CacheModel();
        const pages = new CoherencyModel();
        /** Who a page was last handed to: each hand-over is a new owner, as the host reuses pages. */
        const owner = new Map<number, string>();
        let generation = 0;
        for (const { op: kind, hpa, pages: n } of ops) {
          const range = Array.from({ length: n }, (_, i) => hpa + i);
          switch (kind) {
            case 'hostZero':
              runs.hostZero(hpa, n);
              for (const p of range) {
                const who = `guest${++generation}`;
                owner.set(p, who);
                pages.hostZero(p, who);
              }
              break;
            case 'flush':
              runs.flush(hpa, n);
              for (const p of range) pages.flush(p);
              break;
            case 'noSnoopRead': {
              const before = pages.violations.length;
              for (const p of range) pages.dmaRead(p, owner.get(p) ?? 'host', true);
              expect(runs.noSnoopRead(hpa, n)).toBe(pages.violations.length - before);
              break;
            }
            case 'noSnoopWrite':
              // The adversary: the guest caches the page clean, the device writes DRAM under it.
              runs.noSnoopWrite(hpa, n);
              for (const p of range) {
                pages.cpuRead(p);
                pages.dmaWrite(p, owner.get(p) ?? 'host', true);
              }
              break;
            case 'snoopedWrite':
              runs.snoopedWrite(hpa, n);
              for (const p of range) pages.dmaWrite(p, owner.get(p) ?? 'host', false);
              break;
            case 'release': {
              const before = pages.violations.length;
              for (const p of range) pages.release(p);
              expect(runs.release(hpa, n)).toBe(pages.violations.length - before);
              // The host owns the pages again and anything in them is its own: neither model
              // follows them until they are handed over anew.
              for (const p of range) {
                pages.dmaWrite(p, 'host', false);
                owner.delete(p);
              }
              break;
            }
          }
        }
      }),
      { numRuns: 2000 }
    );
  });
});
