/**
 * The scenarios the host model plays: topologies of PFs and VFs, server defaults, and random
 * event sequences (the issue's hosts, and hosts where guests' enables replay pinned pages for
 * the VMM protocol).
 */
import fc from 'fast-check';
import { POLICY_MODES, type MemType, type OnEnable, type PolicyDefaults, type PolicyMode } from '../../src/domain/index.js';
import { FUNCTIONS, HOST_QUIRK_TABLES, VM_IDS, type FnKind, type HostEvent, type PfSpec, type Scenario, type VfReport } from './host-topology.js';
import type { UnpinHow } from './player/guest-pins.js';

const vmIdx = fc.nat(VM_IDS.length - 1);
/** d0 and d1 exist from the start; d2 only once an event creates it. */
const domIdx = fc.constantFrom(0, 0, 1, 1, 2);
const fnIdx = fc.nat(FUNCTIONS - 1);
const onEnables = fc.constantFrom<OnEnable>('allow', 'deny', 'allow-needs-nosnoop');
const tableIdx = fc.nat(HOST_QUIRK_TABLES.length - 1);

/** `usual` `weight` times as often as `unusual`. */
function weighted<T>(usual: T, unusual: T, weight = 5): fc.Arbitrary<T> {
  return fc.oneof({ weight, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: fc.constant(unusual) });
}

/** A value one time in three, null otherwise. */
function sometimes<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> {
  return rarely(arb, 3);
}

/** A value one time in `n`, null otherwise. */
function rarely<T>(arb: fc.Arbitrary<T>, n: number): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: 1, arbitrary: arb }, { weight: n - 1, arbitrary: fc.constant(null) });
}

/**
 * PF0 with 2 VFs, PF1 with 1, PF2 with none (FUNCTIONS = 6): kinds, hardwired and unreadable bits,
 * VF reports. `clearBits` favours hosts whose VMMs cleared Enable No Snoop and can read it back
 * (mostly NICs, bits readable, VFs reporting 0 or their PF's bit): their domains start unexposed,
 * so that guests' enables replay pinned pages.
 */
export function topology(clearBits = false): fc.Arbitrary<PfSpec[]> {
  const kinds: FnKind[] = clearBits ? ['nic', 'nic', 'igpu', 'bad'] : ['igpu', 'nic', 'bad'];
  const reports: VfReport[] = clearBits ? ['disabled', 'pf-bit', 'pf-bit', 'unknown'] : ['disabled', 'pf-bit', 'unknown'];
  const pf = (vfs: number): fc.Arbitrary<PfSpec> =>
    fc.record({
      kind: fc.constantFrom<FnKind>(...kinds),
      hardwired: weighted(false, true),
      unreadable: weighted(false, true, clearBits ? 20 : 7),
      // Enable No Snoop resets to 1 and most devices keep it ("NoSnoop+" in lspci).
      bit: clearBits ? weighted<0 | 1>(0, 1, 3) : weighted<0 | 1>(1, 0, 3),
      vfs: fc.array(fc.constantFrom<VfReport>(...reports), { minLength: vfs, maxLength: vfs })
    });
  return fc.tuple(pf(2), pf(1), pf(0)).map((t) => [...t]);
}

export function policyDefaults(mode?: PolicyMode): fc.Arbitrary<PolicyDefaults> {
  return fc.record({ mode: mode === undefined ? fc.constantFrom(...POLICY_MODES) : fc.constant(mode), onEnable: onEnables, exemptNeedsNoSnoop: fc.boolean() });
}

export interface EventWeights {
  readonly restart?: number;
  /** `vmm` events (a VMM performs a flush job it was told of); none by default. */
  readonly vmm?: number;
  /** Guest DEVCTL writes (default 8). */
  readonly devctl?: number;
  /** Functions moved between VMs and domains (default 8). */
  readonly assign?: number;
}

/** Any event, valid or not, weighted towards the ones that make hazards; live policy changes favour `mode`. */
export function hostEvent(mode: PolicyMode, weights: EventWeights = {}): fc.Arbitrary<HostEvent> {
  const modes = fc.oneof({ weight: 3, arbitrary: fc.constant(mode) }, { weight: 2, arbitrary: fc.constantFrom(...POLICY_MODES) });
  return fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant('vm' as const),
        vm: vmIdx,
        mode: sometimes(modes),
        onEnable: sometimes(onEnables),
        exempt: sometimes(fc.boolean()),
        overrides: sometimes(fc.array(fc.record({ fn: fnIdx, onEnable: fc.constantFrom<'allow' | 'deny'>('allow', 'deny') }), { minLength: 1, maxLength: 3 }))
      })
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('delete-vm' as const), vm: vmIdx }) },
    { weight: 5, arbitrary: fc.record({ t: fc.constant('domain' as const), vm: vmIdx, dom: domIdx, coherent: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('delete-domain' as const), vm: vmIdx, dom: domIdx }) },
    { weight: weights.assign ?? 8, arbitrary: fc.record({ t: fc.constant('assign' as const), fn: fnIdx, vm: vmIdx, dom: fc.option(domIdx, { freq: 6, nil: null }) }) }, // null 1 in 6
    { weight: 2, arbitrary: fc.record({ t: fc.constant('unassign' as const), fn: fnIdx }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('host-bit' as const), fn: fnIdx, bit: fc.constantFrom<0 | 1>(0, 1) }) },
    {
      weight: weights.devctl ?? 8,
      arbitrary: fc.record({
        t: fc.constant('devctl' as const),
        fn: fnIdx,
        enable: fc.boolean(),
        dryRun: weighted(false, true, 4),
        value: sometimes(fc.constantFrom(0x2010, 0x0010, 0x20f0, 0xa010, 0x2210))
      })
    },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('reset' as const), fn: fnIdx, restoresConfig: fc.boolean() }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('hw-write' as const), pick: fc.nat() }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('confirm' as const), fn: fnIdx }) },
    {
      weight: 12,
      arbitrary: fc.record({
        t: fc.constant('pin' as const),
        vm: vmIdx,
        slot: fc.nat(31),
        pages: fc.integer({ min: 1, max: 4 }),
        doms: rarely(fc.uniqueArray(domIdx, { minLength: 1, maxLength: 2 }), 3),
        mmio: rarely(fc.constantFrom<MemType>('WB', 'UC', 'WC', 'UC-', 'WT'), 6)
      })
    },
    { weight: 5, arbitrary: fc.record({ t: fc.constant('unpin' as const), vm: vmIdx, pick: fc.nat(), how: fc.constantFrom<UnpinHow>('exact', 'exact', 'span', 'random') }) },
    { weight: 6, arbitrary: fc.record({ t: fc.constant('dma' as const), fn: fnIdx, pick: fc.nat(), off: fc.nat(3), write: fc.boolean(), ns: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('cpu' as const), vm: vmIdx, pick: fc.nat(), off: fc.nat(3), write: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('evict' as const), page: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('quirks' as const), table: tableIdx }) },
    { weight: weights.restart ?? 1, arbitrary: fc.record({ t: fc.constant('restart' as const), defaults: policyDefaults(), table: tableIdx }) },
    ...(weights.vmm === undefined ? [] : [{ weight: weights.vmm, arbitrary: fc.record({ t: fc.constant('vmm' as const), pick: fc.nat() }) }])
  );
}

/**
 * A host whose VMs (up to three) start in `mode` (by the server defaults or explicitly), each with
 * a non-coherent d0 and a d1 of either kind, and most functions already assigned somewhere (a VF
 * half the time in its PF's VM, otherwise anywhere), then random events.
 */
export function hostScenario(mode: PolicyMode, options: { maxLength?: number; clearBits?: boolean; onEnable?: OnEnable } & EventWeights = {}): fc.Arbitrary<Scenario> {
  const onEnable = options.onEnable === undefined ? sometimes(onEnables) : fc.constant(options.onEnable);
  const vmSetup = fc.record({ explicit: fc.boolean(), onEnable, exempt: sometimes(fc.boolean()), coherent: fc.boolean() });
  // On the host 1 in 4; a VF with `withPf` goes to its PF's VM.
  const placement = fc.option(fc.record({ vm: vmIdx, dom: fc.nat(1), withPf: fc.boolean() }), { freq: 4, nil: null });
  return fc
    .record({
      pfs: topology(options.clearBits),
      config: fc.record({ defaults: policyDefaults(mode), table: tableIdx }),
      // Lengths may shrink to nothing, so a counterexample keeps only the events it needs.
      vms: fc.array(vmSetup, { minLength: 1, maxLength: VM_IDS.length, size: 'max' }),
      placements: fc.array(placement, { maxLength: FUNCTIONS, size: 'max' }).map((ps) => (options.clearBits === true ? ps.map((p) => (p === null ? null : { ...p, withPf: true })) : ps)),
      tail: fc.array(hostEvent(mode, options), { maxLength: options.maxLength ?? 300, size: 'max' })
    })
    .map(({ pfs, config, vms, placements, tail }) => {
      const head: HostEvent[] = [];
      vms.forEach((v, vm) => {
        head.push({ t: 'vm', vm, mode: v.explicit ? mode : null, onEnable: v.onEnable, exempt: v.exempt });
        head.push({ t: 'domain', vm, dom: 0, coherent: false }, { t: 'domain', vm, dom: 1, coherent: v.coherent });
      });
      // Functions are numbered PF first, then its VFs (HostHardware's constructor).
      let pfVm: number | null = null;
      let fn = 0;
      for (const pf of pfs) {
        for (let i = 0; i <= pf.vfs.length; i++, fn++) {
          const p = placements[fn] ?? null;
          const vm: number | null = p === null ? null : i > 0 && p.withPf && pfVm !== null ? pfVm : p.vm;
          if (i === 0) pfVm = vm;
          if (p !== null && vm !== null) head.push({ t: 'assign', fn, vm, dom: p.dom });
        }
      }
      return { pfs, config, events: [...head, ...tail] };
    });
}

/**
 * For the VMM protocol: hosts where guests' enables replay pinned pages. Up to three VMs in trap
 * mode that allow enables, non-coherent domains, every PF with its VFs in one VM and domain, bits
 * mostly clear and readable (so domains start unexposed and pages are pinned without a flush),
 * then random events rich in DEVCTL writes and in `vmm` events (a VMM performing a job late).
 */
export function protocolScenario(maxLength = 150): fc.Arbitrary<Scenario> {
  return fc
    .record({
      pfs: topology(true),
      config: fc.record({ defaults: policyDefaults('trap'), table: tableIdx }),
      // Often one VM with every PF in d0: two guests' enables then meet in one domain.
      vms: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: VM_IDS.length })),
      groups: fc.array(fc.record({ vm: vmIdx, dom: fc.oneof(fc.constant(0), fc.nat(1)) }), { minLength: 3, maxLength: 3 }),
      tail: fc.array(hostEvent('trap', { vmm: 5, devctl: 24, assign: 1, restart: 2 }), { maxLength, size: 'max' })
    })
    .map(({ pfs, config, vms, groups, tail }) => {
      const head: HostEvent[] = [];
      for (let vm = 0; vm < vms; vm++) {
        head.push({ t: 'vm', vm, mode: 'trap', onEnable: 'allow', exempt: null });
        head.push({ t: 'domain', vm, dom: 0, coherent: false }, { t: 'domain', vm, dom: 1, coherent: false });
      }
      let fn = 0;
      pfs.forEach((pf, p) => {
        const g = groups[p] as { vm: number; dom: number };
        for (let i = 0; i <= pf.vfs.length; i++, fn++) head.push({ t: 'assign', fn, vm: g.vm % vms, dom: g.dom });
      });
      // Pages pinned before any enable: an allowed enable replays them.
      for (let vm = 0; vm < vms; vm++) for (const slot of [20, 24]) head.push({ t: 'pin', vm, slot, pages: 2, doms: null, mmio: null });
      return { pfs, config, events: [...head, ...tail] };
    });
}
