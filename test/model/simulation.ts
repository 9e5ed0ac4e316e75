/**
 * Drives the decision core like a VMM would, against simulated hardware and the coherency model:
 * every flush a decision demands is applied to the model (unless a test drops it on purpose),
 * every devctl `hardwareValue` is written to the simulated device, and devices emit no-snoop
 * only when their hardware bit (or an ignores-nosnoop-enable quirk) lets them.
 */
import fc from 'fast-check';
import {
  applyCommand,
  attrFlushOnUnpin,
  attrSubset,
  createState,
  DEFAULT_POLICY,
  defaultQuirksFile,
  DEVCTL_NOSNOOP_EN,
  DomainError,
  domainsOf,
  exposedDomains,
  parseDomainId,
  parsePciAddress,
  parseQuirkFile,
  parseVmId,
  type Arch,
  type CoherencyState,
  type Command,
  type CommandResult,
  type Decision,
  type DomainId,
  type MemType,
  type NoSnoopState,
  type OnEnable,
  type PciAddress,
  type PolicyMode,
  type Quirk,
  type VmId
} from '../../src/domain/index.js';
import { CoherencyModel } from './coherency-model.js';
import { HostPages } from './host-pages.js';

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
  | { t: 'unpin'; vm: number; pick: number; how: 'exact' | 'span' | 'random' }
  | { t: 'dma'; vm: number; dev: number; pick: number; off: number; write: boolean; ns: boolean }
  | { t: 'cpu'; vm: number; pick: number; off: number; write: boolean }
  | { t: 'evict'; page: number }
  | { t: 'quirks'; table: number };

const KINDS: Record<DeviceKind, { vendorId: number; deviceId: number }> = {
  igpu: { vendorId: 0x8086, deviceId: 0x9a49 }, // needs-nosnoop in the default quirk file
  nic: { vendorId: 0x15b3, deviceId: 0x1017 },
  bad: { vendorId: 0x1d0f, deviceId: 0x0001 } // ignores-nosnoop-enable in quirk tables 0 and 2
};

const DEFAULT_QUIRKS = parseQuirkFile(defaultQuirksFile);
const BAD: Quirk = { vendorId: 0x1d0f, deviceId: 0x0001, deviceMask: 0xffff, flags: ['ignores-nosnoop-enable'] };
const NIC_NEEDS: Quirk = { vendorId: 0x15b3, deviceId: 0x1017, deviceMask: 0xffff, flags: ['needs-nosnoop'] };
export const QUIRK_TABLES: readonly (readonly Quirk[])[] = [
  [...DEFAULT_QUIRKS, BAD],
  DEFAULT_QUIRKS,
  [...DEFAULT_QUIRKS, BAD, NIC_NEEDS]
];

const VM_IDS = [parseVmId('vm0'), parseVmId('vm1')];
/** vm0 is an x86 guest, vm1 an arm64 one. */
const ARCHES: readonly Arch[] = ['x86_64', 'aarch64'];
const DOMAIN_IDS = [parseDomainId('d0'), parseDomainId('d1'), parseDomainId('d2')];
const BDFS = [0, 1, 2, 3].map((i) => parsePciAddress(`0000:0${i}:00.0`));

interface SimDevice {
  readonly vm: VmId;
  readonly bdf: PciAddress;
  readonly fn: 'pf' | 'vf';
  readonly kind: DeviceKind;
  readonly hardwired: boolean;
  readonly unknown: boolean;
  /** The hardware Enable No Snoop bit; for a VF, its PF's bit as the host set it. */
  hwBit: 0 | 1;
}

interface SimPin {
  readonly vm: VmId;
  readonly iova: number;
  readonly pages: number;
  readonly hpa: number;
  readonly mmio: boolean;
}

export interface SimulationOptions {
  readonly mode: PolicyMode;
  /** Index of the demanded flush to skip, to show the model notices. */
  readonly drop?: number;
  /** Reuse released host pages (true) or always hand out fresh ones. */
  readonly reuse?: boolean;
  /**
   * The VMM reports the bit it reads back right after every write (true), or only on `report`
   * events (false: a cleared bit then keeps counting as set in the core for a while).
   */
  readonly confirm?: boolean;
}

export class Simulation {
  readonly state: CoherencyState = createState(DEFAULT_POLICY, QUIRK_TABLES[0] ?? []);
  readonly model = new CoherencyModel();
  readonly mode: PolicyMode;
  /** Pages of every demanded flush, in order. */
  readonly flushes: number[] = [];
  /** Pages the pessimistic policy would have flushed for the same decisions. */
  pessimisticPages = 0;
  /** Commands the core rejected, by error code. */
  readonly rejected = new Map<string, number>();
  readonly #drop: number;
  readonly #pages: HostPages;
  readonly #confirm: boolean;
  readonly #devices = new Map<string, SimDevice>();
  #pins: SimPin[] = [];
  #now = 0;

  constructor(options: SimulationOptions) {
    this.mode = options.mode;
    this.#drop = options.drop ?? -1;
    this.#pages = new HostPages(options.reuse ?? true);
    this.#confirm = options.confirm ?? false;
  }

  get flushedPages(): number {
    return this.flushes.reduce((a, b) => a + b, 0);
  }

  run(events: readonly SimEvent[]): this {
    for (const e of events) this.step(e);
    return this;
  }

  /** Tears every VM down (F5), so every page goes back to the host and is checked. */
  finish(): this {
    for (const vmId of [...this.state.vms.keys()]) this.#command({ type: 'delete-vm', vmId });
    return this;
  }

  step(e: SimEvent): void {
    this.#dispatch(e);
    this.#probe();
    this.#sweep();
  }

  /**
   * The strongest reader: every device that can put No-Snoop on the wire reads every page it
   * can reach. No-snoop reads change nothing, so this checks the leak invariant exhaustively
   * after each event without disturbing the run.
   */
  #sweep(): void {
    for (const device of this.#devices.values()) {
      const vm = this.state.vms.get(device.vm);
      const domainId = vm?.devices.get(device.bdf)?.domainId ?? null;
      if (vm === undefined || domainId === null || vm.domains.get(domainId)?.enforceCacheCoherency !== false) continue;
      if (!this.#emits(device)) continue;
      for (const pin of this.#pins) {
        if (pin.vm !== device.vm || pin.mmio) continue;
        const entry = vm.pins.get(pin.iova);
        if (entry === undefined || !domainsOf(vm, attrSubset(entry.attr)).includes(domainId)) continue;
        for (let p = pin.hpa; p < pin.hpa + pin.pages; p++) this.model.dmaRead(p, pin.vm, true);
      }
    }
  }

  #dispatch(e: SimEvent): void {
    const vmId = VM_IDS[e.t === 'evict' || e.t === 'quirks' ? 0 : e.vm] as VmId;
    switch (e.t) {
      case 'vm':
        this.#command({ type: 'put-vm', vmId, arch: ARCHES[e.vm] as Arch, policy: { mode: this.mode, onEnable: e.onEnable, exemptNeedsNoSnoop: e.exempt } });
        return;
      case 'delete-vm':
        this.#command({ type: 'delete-vm', vmId });
        return;
      case 'domain':
        this.#command({ type: 'put-domain', vmId, domainId: DOMAIN_IDS[e.dom] as DomainId, enforceCacheCoherency: e.coherent });
        return;
      case 'delete-domain':
        this.#command({ type: 'delete-domain', vmId, domainId: DOMAIN_IDS[e.dom] as DomainId });
        return;
      case 'device':
        this.#device(vmId, e);
        return;
      case 'delete-device':
        this.#command({ type: 'delete-device', vmId, bdf: BDFS[e.dev] as PciAddress });
        return;
      case 'reset':
        this.#reset(vmId, BDFS[e.dev] as PciAddress, e.restores);
        return;
      case 'report':
        this.#report(vmId, BDFS[e.dev] as PciAddress);
        return;
      case 'devctl':
        this.#devctl(vmId, BDFS[e.dev] as PciAddress, e.enable, e.dryRun);
        return;
      case 'pin':
        this.#pin(vmId, e);
        return;
      case 'unpin':
        this.#unpin(vmId, e);
        return;
      case 'dma':
        this.#dma(vmId, e);
        return;
      case 'cpu': {
        const pin = this.#pick(this.#pins.filter((p) => p.vm === vmId && !p.mmio), e.pick);
        if (pin === undefined) return;
        const page = pin.hpa + (e.off % pin.pages);
        if (e.write) this.model.cpuWrite(page, vmId);
        else this.model.cpuRead(page);
        return;
      }
      case 'evict':
        this.model.evict(this.#pages.anyRam(e.page));
        return;
      case 'quirks': {
        const result = this.#command({ type: 'put-quirks', quirks: QUIRK_TABLES[e.table % QUIRK_TABLES.length] ?? [] });
        for (const decision of result?.vms?.values() ?? []) this.#apply(decision);
        return;
      }
    }
  }

  // ---- the VMM side ----------------------------------------------------------------------------

  /** Runs a command; a rejection must leave the core exactly as it was. */
  #command(cmd: Command): CommandResult | undefined {
    const before = digest(this.state);
    let result: CommandResult;
    try {
      result = applyCommand(this.state, cmd, ++this.#now);
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      this.rejected.set(err.code, (this.rejected.get(err.code) ?? 0) + 1);
      const after = digest(this.state);
      if (after !== before) throw new Error(`rejected ${cmd.type} (${err.code}) changed the state`, { cause: err });
      return undefined;
    }
    if (cmd.type === 'devctl' && cmd.dryRun === true) {
      if (digest(this.state) !== before) throw new Error('a dry-run devctl changed the state');
      return result;
    }
    this.#apply(result.decision);
    this.#syncReleased();
    checkFlagInvariant(this.state);
    // Bits a policy, domain or quirk change tells the VMM to clear on devices of its VM.
    const writes = cmd.type === 'put-quirks' ? [...(result.vms ?? new Map<VmId, Decision>())] : 'vmId' in cmd ? [[cmd.vmId, result.decision] as const] : [];
    for (const [vmId, decision] of writes) {
      for (const w of decision.devices ?? []) {
        const sim = this.#devices.get(key(vmId, w.bdf));
        if (sim !== undefined) this.#writeHardware(sim, w.hardwareValue);
      }
    }
    return result;
  }

  /** Performs a decision's flush on the model, then lets a device probe what it flushed. */
  #apply(decision: Decision): void {
    this.pessimisticPages += decision.pessimisticPages;
    if (!decision.flush.required) return;
    const index = this.flushes.length;
    this.flushes.push(decision.flush.pages);
    if (index !== this.#drop) {
      for (const r of decision.flush.ranges) {
        for (let p = r.hpa; p < r.hpa + r.pages; p++) this.model.flush(p);
      }
    }
    if (decision.flush.cause === 'pin' || decision.flush.cause === 'replay') this.#pendingProbe.push(...decision.flush.ranges);
  }

  /** Host ranges flushed at map time, probed once the change they guard has taken effect. */
  #pendingProbe: { hpa: number; pages: number }[] = [];

  /**
   * The adversary: right after a map-time flush takes effect, a device that can no-snoop reads
   * each flushed page (a leak shows if the flush was skipped), the guest CPU caches it clean, and
   * the device overwrites DRAM with no-snoop, leaving a stale clean line that only the unpin
   * flush removes.
   */
  #probe(): void {
    const ranges = this.#pendingProbe;
    this.#pendingProbe = [];
    for (const r of ranges) {
      for (let page = r.hpa; page < r.hpa + r.pages; page++) {
        const pin = this.#pins.find((p) => !p.mmio && page >= p.hpa && page < p.hpa + p.pages);
        if (pin === undefined) continue;
        const emitter = this.#emitterFor(pin);
        if (emitter === undefined) continue;
        this.model.dmaRead(page, pin.vm, true);
        this.model.cpuRead(page);
        this.model.dmaWrite(page, pin.vm, true);
      }
    }
  }

  /** A device of the pin's VM, in a non-coherent domain the pin maps into, that emits no-snoop. */
  #emitterFor(pin: SimPin): SimDevice | undefined {
    const vm = this.state.vms.get(pin.vm);
    const entry = vm?.pins.get(pin.iova);
    if (vm === undefined || entry === undefined) return undefined;
    const domains = domainsOf(vm, attrSubset(entry.attr));
    for (const device of this.#devices.values()) {
      if (device.vm !== pin.vm) continue;
      const domainId = vm.devices.get(device.bdf)?.domainId ?? null;
      if (domainId === null || !domains.includes(domainId)) continue;
      if (vm.domains.get(domainId)?.enforceCacheCoherency !== false) continue;
      if (this.#emits(device)) return device;
    }
    return undefined;
  }

  /** Whether the hardware may put No-Snoop on the wire for this device. */
  #emits(device: SimDevice): boolean {
    if (this.state.quirks.flagsFor(KINDS[device.kind].vendorId, KINDS[device.kind].deviceId).has('ignores-nosnoop-enable')) return true;
    if (device.fn === 'vf') {
      const vfState = this.state.vms.get(device.vm)?.devices.get(device.bdf);
      const pf = vfState?.physfn === null || vfState === undefined ? undefined : this.#devices.get(key(device.vm, vfState.physfn));
      if (pf !== undefined) return pf.hwBit === 1;
    }
    return device.hwBit === 1;
  }

  /** Pins the core no longer holds were released: their pages go back to the host now. */
  #syncReleased(): void {
    const kept: SimPin[] = [];
    for (const pin of this.#pins) {
      const entry = this.state.vms.get(pin.vm)?.pins.get(pin.iova);
      if (entry !== undefined && entry.hpa === pin.hpa) {
        kept.push(pin);
        continue;
      }
      if (pin.mmio) continue;
      for (let p = pin.hpa; p < pin.hpa + pin.pages; p++) {
        this.model.release(p);
        this.#pages.release(p);
      }
    }
    this.#pins = kept;
    for (const [k, d] of this.#devices) if (!this.state.vms.get(d.vm)?.devices.has(d.bdf)) this.#devices.delete(k);
  }

  #report(vmId: VmId, bdf: PciAddress): void {
    const sim = this.#devices.get(key(vmId, bdf));
    const current = this.state.vms.get(vmId)?.devices.get(bdf);
    if (sim === undefined || current === undefined) return;
    this.#command({
      type: 'put-device',
      vmId,
      device: { ...current, nosnoop: truthful(sim, false) }
    });
  }

  #device(vmId: VmId, e: Extract<SimEvent, { t: 'device' }>): void {
    const bdf = BDFS[e.dev] as PciAddress;
    const existing = this.#devices.get(key(vmId, bdf));
    const domainId = e.dom === null ? null : (DOMAIN_IDS[e.dom] as DomainId);
    if (existing !== undefined) {
      // Moving an assigned device to another domain; the VMM reports what it reads.
      const current = this.state.vms.get(vmId)?.devices.get(bdf);
      if (current === undefined) return;
      const result = this.#command({ type: 'put-device', vmId, device: { ...current, domainId, nosnoop: truthful(existing, existing.unknown) } });
      if (result?.decision.devctl !== undefined) this.#writeHardware(existing, result.decision.devctl.hardwareValue);
      return;
    }
    const vf = e.fn === 'vf';
    const sim: SimDevice = {
      vm: vmId,
      bdf,
      fn: e.fn,
      kind: e.kind,
      hardwired: !vf && e.hw === 'hardwired',
      unknown: e.unknown,
      hwBit: e.hw === 'enabled' ? 1 : 0
    };
    const physfn = vf ? ([...this.#devices.values()].find((d) => d.vm === vmId && d.fn === 'pf')?.bdf ?? null) : null;
    const result = this.#command({
      type: 'put-device',
      vmId,
      device: { bdf, domainId, ...KINDS[e.kind], function: e.fn, physfn, nosnoop: truthful(sim, e.unknown) }
    });
    if (result === undefined) return;
    this.#devices.set(key(vmId, bdf), sim);
    if (result.decision.devctl !== undefined) this.#writeHardware(sim, result.decision.devctl.hardwareValue);
  }

  /** A reset vfio performs restores config space (the bit keeps its value); one that does not returns it to 1. */
  #reset(vmId: VmId, bdf: PciAddress, restores: boolean): void {
    const sim = this.#devices.get(key(vmId, bdf));
    const result = this.#command({ type: 'reset-device', vmId, bdf, restoresConfig: restores });
    if (result === undefined || sim === undefined) return;
    if (!restores && sim.fn === 'pf' && !sim.hardwired) sim.hwBit = 1;
    if (result.decision.devctl !== undefined) this.#writeHardware(sim, result.decision.devctl.hardwareValue);
  }

  #devctl(vmId: VmId, bdf: PciAddress, enable: boolean, dryRun: boolean): void {
    const sim = this.#devices.get(key(vmId, bdf));
    const result = this.#command({ type: 'devctl', vmId, bdf, write: { nosnoopEnable: enable }, dryRun });
    if (result === undefined || sim === undefined || dryRun) return;
    const outcome = result.decision.devctl;
    if (outcome === undefined) throw new Error('a devctl decision without a devctl outcome');
    this.#writeHardware(sim, outcome.hardwareValue);
  }

  /** The VMM writes DEVCTL; a VF's bit is reserved and a hardwired bit does not stick. */
  #writeHardware(sim: SimDevice, value: number): void {
    if (sim.fn === 'vf' || sim.hardwired) return;
    sim.hwBit = (value & DEVCTL_NOSNOOP_EN) !== 0 ? 1 : 0;
    if (!this.#confirm || sim.unknown) return;
    const current = this.state.vms.get(sim.vm)?.devices.get(sim.bdf);
    if (current !== undefined && (current.nosnoop !== truthful(sim, false) || current.pendingNosnoop !== null)) this.#report(sim.vm, sim.bdf);
  }

  #pin(vmId: VmId, e: Extract<SimEvent, { t: 'pin' }>): void {
    const mmio = e.mmio !== null;
    const hpa = mmio ? this.#pages.mmio(e.pages) : this.#pages.ram(e.pages);
    if (!mmio) for (let p = hpa; p < hpa + e.pages; p++) this.model.hostZero(p, vmId);
    const iova = e.slot * 3;
    const domains = e.doms === null ? null : e.doms.map((d) => DOMAIN_IDS[d] as DomainId);
    const result = this.#command({
      type: 'pin',
      vmId,
      ranges: [{ iova, pages: e.pages, hpa, mmio, memType: e.mmio ?? 'WB', domains }]
    });
    if (result === undefined) {
      if (!mmio) for (let p = hpa; p < hpa + e.pages; p++) this.#pages.release(p);
      return;
    }
    this.#pins.push({ vm: vmId, iova, pages: e.pages, hpa, mmio });
  }

  #unpin(vmId: VmId, e: Extract<SimEvent, { t: 'unpin' }>): void {
    const mine = this.#pins.filter((p) => p.vm === vmId).sort((a, b) => a.iova - b.iova);
    let iova = e.pick % 100;
    let pages = 1 + (e.pick % 3);
    const a = this.#pick(mine, e.pick);
    if (e.how !== 'random' && a !== undefined) {
      iova = a.iova;
      pages = a.pages;
      const b = mine[mine.indexOf(a) + 1];
      if (e.how === 'span' && b !== undefined) pages = b.iova + b.pages - a.iova;
    }
    this.#command({ type: 'unpin', vmId, ranges: [{ iova, pages }] });
  }

  #dma(vmId: VmId, e: Extract<SimEvent, { t: 'dma' }>): void {
    const sim = this.#devices.get(key(vmId, BDFS[e.dev] as PciAddress));
    const vm = this.state.vms.get(vmId);
    const domainId = vm?.devices.get(BDFS[e.dev] as PciAddress)?.domainId ?? null;
    if (sim === undefined || vm === undefined || domainId === null) return;
    const reachable = this.#pins.filter((p) => {
      if (p.vm !== vmId || p.mmio) return false;
      const entry = vm.pins.get(p.iova);
      return entry !== undefined && domainsOf(vm, attrSubset(entry.attr)).includes(domainId);
    });
    const pin = this.#pick(reachable, e.pick);
    if (pin === undefined) return;
    const page = pin.hpa + (e.off % pin.pages);
    const noSnoop = e.ns && this.#emits(sim) && vm.domains.get(domainId)?.enforceCacheCoherency === false;
    if (e.write) this.model.dmaWrite(page, vmId, noSnoop);
    else this.model.dmaRead(page, vmId, noSnoop);
  }

  #pick<T>(list: readonly T[], pick: number): T | undefined {
    return list.length === 0 ? undefined : list[pick % list.length];
  }

}

function key(vm: VmId, bdf: PciAddress): string {
  return `${vm}/${bdf}`;
}

/** What the VMM reads back from the device (a VF reports its PF's bit). */
function truthful(sim: SimDevice, unknown: boolean): NoSnoopState {
  if (unknown) return 'unknown';
  if (sim.hardwired) return 'hardwired-zero';
  return sim.hwBit === 1 ? 'enabled' : 'disabled';
}

/** Every pinned range mapped into an exposed domain carries flushOnUnpin; flaggedPages adds up. */
export function checkFlagInvariant(state: CoherencyState): void {
  for (const vm of state.vms.values()) {
    const exposed = exposedDomains(vm, state.quirks);
    let flagged = 0;
    vm.pins.forEach((start, pages, _hpa, attr) => {
      if (attrFlushOnUnpin(attr)) flagged += pages;
      else if (domainsOf(vm, attrSubset(attr)).some((d) => exposed.has(d))) {
        throw new Error(`VM ${vm.id}: range at page ${start} maps into an exposed domain without flushOnUnpin`);
      }
      return undefined;
    });
    if (flagged !== vm.flaggedPages) throw new Error(`VM ${vm.id}: flaggedPages ${vm.flaggedPages} != ${flagged}`);
  }
}

/** A canonical text of the whole state, to prove that a rejected command changed nothing. */
export function digest(state: CoherencyState): string {
  const vms = [...state.vms.values()].map((vm) => {
    const pins: number[] = [];
    vm.pins.forEach((s, p, h, a) => {
      pins.push(s, p, h, a);
      return undefined;
    });
    return {
      id: vm.id,
      policy: vm.policy,
      domains: [...vm.domains.values()],
      devices: [...vm.devices.values()],
      subsets: vm.subsets,
      pins,
      flaggedPages: vm.flaggedPages,
      revision: vm.revision
    };
  });
  return JSON.stringify({ vms, quirks: state.quirks.quirks });
}

// ---- event generators --------------------------------------------------------------------------

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
    { weight: 5, arbitrary: fc.record({ t: fc.constant('unpin' as const), vm: vmIdx, pick: fc.nat(), how: fc.constantFrom<'exact' | 'span' | 'random'>('exact', 'exact', 'span', 'random') }) },
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
