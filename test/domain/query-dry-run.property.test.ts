/**
 * The read-only flush query is a dry run of the change it previews. On random VM states (domains
 * coherent or not, devices with every No-Snoop state, allowed and denied enables, unconfirmed
 * clears, resets, quirk changes, subset pins, mmio), every pin and unpin is first asked as a
 * query with the same ranges: the query must name the same error, demand the same flush ranges,
 * flag exactly the ranges the change flags, and change nothing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DomainError,
  getVm,
  listPins,
  mustFlush,
  parseDomainId,
  parsePciAddress,
  POLICY_MODES,
  type Decision,
  type FlushQueryAnswer,
  type MemType,
  type NoSnoopState,
  type PolicyMode
} from '../../src/domain/index.js';
import { digest } from '../model/simulation.js';
import { Core, IGPU, NIC } from '../helpers/core.js';

const RUNS = Number(process.env['PROPERTY_RUNS'] ?? 1000);
const DOMAINS = ['d0', 'd1', 'd2'];
const BDFS = ['0000:01:00.0', '0000:02:00.0', '0000:02:00.1'];
const BAD = { vendorId: 0x1d0f, deviceId: 0x0001 };

interface Range {
  iova: number;
  pages: number;
  hpa: number;
  memType: MemType;
  mmio: boolean;
  domains: string[] | null;
}

type Step =
  | { t: 'domain'; dom: number; coherent: boolean }
  | { t: 'device'; dev: number; dom: number; nosnoop: NoSnoopState; kind: number; vf: boolean }
  | { t: 'devctl'; dev: number; enable: boolean }
  | { t: 'confirm'; dev: number; nosnoop: NoSnoopState }
  | { t: 'reset'; dev: number; restores: boolean }
  | { t: 'quirks'; bad: boolean }
  | { t: 'policy'; mode: PolicyMode }
  | { t: 'pin'; ranges: Range[] }
  | { t: 'unpin'; ranges: { iova: number; pages: number }[] };

const range: fc.Arbitrary<Range> = fc.record({
  iova: fc.nat(40),
  pages: fc.integer({ min: 1, max: 4 }),
  hpa: fc.nat(1000),
  memType: fc.constantFrom<MemType>('WB', 'WB', 'UC', 'WC', 'WT'),
  mmio: fc.boolean(),
  domains: fc.oneof(fc.constant(null), fc.constant<string[]>([]), fc.uniqueArray(fc.constantFrom(...DOMAINS), { minLength: 1, maxLength: 2 }))
});

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant('domain' as const), dom: fc.nat(2), coherent: fc.boolean() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('device' as const),
      dev: fc.nat(2),
      dom: fc.nat(2),
      nosnoop: fc.constantFrom<NoSnoopState>('enabled', 'disabled', 'hardwired-zero', 'unknown'),
      kind: fc.nat(2),
      vf: fc.boolean()
    })
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('devctl' as const), dev: fc.nat(2), enable: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('confirm' as const), dev: fc.nat(2), nosnoop: fc.constantFrom<NoSnoopState>('enabled', 'disabled') }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('reset' as const), dev: fc.nat(2), restores: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('quirks' as const), bad: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('policy' as const), mode: fc.constantFrom(...POLICY_MODES) }) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant('pin' as const), ranges: fc.array(range, { minLength: 1, maxLength: 4 }) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant('unpin' as const),
      ranges: fc.array(fc.record({ iova: fc.nat(40), pages: fc.integer({ min: 1, max: 8 }) }), { minLength: 1, maxLength: 3 })
    })
  }
);

type Outcome = { code: string } | { value: unknown };

function outcome(fn: () => Decision | FlushQueryAnswer): Outcome {
  try {
    return { value: fn() };
  } catch (err) {
    if (err instanceof DomainError) return { code: err.code };
    throw err;
  }
}

/** Applies a step that sets up state; a rejection is fine (it changes nothing). */
function setUp(core: Core, s: Exclude<Step, { t: 'pin' } | { t: 'unpin' }>): void {
  const bdf = BDFS[('dev' in s ? s.dev : 0) % BDFS.length] as string;
  try {
    switch (s.t) {
      case 'domain':
        core.domain(DOMAINS[s.dom] as string, s.coherent);
        return;
      case 'device':
        core.device(bdf, {
          domain: DOMAINS[s.dom] as string,
          nosnoop: s.nosnoop,
          kind: [NIC, IGPU, BAD][s.kind],
          ...(s.vf && bdf !== BDFS[0] ? { fn: 'vf' as const, physfn: BDFS[0] as string } : {})
        });
        return;
      case 'devctl':
        core.devctl(bdf, { nosnoopEnable: s.enable });
        return;
      case 'confirm': {
        const d = getVm(core.state, core.vm).devices.get(parsePciAddress(bdf));
        if (d !== undefined) core.device(bdf, { domain: d.domainId, nosnoop: s.nosnoop, fn: d.function, ...(d.physfn === null ? {} : { physfn: d.physfn }), kind: d });
        return;
      }
      case 'reset':
        core.reset(bdf, s.restores);
        return;
      case 'quirks':
        core.run({ type: 'put-quirks', quirks: s.bad ? [{ ...BAD, deviceMask: 0xffff, flags: ['ignores-nosnoop-enable'] }] : [] });
        return;
      case 'policy':
        core.putVm({ mode: s.mode });
        return;
    }
  } catch (err) {
    if (!(err instanceof DomainError)) throw err;
  }
}

describe('the flush query is a dry run of its change', () => {
  it(`${RUNS} random states: map ≡ pin and unmap ≡ unpin (errors, flush ranges, flags), nothing changed`, () => {
    let compared = 0;
    let flushed = 0;
    let refused = 0;
    fc.assert(
      fc.property(fc.constantFrom(...POLICY_MODES), fc.array(step, { minLength: 5, maxLength: 40 }), (mode, steps) => {
        const core = Core.withVm({ mode, onEnable: 'allow-needs-nosnoop' });
        core.domain('d0', false);
        for (const s of steps) {
          if (s.t !== 'pin' && s.t !== 'unpin') {
            setUp(core, s);
            continue;
          }
          const vm = getVm(core.state, core.vm);
          const before = digest(core.state);
          let query: Outcome;
          let run: () => Decision;
          if (s.t === 'pin') {
            const asked = s.ranges.map((r) => ({ ...r, domains: r.domains === null ? null : r.domains.map((d) => parseDomainId(d)) }));
            // A range overlapping a pinned one is a replay question for the query, a conflict for the pin.
            if (asked.some((r) => vm.pins.overlaps(r.iova, r.iova + r.pages))) continue;
            query = outcome(() => mustFlush(core.state, core.vm, 'map', asked));
            run = () => core.pinBatch(s.ranges.map((r) => ({ ...r, domains: r.domains ?? undefined })));
          } else {
            query = outcome(() => mustFlush(core.state, core.vm, 'unmap', s.ranges));
            run = () => core.run({ type: 'unpin', vmId: core.vm, ranges: s.ranges }).decision;
          }
          // The question changed nothing; the change then answers what it previewed.
          expect(digest(core.state)).toBe(before);
          const change = outcome(run);
          compared++;
          if ('code' in change) {
            refused++;
            expect(query).toEqual(change);
            continue;
          }
          const answer = (query as { value: FlushQueryAnswer }).value;
          const decision = change.value as Decision;
          expect(answer.decision.flush.ranges).toEqual(decision.flush.ranges);
          expect(answer.decision.flush.required).toBe(decision.flush.required);
          expect(answer.results.some((r) => r.required)).toBe(decision.flush.required);
          if (decision.flush.required) flushed++;
          if (s.t !== 'pin') continue;
          // Each pinned range carries flushOnUnpin exactly when the query said it would.
          const pinned = listPins(getVm(core.state, core.vm), 0, 1000);
          answer.results.forEach((res) => {
            const flag = pinned.find((p) => p.iova === res.iova)?.flushOnUnpin;
            expect(flag, `range at ${res.iova}: ${res.rule}`).toBe(res.required || res.rule === 'F4');
          });
        }
      }),
      { numRuns: RUNS }
    );
    // The states must exercise flushes and refusals, not only one of them.
    expect(flushed).toBeGreaterThan(RUNS / 4);
    expect(refused).toBeGreaterThan(RUNS / 4);
    expect(compared).toBeGreaterThan(RUNS);
  });
});
