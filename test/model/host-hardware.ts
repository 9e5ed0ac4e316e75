/**
 * The host of the host model (host-simulation.ts) as the hardware has it, whatever the service
 * believes: its PCI functions and where each is assigned, its VMs' IOMMU domains and the ranges
 * mapped into them, the host's memory (test/model/player), and the quirk table that is true.
 *
 * - Functions exist once on the host, by BDF: physical functions (PFs), some with virtual
 *   functions (VFs). Each is on the host or assigned to exactly one VM, in one of that VM's IOMMU
 *   domains or in none yet. A PF and its VF may sit in different VMs, and a PF may stay on (or go
 *   back to) the host while its VF is assigned.
 * - A PF's Enable No Snoop bit is a register (player/pci-function.ts), written only by the VMM of
 *   the VM the PF is assigned to, or by the host while the PF is on the host. A VF puts No-Snoop
 *   on the wire iff its PF's real bit is 1, wherever that PF is, or an ignores-nosnoop-enable
 *   quirk names the VF or its PF. The quirk table that is true is the one the service
 *   acknowledged last (its start-up file, then every put-quirks), never a file it is restarted
 *   with; with the VMM protocol, a table that adds a flag is true only once the flushes it needs
 *   are performed (before then nobody could have known), one that takes a flag away at once.
 * - A function handed to a guest, in a domain that does not force snooping, and able to emit
 *   No-Snoop, reaches every RAM range mapped into that domain.
 */
import { parsePciAddress, type PciAddress, type Quirk } from '../../src/domain/index.js';
import { DOMAIN_IDS, IDS, VM_IDS, type PfSpec, type VfReport } from './host-topology.js';
import { GuestPins, type PinnedRange } from './player/guest-pins.js';
import { HostMemory } from './player/host-memory.js';
import { ignoresEnable, PciFunction, type ReadBack } from './player/pci-function.js';
import { pick } from './player/ranges.js';

/** One PCI function of the host, and where it is assigned. */
export class HostFn extends PciFunction {
  declare readonly bdf: PciAddress;
  declare readonly pf: HostFn | null;
  readonly index: number;
  /** A VF: what its VMM reports for it. */
  readonly report: VfReport | null;
  /** The VM it is assigned to (index into VM_IDS); null: on the host. */
  vm: number | null = null;
  /** Its IOMMU domain in that VM; null: none yet. */
  domain: number | null = null;
  /** Handed to the guest: bus mastering may be on. */
  live = false;

  constructor(index: number, bdf: PciAddress, pf: HostFn | null, spec: PfSpec, report: VfReport | null) {
    const fn = pf === null ? 'pf' : 'vf';
    const ids = IDS[spec.kind][fn];
    super({ bdf, fn, pf, vendorId: ids[0], deviceId: ids[1], hardwired: fn === 'pf' && spec.hardwired, unreadable: fn === 'pf' && spec.unreadable, bit: spec.bit });
    this.index = index;
    this.report = report;
  }

  /** What the VMM reads back: a VF reports per its `report` (its PF's bit, or not). */
  override readBack(): ReadBack {
    if (this.pf !== null) return this.report === 'pf-bit' ? this.pf.readBack() : (this.report ?? 'unknown');
    return super.readBack();
  }

  /** Back on the host (its VMM closed it): out of every VM and domain, bus mastering off. */
  toHost(): void {
    this.vm = null;
    this.domain = null;
    this.live = false;
  }
}

export interface HostVm {
  exists: boolean;
  /** Domain index -> enforces cache coherency. */
  readonly domains: Map<number, boolean>;
}

export interface HostPin extends PinnedRange {
  /** The domains it maps into; null: every domain of the VM, present and future (VFIO type1). */
  domains: number[] | null;
}

export class HostHardware {
  /** Released pages are reused first, so a leak shows another VM's data. */
  readonly memory = new HostMemory();
  readonly pins = new GuestPins<HostPin>();
  /** PFs first, each followed by its VFs. */
  readonly fns: readonly HostFn[];
  readonly #byBdf = new Map<string, HostFn>();
  readonly #vms: HostVm[] = VM_IDS.map(() => ({ exists: false, domains: new Map<number, boolean>() }));
  #quirks: readonly Quirk[];
  /** Quirk tables acknowledged whose flushes are not all performed yet, oldest first. */
  readonly #switches: { table: readonly Quirk[]; jobs: readonly string[] }[] = [];

  constructor(pfs: readonly PfSpec[], quirks: readonly Quirk[]) {
    const fns: HostFn[] = [];
    const add = (bdf: string, pf: HostFn | null, spec: PfSpec, report: VfReport | null): HostFn => {
      const f = new HostFn(fns.length, parsePciAddress(bdf), pf, spec, report);
      fns.push(f);
      this.#byBdf.set(f.bdf, f);
      return f;
    };
    pfs.forEach((spec, p) => {
      const pf = add(`0000:0${p + 1}:00.0`, null, spec, null);
      spec.vfs.forEach((report, v) => add(`0000:0${p + 1}:00.${v + 1}`, pf, spec, report));
    });
    this.fns = fns;
    this.#quirks = quirks;
  }

  fn(index: number): HostFn {
    return this.fns[index % this.fns.length] as HostFn;
  }

  byBdf(bdf: string): HostFn | undefined {
    return this.#byBdf.get(bdf);
  }

  vm(index: number): HostVm {
    return this.#vms[index % this.#vms.length] as HostVm;
  }

  // ---- the quirk table that is true -------------------------------------------------------------

  /** The table is true at once (a VMM that performs every flush it is told when it is told). */
  setQuirks(quirks: readonly Quirk[]): void {
    this.#quirks = quirks;
  }

  /** The table is true once every job of `jobs` is done; a flag it takes away is gone at once. */
  putQuirks(quirks: readonly Quirk[], jobs: readonly string[]): void {
    this.#switches.push({ table: quirks, jobs });
  }

  /** Tables whose jobs are all done become true, in the order they were put. */
  settleQuirks(done: (job: string) => boolean): void {
    for (let next = this.#switches[0]; next !== undefined; next = this.#switches[0]) {
      if (!next.jobs.every(done)) return;
      this.#switches.shift();
      this.#quirks = next.table;
    }
  }

  /** A table still waiting for its flushes takes away a flag at once, and adds one only once they are done. */
  #ignores(f: PciFunction): boolean {
    return ignoresEnable(this.#quirks, f) && this.#switches.every((next) => ignoresEnable(next.table, f));
  }

  // ---- DMA -------------------------------------------------------------------------------------

  /** Handed to a guest, in a domain that does not force snooping, and able to emit No-Snoop. */
  noSnoops(f: HostFn): boolean {
    if (!f.live || f.vm === null || f.domain === null) return false;
    return this.vm(f.vm).domains.get(f.domain) === false && f.emits((g) => this.#ignores(g));
  }

  /** RAM pins the function's DMA reaches. */
  reachable(f: HostFn): HostPin[] {
    const vm = f.vm;
    const domain = f.domain;
    if (!f.live || vm === null || domain === null) return [];
    const domains = this.vm(vm).domains;
    return this.pins.all.filter((p) => !p.mmio && p.vm === vm && domains.has(domain) && (p.domains === null || p.domains.includes(domain)));
  }

  /** A DMA of the function: a page of a range it reaches, with No-Snoop if it asks for it and may. */
  dma(e: { fn: number; pick: number; off: number; write: boolean; ns: boolean }): void {
    const f = this.fn(e.fn);
    const pin = pick(this.reachable(f), e.pick);
    if (pin === undefined || f.vm === null) return;
    this.memory.dma(pin.hpa + (e.off % pin.pages), VM_IDS[f.vm] as string, e.write, e.ns && this.noSnoops(f));
  }

  /**
   * The strongest reader: every function that can put No-Snoop on the wire reads every page it
   * reaches. The first time it reaches a page (again after each flush of it), the guest caches it
   * clean and the device overwrites DRAM with No-Snoop: only a flush before release removes that
   * stale line. Returns how many pages were overwritten so.
   */
  sweep(): number {
    let overwritten = 0;
    for (const f of this.fns) {
      if (f.vm === null || !this.noSnoops(f)) continue;
      overwritten += this.memory.reach(this.reachable(f), VM_IDS[f.vm] as string).overwritten;
    }
    return overwritten;
  }

  /** Whether a VF is handed to a guest while its PF is in another VM or on the host. */
  get split(): boolean {
    return this.fns.some((f) => f.live && f.pf !== null && f.pf.vm !== f.vm);
  }

  /** The functions the host has assigned to VM `vm`, each with its domain's id. */
  assigned(vm: number): [string, string | null][] {
    return this.fns.filter((f) => f.vm === vm).map((f) => [f.bdf, f.domain === null ? null : (DOMAIN_IDS[f.domain] ?? null)]);
  }
}
