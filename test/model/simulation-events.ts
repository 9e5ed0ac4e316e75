/**
 * The events of the decision-core simulation (simulation.ts) and the sequences the coherency
 * property tests draw: random VM lives, and lives in which every demanded flush is necessary.
 */
import fc from 'fast-check';
import type { MemType, OnEnable } from '../../src/domain/index.js';
import type { UnpinHow } from './player/guest-pins.js';

export type DeviceKind = 'igpu' | 'nic' | 'bad';

export type SimEvent =
  | { t: 'vm'; vm: number; onEnable: OnEnable; exempt: boolean }
  | { t: 'delete-vm'; vm: number }
  | { t: 'domain'; vm: number; dom: number; coherent: boolean }
  | { t: 'delete-domain'; vm: number; dom: number }
  | {
      t: 'device';
      vm: number;
      dev: number;
      dom: number | null;
      fn: 'pf' | 'vf';
      hw: 'enabled' | 'disabled' | 'hardwired';
      unknown: boolean;
      kind: DeviceKind;
    }
  | { t: 'delete-device'; vm: number; dev: number }
  | { t: 'reset'; vm: number; dev: number; restores: boolean }
  | { t: 'report'; vm: number; dev: number }
  | { t: 'devctl'; vm: number; dev: number; enable: boolean; dryRun: boolean }
  | { t: 'pin'; vm: number; slot: number; pages: number; doms: number[] | null; mmio: MemType | null }
  | { t: 'unpin'; vm: number; pick: number; how: UnpinHow }
  | { t: 'dma'; vm: number; dev: number; pick: number; off: number; write: boolean; ns: boolean }
  | { t: 'cpu'; vm: number; pick: number; off: number; write: boolean }
  | { t: 'evict'; page: number }
  | { t: 'quirks'; table: number };

const vmIdx = fc.nat(1);
const devIdx = fc.nat(3);
const domIdx = fc.nat(2);

/** Null one time in six. */
function rarelyNull<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: 5, arbitrary: arb }, { weight: 1, arbitrary: fc.constant(null) });
}

/** A value one time in five, null otherwise. */
function sometimes<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: 1, arbitrary: arb }, { weight: 4, arbitrary: fc.constant(null) });
}

/** Any event, valid or not, weighted towards the ones that make hazards. */
export function anyEvent(): fc.Arbitrary<SimEvent> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ t: fc.constant('vm' as const), vm: vmIdx, onEnable: fc.constantFrom<OnEnable>('allow', 'deny', 'allow-needs-nosnoop'), exempt: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('delete-vm' as const), vm: vmIdx }) },
    { weight: 8, arbitrary: fc.record({ t: fc.constant('domain' as const), vm: vmIdx, dom: domIdx, coherent: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('delete-domain' as const), vm: vmIdx, dom: domIdx }) },
    {
      weight: 8,
      arbitrary: fc.record({
        t: fc.constant('device' as const),
        vm: vmIdx,
        dev: devIdx,
        dom: rarelyNull(domIdx),
        fn: fc.constantFrom<'pf' | 'vf'>('pf', 'pf', 'vf'),
        hw: fc.constantFrom<'enabled' | 'disabled' | 'hardwired'>('enabled', 'disabled', 'hardwired'),
        unknown: fc.boolean(),
        kind: fc.constantFrom<DeviceKind>('igpu', 'nic', 'bad')
      })
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('delete-device' as const), vm: vmIdx, dev: devIdx }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('reset' as const), vm: vmIdx, dev: devIdx, restores: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('report' as const), vm: vmIdx, dev: devIdx }) },
    { weight: 6, arbitrary: fc.record({ t: fc.constant('devctl' as const), vm: vmIdx, dev: devIdx, enable: fc.boolean(), dryRun: fc.boolean() }) },
    {
      weight: 12,
      arbitrary: fc.record({
        t: fc.constant('pin' as const),
        vm: vmIdx,
        slot: fc.nat(31),
        pages: fc.integer({ min: 1, max: 4 }),
        doms: sometimes(fc.uniqueArray(domIdx, { minLength: 1, maxLength: 2 })),
        mmio: sometimes(fc.constantFrom<MemType>('WB', 'UC', 'WC', 'UC-', 'WT'))
      })
    },
    { weight: 5, arbitrary: fc.record({ t: fc.constant('unpin' as const), vm: vmIdx, pick: fc.nat(), how: fc.constantFrom<UnpinHow>('exact', 'exact', 'span', 'random') }) },
    { weight: 10, arbitrary: fc.record({ t: fc.constant('dma' as const), vm: vmIdx, dev: devIdx, pick: fc.nat(), off: fc.nat(3), write: fc.boolean(), ns: fc.boolean() }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('cpu' as const), vm: vmIdx, pick: fc.nat(), off: fc.nat(3), write: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('evict' as const), page: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('quirks' as const), table: fc.nat(2) }) }
  );
}

/** A sequence that starts by creating both VMs with a domain each, so most events land. */
export function eventSequence(maxLength = 80): fc.Arbitrary<SimEvent[]> {
  const setup = fc
    .tuple(
      fc.constantFrom<OnEnable>('allow', 'deny', 'allow-needs-nosnoop'),
      fc.boolean(),
      fc.boolean(),
      fc.constantFrom<'enabled' | 'disabled' | 'hardwired'>('enabled', 'disabled', 'hardwired'),
      fc.constantFrom<DeviceKind>('igpu', 'nic', 'bad')
    )
    .map(([onEnable, exempt, coherent, hw, kind]): SimEvent[] => [
      { t: 'vm', vm: 0, onEnable, exempt },
      { t: 'vm', vm: 1, onEnable, exempt },
      { t: 'domain', vm: 0, dom: 0, coherent: false },
      { t: 'domain', vm: 0, dom: 1, coherent: true },
      { t: 'domain', vm: 1, dom: 0, coherent },
      { t: 'device', vm: 0, dev: 0, dom: 0, fn: 'pf', hw, unknown: false, kind }
    ]);
  return fc
    .tuple(setup, fc.array(anyEvent(), { minLength: 10, maxLength, size: 'max' }))
    .map(([head, tail]) => [...head, ...tail]);
}

/**
 * Sequences in which every demanded flush is necessary: one trap-mode VM whose devices report
 * truthfully and emit no-snoop whenever their bit allows, fresh host pages, and no CPU, DMA or
 * eviction traffic that could repair the cache by chance. Only the adversary's probes touch
 * memory.
 */
export function necessaryFlushSequence(): fc.Arbitrary<SimEvent[]> {
  const event: fc.Arbitrary<SimEvent> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ t: fc.constant('domain' as const), vm: fc.constant(0), dom: domIdx, coherent: fc.boolean() }) },
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant('device' as const),
        vm: fc.constant(0),
        dev: devIdx,
        dom: domIdx,
        fn: fc.constant('pf' as const),
        hw: fc.constantFrom<'enabled' | 'disabled'>('enabled', 'disabled'),
        unknown: fc.constant(false),
        kind: fc.constantFrom<DeviceKind>('igpu', 'nic')
      })
    },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('devctl' as const), vm: fc.constant(0), dev: devIdx, enable: fc.boolean(), dryRun: fc.constant(false) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('reset' as const), vm: fc.constant(0), dev: devIdx, restores: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('delete-device' as const), vm: fc.constant(0), dev: devIdx }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('delete-domain' as const), vm: fc.constant(0), dom: domIdx }) },
    {
      weight: 6,
      arbitrary: fc.record({
        t: fc.constant('pin' as const),
        vm: fc.constant(0),
        slot: fc.nat(31),
        pages: fc.integer({ min: 1, max: 3 }),
        doms: fc.constant(null),
        mmio: fc.constant(null)
      })
    },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('unpin' as const), vm: fc.constant(0), pick: fc.nat(), how: fc.constant('exact' as const) }) }
  );
  const head: SimEvent[] = [
    { t: 'vm', vm: 0, onEnable: 'allow', exempt: true },
    { t: 'domain', vm: 0, dom: 0, coherent: false }
  ];
  return fc.array(event, { minLength: 5, maxLength: 40, size: 'max' }).map((tail) => [...head, ...tail]);
}
