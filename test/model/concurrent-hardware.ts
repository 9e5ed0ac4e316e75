/**
 * The hardware of the concurrent-callers model's VM (concurrent-host.ts), on the player of
 * test/model/player: the truth, whatever the service believes.
 *
 * - Host pages. A page is zeroed by the host with cached stores when it is pinned: dirty in the
 *   CPU cache, the previous owner's data in DRAM, until a flush covers it. Pages are never reused
 *   within a run, so an unflushed page is exactly one whose DRAM still holds another owner's data.
 * - PCIe functions (PFs) with a real Enable No Snoop bit. The bit changes only when the VMM writes
 *   a `hardwareValue` an answer told it to write. A function puts No-Snoop on the wire when its
 *   bit is 1, when the VMM cannot read the bit (`unknown`), or when it ignores the bit (the
 *   `bad` device while the quirk list that is true says so). A `hardwired-zero` bit never sticks.
 * - IOMMU domains: coherent ones force snooping; in a non-coherent one every function that can
 *   emit No-Snoop reads every page mapped there after every round (a dirty page read is a LEAK).
 *   The first time it reaches a page (again after each flush of it), the guest caches the page
 *   clean and the device overwrites DRAM with No-Snoop: a page released at unpin without a flush
 *   after that is a CORRUPTION (a stale line).
 * - The quirk list that is true is the one the service acknowledged last, once the replays it
 *   caused (and every flush outstanding when it was put) are performed; a flag it takes away is
 *   gone at once (the host model's convention, host-hardware.ts).
 */
import { IDS, type Config, type DevKind, type DevSpec } from './concurrent-scenarios.js';
import { pageHex } from './concurrent-wire.js';
import { HostMemory } from './player/host-memory.js';
import { HostPages } from './player/host-pages.js';
import { PciFunction } from './player/pci-function.js';
import type { Range } from './player/ranges.js';

/** A PF of the VM, and the domain it is attached to. */
export class VmFunction extends PciFunction {
  readonly index: number;
  readonly kind: DevKind;
  /** The domain the device is attached to in the IOMMU; null: detached (no DMA). */
  dom: number | null = null;

  constructor(index: number, spec: DevSpec) {
    const ids = IDS[spec.kind];
    const bit = spec.state === 'enabled' || spec.state === 'unknown' ? 1 : 0;
    const bdf = `0000:${(index + 1).toString(16).padStart(2, '0')}:00.0`;
    super({ bdf, fn: 'pf', vendorId: Number(ids[0]), deviceId: Number(ids[1]), hardwired: spec.state === 'hardwired-zero', unreadable: spec.state === 'unknown', bit });
    this.index = index;
    this.kind = spec.kind;
  }
}

/** A pinned range as the IOMMU has it. */
export interface MappedRange extends Range {
  /** The domains it maps into; null: every domain of the VM. */
  readonly doms: readonly number[] | null;
  /** In the IOMMU: devices in its domains reach it. */
  readonly mapped: boolean;
}

export function mapsInto(pin: { readonly doms: readonly number[] | null }, dom: number): boolean {
  return pin.doms === null || pin.doms.includes(dom);
}

export interface HardwareSinks {
  readonly leaks: string[];
  readonly corruptions: string[];
  readonly trace: string[];
}

export class VmHardware {
  readonly memory = new HostMemory(new HostPages({ reuse: false, ramBase: 0x100, gap: 1 }));
  /** The quirk list that is true names the bad device ignores-nosnoop-enable. */
  ignoresTrue: boolean;
  /** A list that adds the flag, true once these jobs are acknowledged (and, `unlisted`, those a listing will name). */
  #adding: { jobs: string[]; unlisted: boolean } | null = null;
  readonly #vmId: string;
  readonly #coherent: readonly boolean[];
  readonly #devs: readonly VmFunction[];
  readonly #sinks: HardwareSinks;
  /** Pages a leak was reported for (once each). */
  readonly #leaked = new Set<number>();

  constructor(vmId: string, config: Config, devs: readonly VmFunction[], sinks: HardwareSinks) {
    this.#vmId = vmId;
    this.#coherent = config.coherent;
    this.#devs = devs;
    this.#sinks = sinks;
    this.ignoresTrue = config.quirks === 1;
  }

  // ---- the quirk list that is true ----------------------------------------------------------------

  /** A list that adds the flag is put and not true yet. */
  get adding(): boolean {
    return this.#adding !== null;
  }

  /** The operator put a list without the flag: it is gone at once (and a list still on its way to adding it is void). */
  takeFlagAway(): void {
    this.ignoresTrue = false;
    this.#adding = null;
  }

  /**
   * The operator put a list with the flag while it was neither true nor on its way: it is true
   * once every job of `jobs` is acknowledged (nobody could know before the flushes it needs are
   * performed); `unlisted`: the jobs outstanding when it was put could not be listed (the store
   * was down), so a later listing names them.
   */
  addFlagAfter(jobs: readonly string[], unlisted: boolean): void {
    this.#adding = { jobs: [...jobs], unlisted };
  }

  /** The VM's outstanding jobs as a listing names them: they stand for those an unreadable listing could not name. */
  listed(outstanding: readonly string[], done: (job: string) => boolean): void {
    if (this.#adding?.unlisted !== true) return;
    this.#adding = { jobs: [...this.#adding.jobs, ...outstanding].filter((id) => !done(id)), unlisted: false };
  }

  /** A list whose jobs are all acknowledged becomes true; returns whether one did now. */
  settleQuirks(done: (job: string) => boolean): boolean {
    if (this.#adding === null || this.#adding.unlisted || !this.#adding.jobs.every(done)) return false;
    this.#adding = null;
    this.ignoresTrue = true;
    return true;
  }

  // ---- DMA -----------------------------------------------------------------------------------------

  /** The domain enforces cache coherency (forces snooping). */
  coherent(dom: number): boolean {
    return this.#coherent[dom] === true;
  }

  ignores(f: VmFunction): boolean {
    return f.kind === 'bad' && this.ignoresTrue;
  }

  /** Puts No-Snoop on the wire now. */
  noSnoop(f: VmFunction): boolean {
    return f.emits((g) => this.ignores(g as VmFunction));
  }

  /** Every device that can emit No-Snoop in a non-coherent domain reads (and first overwrites) every page mapped there; returns how many pages were overwritten. */
  sweep(pins: readonly MappedRange[], round: number): number {
    let overwritten = 0;
    for (const dev of this.#devs) {
      const dom = dev.dom;
      if (dom === null || this.coherent(dom) || !this.noSnoop(dev)) continue;
      const reached = this.memory.reach(
        pins.filter((pin) => pin.mapped && mapsInto(pin, dom)),
        this.#vmId
      );
      overwritten += reached.overwritten;
      for (const p of reached.leaked) {
        if (this.#leaked.has(p)) continue;
        this.#leaked.add(p);
        this.#sinks.leaks.push(`round ${round}: ${dev.bdf} (bit ${dev.bit}${dev.unreadable ? ', unknown' : ''}${this.ignores(dev) ? ', ignores it' : ''}) in d${dom} read page ${pageHex(p)} with No-Snoop while its zeroing sat dirty in the CPU cache`);
        this.#sinks.trace.push(`  LEAK: ${dev.bdf} in d${dom} reads unflushed page ${pageHex(p)}`);
      }
    }
    return overwritten;
  }

  /** An unpinned range goes back to the host: a stale line left on a page is a corruption. */
  release(pin: Range, answer: number): void {
    for (const p of this.memory.release(pin)) this.#sinks.corruptions.push(`page ${pageHex(p)} released after unpin #${answer} with a stale line: a No-Snoop device wrote it and no flush after the unmap covered it`);
  }
}
