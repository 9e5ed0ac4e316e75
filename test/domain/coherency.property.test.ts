/**
 * The core against the coherency model: random VM lives with every demanded flush applied must
 * never leak or corrupt; dropping any one demanded flush must be noticed; the smarter modes never
 * flush more than the pessimistic one.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { POLICY_MODES } from '../../src/domain/index.js';
import { eventSequence, necessaryFlushSequence, Simulation } from '../model/simulation.js';

/** Sequences per mode; CI runs at least 1,000. */
const RUNS = Number(process.env['PROPERTY_RUNS'] ?? 1000);

describe('coherency model: every demanded flush applied', () => {
  for (const mode of POLICY_MODES) {
    it(`${mode}: ${RUNS} random sequences, 0 leaks and 0 stale lines at release (F1-F5, W1-W7, R1)`, () => {
      let withFlush = 0;
      let rejected = 0;
      fc.assert(
        fc.property(eventSequence(), (events) => {
          const sim = new Simulation({ mode }).run(events).finish();
          if (sim.flushes.length > 0) withFlush++;
          rejected += [...sim.rejected.values()].reduce((a, b) => a + b, 0);
          expect(sim.model.violations).toEqual([]);
        }),
        { numRuns: RUNS }
      );
      // The sequences must exercise the flush rules, not just the error paths.
      expect(withFlush).toBeGreaterThan(RUNS / 2);
      expect(rejected).toBeGreaterThan(0);
    });
  }
});

describe('coherency model has teeth', () => {
  it('dropping any one demanded flush from a sequence where each is necessary yields a violation', () => {
    let checked = 0;
    fc.assert(
      fc.property(necessaryFlushSequence(), (events) => {
        const full = new Simulation({ mode: 'trap', reuse: false, confirm: true }).run(events).finish();
        expect(full.model.violations).toEqual([]);
        fc.pre(full.flushes.length > 0);
        for (let drop = 0; drop < full.flushes.length; drop++) {
          const sim = new Simulation({ mode: 'trap', reuse: false, confirm: true, drop }).run(events).finish();
          expect(sim.flushes.length, `flush #${drop} dropped`).toBe(full.flushes.length);
          expect(sim.model.violations.length, `flush #${drop} dropped`).toBeGreaterThan(0);
          checked++;
        }
      }),
      { numRuns: 300 }
    );
    expect(checked).toBeGreaterThan(300);
  });

  it('the unflushed pessimistic baseline is unsafe: skipping every flush leaks', () => {
    fc.assert(
      fc.property(necessaryFlushSequence(), (events) => {
        const full = new Simulation({ mode: 'trap', reuse: false, confirm: true }).run(events).finish();
        fc.pre(full.flushes.length > 0);
        const sim = new Simulation({ mode: 'trap', reuse: false, confirm: true, drop: 0 }).run(events).finish();
        expect(sim.model.violations.length).toBeGreaterThan(0);
      }),
      { numRuns: 100 }
    );
  });
});

describe('trap and virtualize-zero flush no more than pessimistic', () => {
  it('for the same sequence, flushed bytes(trap) <= bytes(pessimistic) >= bytes(virtualize-zero)', () => {
    let saved = 0;
    fc.assert(
      fc.property(eventSequence(), (events) => {
        const p = new Simulation({ mode: 'pessimistic' }).run(events).finish();
        const t = new Simulation({ mode: 'trap' }).run(events).finish();
        const z = new Simulation({ mode: 'virtualize-zero' }).run(events).finish();
        const pessimistic = p.flushedPages;
        const trap = t.flushedPages;
        const zero = z.flushedPages;
        expect(trap).toBeLessThanOrEqual(pessimistic);
        expect(zero).toBeLessThanOrEqual(pessimistic);
        // Each decision's pessimisticPages (the "bytes avoided" baseline) adds up to what the
        // pessimistic run really flushed.
        expect(p.pessimisticPages).toBe(pessimistic);
        expect(t.pessimisticPages).toBe(pessimistic);
        expect(z.pessimisticPages).toBe(pessimistic);
        if (trap < pessimistic) saved++;
      }),
      { numRuns: 500 }
    );
    // Not vacuous: the smarter policy does save flushes on a good share of sequences.
    expect(saved).toBeGreaterThan(50);
  });
});
