/**
 * Drives the decision core like a VMM would, against the player's hardware (test/model/player):
 * every flush a decision demands is performed on the host's memory (unless a test skips one on
 * purpose), every devctl `hardwareValue` is written to the device, and devices emit No-Snoop only
 * when their hardware bit (or an ignores-nosnoop-enable quirk) lets them.
 *
 * Where things sit (a device's domain, which domains a range maps into) is read from the core:
 * this model checks the core's flushes against the hardware, not its bookkeeping (the host model,
 * host-simulation.ts, keeps its own).
 */
import {
  applyCommand,
  attrSubset,
  createState,
  DEFAULT_POLICY,
  defaultQuirksFile,
  DomainError,
  domainsOf,
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
  type NoSnoopState,
  type PciAddress,
  type PolicyMode,
  type Quirk,
  type VmId
} from '../../src/domain/index.js';
import type { CoherencyModel } from './coherency-model.js';
import { checkFlagInvariant, digest } from './core-state.js';
import { FlushLog } from './player/flush-log.js';
import { GuestPins, type PinnedRange } from './player/guest-pins.js';
import { HostMemory } from './player/host-memory.js';
import { HostPages } from './player/host-pages.js';
import { PciFunction } from './player/pci-function.js';
import { pick, type Range } from './player/ranges.js';
import type { DeviceKind, SimEvent } from './simulation-events.js';

export { checkFlagInvariant, digest } from './core-state.js';
export { anyEvent, eventSequence, necessaryFlushSequence, type DeviceKind, type SimEvent } from './simulation-events.js';

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

/** A device assigned to a VM: the hardware function, and what its VMM knows of it. */
class SimDevice extends PciFunction {
  declare readonly bdf: PciAddress;
  /** The VM (index into VM_IDS). */
  readonly vm: number;
  readonly kind: DeviceKind;
  /** The VMM reports the bit as `unknown` when it attaches the device (it reads it on a report). */
  readonly unknown: boolean;
  /** A VF's PF as the VMM named it at attach: whichever device sits at that address in the VM governs the VF. */
  readonly physfn: PciAddress | null;

  constructor(vm: number, e: Extract<SimEvent, { t: 'device' }>, physfn: PciAddress | null) {
    const vf = e.fn === 'vf';
    super({ bdf: BDFS[e.dev] as PciAddress, fn: e.fn, ...KINDS[e.kind], hardwired: !vf && e.hw === 'hardwired', bit: e.hw === 'enabled' ? 1 : 0 });
    this.vm = vm;
    this.kind = e.kind;
    this.unknown = e.unknown;
    this.physfn = physfn;
  }

  /** What the VMM reports for the device: what it reads back, unless it reports `unknown`. */
  report(unknown: boolean): NoSnoopState {
    return unknown ? 'unknown' : this.readBack();
  }
}

type SimPin = PinnedRange;

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
  readonly model: CoherencyModel;
  readonly mode: PolicyMode;
  /** Pages of every demanded flush, in order. */
  readonly flushes: readonly number[];
  /** Pages the pessimistic policy would have flushed for the same decisions. */
  pessimisticPages = 0;
  /** Commands the core rejected, by error code. */
  readonly rejected = new Map<string, number>();
  readonly #memory: HostMemory;
  readonly #log: FlushLog;
  readonly #confirm: boolean;
  readonly #devices = new Map<string, SimDevice>();
  readonly #pins = new GuestPins<SimPin>();
  /** Host ranges flushed at map time, probed once the change they guard has taken effect. */
  #pendingProbe: Range[] = [];
  #now = 0;

  constructor(options: SimulationOptions) {
    this.mode = options.mode;
    this.#memory = new HostMemory(new HostPages({ reuse: options.reuse ?? true }));
    this.#log = new FlushLog(this.#memory, options.drop ?? -1);
    this.model = this.#memory.model;
    this.flushes = this.#log.flushes;
    this.#confirm = options.confirm ?? false;
  }

  get flushedPages(): number {
    return this.#log.pages;
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
      const domainId = this.#nonCoherentDomain(device);
      if (domainId === null || !this.#emits(device)) continue;
      const owner = VM_IDS[device.vm] as VmId;
      for (const pin of this.#reachable(device.vm, domainId)) {
        for (let p = pin.hpa; p < pin.hpa + pin.pages; p++) this.#memory.read(p, owner);
      }
    }
  }

  #dispatch(e: SimEvent): void {
    const vm = e.t === 'evict' || e.t === 'quirks' ? 0 : e.vm;
    const vmId = VM_IDS[vm] as VmId;
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
        this.#device(vm, e);
        return;
      case 'delete-device':
        this.#command({ type: 'delete-device', vmId, bdf: BDFS[e.dev] as PciAddress });
        return;
      case 'reset':
        this.#reset(vm, BDFS[e.dev] as PciAddress, e.restores);
        return;
      case 'report':
        this.#report(vm, BDFS[e.dev] as PciAddress);
        return;
      case 'devctl':
        this.#devctl(vm, BDFS[e.dev] as PciAddress, e.enable, e.dryRun);
        return;
      case 'pin':
        this.#pin(vm, e);
        return;
      case 'unpin': {
        const { iova, pages } = this.#pins.unpinRange(vm, e.pick, e.how);
        this.#command({ type: 'unpin', vmId, ranges: [{ iova, pages }] });
        return;
      }
      case 'dma':
        this.#dma(vm, e);
        return;
      case 'cpu': {
        const page = this.#pins.guestPage(vm, e.pick, e.off);
        if (page !== undefined) this.#memory.cpu(page, vmId, e.write);
        return;
      }
      case 'evict':
        this.#memory.evict(e.page);
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
        const sim = this.#devices.get(key(VM_IDS.indexOf(vmId), w.bdf));
        if (sim !== undefined) this.#writeHardware(sim, w.hardwareValue);
      }
    }
    return result;
  }

  /** Performs a decision's flush, then lets a device probe what it flushed. */
  #apply(decision: Decision): void {
    this.pessimisticPages += decision.pessimisticPages;
    if (!decision.flush.required) return;
    this.#log.perform(decision.flush.ranges, decision.flush.pages);
    if (decision.flush.cause === 'pin' || decision.flush.cause === 'replay') this.#pendingProbe.push(...decision.flush.ranges);
  }

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
        const pin = this.#pins.all.find((p) => !p.mmio && page >= p.hpa && page < p.hpa + p.pages);
        if (pin === undefined || !this.#reachedByNoSnoop(pin)) continue;
        const owner = VM_IDS[pin.vm] as VmId;
        this.#memory.read(page, owner);
        this.#memory.overwrite(page, owner);
      }
    }
  }

  /** Whether a device of the pin's VM, in a non-coherent domain the pin maps into, emits No-Snoop. */
  #reachedByNoSnoop(pin: SimPin): boolean {
    const vm = this.state.vms.get(VM_IDS[pin.vm] as VmId);
    const entry = vm?.pins.get(pin.iova);
    if (vm === undefined || entry === undefined) return false;
    const domains = domainsOf(vm, attrSubset(entry.attr));
    for (const device of this.#devices.values()) {
      if (device.vm !== pin.vm) continue;
      const domainId = this.#nonCoherentDomain(device);
      if (domainId !== null && domains.includes(domainId) && this.#emits(device)) return true;
    }
    return false;
  }

  /** The domain the core holds the device in, if that domain does not force snooping. */
  #nonCoherentDomain(device: SimDevice): DomainId | null {
    const vm = this.state.vms.get(VM_IDS[device.vm] as VmId);
    const domainId = vm?.devices.get(device.bdf)?.domainId ?? null;
    if (vm === undefined || domainId === null || vm.domains.get(domainId)?.enforceCacheCoherency !== false) return null;
    return domainId;
  }

  /** RAM ranges of VM `vm` that the core maps into `domainId`. */
  #reachable(vm: number, domainId: DomainId): SimPin[] {
    const core = this.state.vms.get(VM_IDS[vm] as VmId);
    if (core === undefined) return [];
    return this.#pins.all.filter((p) => {
      if (p.vm !== vm || p.mmio) return false;
      const entry = core.pins.get(p.iova);
      return entry !== undefined && domainsOf(core, attrSubset(entry.attr)).includes(domainId);
    });
  }

  /** Whether the hardware may put No-Snoop on the wire for this device (a VF: by the device at its PF's address). */
  #emits(device: SimDevice): boolean {
    const pf = device.fn === 'vf' && device.physfn !== null ? (this.#devices.get(key(device.vm, device.physfn)) ?? null) : null;
    return device.emits((f) => this.state.quirks.flagsFor(f.vendorId, f.deviceId).has('ignores-nosnoop-enable'), pf);
  }

  /** Pins the core no longer holds were unmapped: their pages go back to the host now. */
  #syncReleased(): void {
    const held = (pin: SimPin): boolean => this.state.vms.get(VM_IDS[pin.vm] as VmId)?.pins.get(pin.iova)?.hpa === pin.hpa;
    for (const pin of this.#pins.unmap((p) => !held(p))) this.#memory.release(pin);
    for (const [k, d] of this.#devices) if (!this.state.vms.get(VM_IDS[d.vm] as VmId)?.devices.has(d.bdf)) this.#devices.delete(k);
  }

  #report(vm: number, bdf: PciAddress): void {
    const vmId = VM_IDS[vm] as VmId;
    const sim = this.#devices.get(key(vm, bdf));
    const current = this.state.vms.get(vmId)?.devices.get(bdf);
    if (sim === undefined || current === undefined) return;
    this.#command({
      type: 'put-device',
      vmId,
      device: { ...current, nosnoop: sim.report(false) }
    });
  }

  #device(vm: number, e: Extract<SimEvent, { t: 'device' }>): void {
    const vmId = VM_IDS[vm] as VmId;
    const bdf = BDFS[e.dev] as PciAddress;
    const existing = this.#devices.get(key(vm, bdf));
    const domainId = e.dom === null ? null : (DOMAIN_IDS[e.dom] as DomainId);
    if (existing !== undefined) {
      // Moving an assigned device to another domain; the VMM reports what it reads.
      const current = this.state.vms.get(vmId)?.devices.get(bdf);
      if (current === undefined) return;
      const result = this.#command({ type: 'put-device', vmId, device: { ...current, domainId, nosnoop: existing.report(existing.unknown) } });
      if (result?.decision.devctl !== undefined) this.#writeHardware(existing, result.decision.devctl.hardwareValue);
      return;
    }
    const physfn = e.fn === 'vf' ? ([...this.#devices.values()].find((d) => d.vm === vm && d.fn === 'pf')?.bdf ?? null) : null;
    const sim = new SimDevice(vm, e, physfn);
    const result = this.#command({
      type: 'put-device',
      vmId,
      device: { bdf, domainId, ...KINDS[e.kind], function: e.fn, physfn, nosnoop: sim.report(e.unknown) }
    });
    if (result === undefined) return;
    this.#devices.set(key(vm, bdf), sim);
    if (result.decision.devctl !== undefined) this.#writeHardware(sim, result.decision.devctl.hardwareValue);
  }

  /** A reset vfio performs restores config space (the bit keeps its value); one that does not returns it to 1. */
  #reset(vm: number, bdf: PciAddress, restores: boolean): void {
    const sim = this.#devices.get(key(vm, bdf));
    const result = this.#command({ type: 'reset-device', vmId: VM_IDS[vm] as VmId, bdf, restoresConfig: restores });
    if (result === undefined || sim === undefined) return;
    if (!restores) sim.coldReset();
    if (result.decision.devctl !== undefined) this.#writeHardware(sim, result.decision.devctl.hardwareValue);
  }

  #devctl(vm: number, bdf: PciAddress, enable: boolean, dryRun: boolean): void {
    const sim = this.#devices.get(key(vm, bdf));
    const result = this.#command({ type: 'devctl', vmId: VM_IDS[vm] as VmId, bdf, write: { nosnoopEnable: enable }, dryRun });
    if (result === undefined || sim === undefined || dryRun) return;
    const outcome = result.decision.devctl;
    if (outcome === undefined) throw new Error('a devctl decision without a devctl outcome');
    this.#writeHardware(sim, outcome.hardwareValue);
  }

  /** The VMM writes DEVCTL (a VF's bit is reserved, a hardwired one does not stick), then reports what it reads if it confirms writes. */
  #writeHardware(sim: SimDevice, value: number): void {
    if (sim.fn === 'vf' || sim.hardwired) return;
    sim.write(value);
    if (!this.#confirm || sim.unknown) return;
    const current = this.state.vms.get(VM_IDS[sim.vm] as VmId)?.devices.get(sim.bdf);
    if (current !== undefined && (current.nosnoop !== sim.report(false) || current.pendingNosnoop !== null)) this.#report(sim.vm, sim.bdf);
  }

  #pin(vm: number, e: Extract<SimEvent, { t: 'pin' }>): void {
    const vmId = VM_IDS[vm] as VmId;
    const mmio = e.mmio !== null;
    const hpa = mmio ? this.#memory.mmio(e.pages) : this.#memory.handOut(e.pages, vmId);
    const iova = e.slot * 3;
    const domains = e.doms === null ? null : e.doms.map((d) => DOMAIN_IDS[d] as DomainId);
    const result = this.#command({
      type: 'pin',
      vmId,
      ranges: [{ iova, pages: e.pages, hpa, mmio, memType: e.mmio ?? 'WB', domains }]
    });
    if (result === undefined) {
      if (!mmio) this.#memory.unused({ hpa, pages: e.pages });
      return;
    }
    this.#pins.add({ vm, iova, pages: e.pages, hpa, mmio });
  }

  #dma(vm: number, e: Extract<SimEvent, { t: 'dma' }>): void {
    const sim = this.#devices.get(key(vm, BDFS[e.dev] as PciAddress));
    const core = this.state.vms.get(VM_IDS[vm] as VmId);
    const domainId = core?.devices.get(BDFS[e.dev] as PciAddress)?.domainId ?? null;
    if (sim === undefined || core === undefined || domainId === null) return;
    const pin = pick(this.#reachable(vm, domainId), e.pick);
    if (pin === undefined) return;
    const page = pin.hpa + (e.off % pin.pages);
    const noSnoop = e.ns && this.#emits(sim) && core.domains.get(domainId)?.enforceCacheCoherency === false;
    this.#memory.dma(page, VM_IDS[vm] as VmId, e.write, noSnoop);
  }
}

function key(vm: number, bdf: PciAddress): string {
  return `${vm}/${bdf}`;
}
