/**
 * The hardware under the simulated VMM: what devices and CPU caches really do with pages, whatever
 * the core believes. It holds each device's Enable No Snoop bit as the hardware holds it (the core
 * learns it only from what the VMM reports), performs DMA against the cache model, and checks
 * pages as they go back to the host. What it sees goes to the report: a leak (a no-snoop read of
 * a page the host zeroed through the cache and nobody flushed) or a stale line (a page going back
 * to the host with a clean line over newer DRAM).
 */
import { attrMmio, attrSubset, DEVCTL_NOSNOOP_EN, domainsOf, type CoherencyState, type NoSnoopState, type PciAddress, type VmId } from '../domain/index.js';
import { CacheModel } from './coherency-model.js';
import { hex, type ReplayReport } from './replay-report.js';
import type { TraceEvent } from './trace.js';

export interface HwDevice {
  readonly vm: VmId;
  readonly bdf: PciAddress;
  readonly fn: 'pf' | 'vf';
  readonly hardwired: boolean;
  /** The VMM cannot read the bit: it reports `unknown` and the hardware is assumed to be 1. */
  readonly unknown: boolean;
  /** The Enable No Snoop bit in hardware (a VF: its PF's bit as the host set it). */
  bit: 0 | 1;
}

export class Hardware {
  readonly #state: CoherencyState;
  readonly #report: ReplayReport;
  readonly #cache = new CacheModel();
  readonly #devices = new Map<string, HwDevice>();

  constructor(state: CoherencyState, report: ReplayReport) {
    this.#state = state;
    this.#report = report;
  }

  device(vm: VmId, bdf: PciAddress): HwDevice | undefined {
    return this.#devices.get(deviceKey(vm, bdf));
  }

  plug(hw: HwDevice): void {
    this.#devices.set(deviceKey(hw.vm, hw.bdf), hw);
  }

  unplug(vm: VmId, bdf: PciAddress): void {
    this.#devices.delete(deviceKey(vm, bdf));
  }

  /**
   * FLR or bus reset (R1). A reset vfio-pci performs restores config space: the bit keeps its
   * value. One that does not returns it to its default 1 unless hardwired to 0.
   */
  reset(hw: HwDevice, restoresConfig: boolean): void {
    if (!restoresConfig && hw.fn === 'pf' && !hw.hardwired) hw.bit = 1;
  }

  /**
   * A DEVCTL write: a VF's bit is reserved and a hardwired bit does not stick. Returns the device
   * when the write reached its bit.
   */
  writeDevctl(vm: VmId, bdf: PciAddress, value: number): HwDevice | undefined {
    const hw = this.device(vm, bdf);
    if (hw === undefined || hw.fn === 'vf' || hw.hardwired) return undefined;
    hw.bit = (value & DEVCTL_NOSNOOP_EN) !== 0 ? 1 : 0;
    return hw;
  }

  /** The host zeroes pages with ordinary cached stores as it hands them to a guest. */
  hostZero(hpa: number, pages: number): void {
    this.#cache.hostZero(hpa, pages);
  }

  flush(hpa: number, pages: number): void {
    this.#cache.flush(hpa, pages);
  }

  /** Pages go back to the host: any under a stale clean line is a hazard. */
  release(vm: VmId, hpa: number, pages: number): void {
    const stale = this.#cache.release(hpa, pages);
    if (stale > 0) this.#report.violation('stale', vm, stale, `host pages ${hex(hpa)}.. went back to the host with ${stale} page(s) under stale clean lines`);
  }

  /** A device of `vm` reads with no-snoop: any page the host zeroed in cache only leaks. */
  noSnoopRead(vm: VmId, hpa: number, pages: number): void {
    const leaked = this.#cache.noSnoopRead(hpa, pages);
    if (leaked > 0) this.#report.violation('leak', vm, leaked, `a no-snoop read of host pages ${hex(hpa)}.. saw ${leaked} page(s) the host zeroed in cache only`);
  }

  noSnoopWrite(hpa: number, pages: number): void {
    this.#cache.noSnoopWrite(hpa, pages);
  }

  /**
   * A device's DMA through the IOMMU: it reaches the RAM pages pinned into its domain, with
   * no-snoop when it asks for it, may put it on the wire, and its domain does not enforce coherency.
   */
  dma(e: Extract<TraceEvent, { t: 'dma' }>): void {
    const vm = this.#state.vms.get(e.vm);
    const hw = this.device(e.vm, e.bdf);
    const domainId = vm?.devices.get(e.bdf)?.domainId ?? null;
    if (vm === undefined || hw === undefined || domainId === null) return;
    const noSnoop = e.noSnoop && vm.domains.get(domainId)?.enforceCacheCoherency === false && this.emits(hw);
    const end = e.iova + e.pages;
    const parts: number[] = [];
    vm.pins.forEachOverlap(e.iova, end, (start, pages, hpa, attr) => {
      if (attrMmio(attr) || !domainsOf(vm, attrSubset(attr)).includes(domainId)) return undefined;
      const lo = Math.max(start, e.iova);
      parts.push(hpa + (lo - start), Math.min(start + pages, end) - lo);
      return undefined;
    });
    for (let i = 0; i < parts.length; i += 2) {
      const hpa = parts[i] as number;
      const pages = parts[i + 1] as number;
      if (!noSnoop) {
        if (e.write) this.#cache.snoopedWrite(hpa, pages);
      } else if (e.write) {
        this.#cache.noSnoopWrite(hpa, pages);
      } else {
        this.noSnoopRead(e.vm, hpa, pages);
      }
    }
  }

  /**
   * Whether the hardware may put No-Snoop on the wire for this device. A VF follows its PF's real
   * bit wherever the PF is: in this VM, in another, or left on the host (where its reset default,
   * 1, is assumed); a PF quirked ignores-nosnoop-enable makes its VFs ignore the bit too.
   */
  emits(hw: HwDevice): boolean {
    const device = this.#state.vms.get(hw.vm)?.devices.get(hw.bdf);
    const ignores = (vendorId: number, deviceId: number): boolean => this.#state.quirks.flagsFor(vendorId, deviceId).has('ignores-nosnoop-enable');
    if (device !== undefined && ignores(device.vendorId, device.deviceId)) return true;
    if (hw.fn === 'vf') {
      if (device?.physfn === null || device?.physfn === undefined) return true;
      const physfn = device.physfn;
      const pf = [...this.#devices.values()].find((d) => d.fn === 'pf' && d.bdf === physfn);
      if (pf === undefined) return true;
      const pfDevice = this.#state.vms.get(pf.vm)?.devices.get(pf.bdf);
      if (pfDevice !== undefined && ignores(pfDevice.vendorId, pfDevice.deviceId)) return true;
      return pf.bit === 1;
    }
    return hw.bit === 1;
  }
}

/** A device as the trace attaches it, its bit as the hardware holds it then. */
export function attachedDevice(e: Extract<TraceEvent, { t: 'device' }>): HwDevice {
  return {
    vm: e.vm,
    bdf: e.bdf,
    fn: e.function,
    hardwired: e.function === 'pf' && e.nosnoop === 'hardwired-zero',
    unknown: e.nosnoop === 'unknown',
    bit: e.nosnoop === 'enabled' || e.nosnoop === 'unknown' ? 1 : 0
  };
}

/** The device's state as a VMM reading its bit reports it. */
export function truthful(hw: HwDevice): NoSnoopState {
  if (hw.unknown) return 'unknown';
  if (hw.hardwired) return 'hardwired-zero';
  return hw.bit === 1 ? 'enabled' : 'disabled';
}

/** One device of one VM. */
export function deviceKey(vm: VmId, bdf: PciAddress): string {
  return `${vm}/${bdf}`;
}
