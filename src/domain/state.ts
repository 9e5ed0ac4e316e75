/**
 * The state aggregate: VMs with their IOMMU domains, devices and pinned ranges, plus the quirk
 * table. Commands (commands/) are the only writers. They validate everything first and then
 * update the aggregate in place, so a rejected command changes nothing; in-place updates keep a
 * million-range VM at tens of bytes a range instead of copying it per pin.
 */
import type { Arch, Policy, PolicyDefaults } from './policy.js';
import type { DomainId, PciAddress, VmId } from './ids.js';
import { PinMap } from './pin-map.js';
import { QuirkTable, type Quirk } from './quirks.js';

export const NOSNOOP_STATES = ['enabled', 'disabled', 'hardwired-zero', 'unknown'] as const;
export type NoSnoopState = (typeof NOSNOOP_STATES)[number];

/** A PCI function: a physical function or an SR-IOV virtual function. */
export const DEVICE_FUNCTIONS = ['pf', 'vf'] as const;
export type DeviceFunction = (typeof DEVICE_FUNCTIONS)[number];

export const MEM_TYPES = ['WB', 'WT', 'WP', 'UC', 'UC-', 'WC'] as const;
export type MemType = (typeof MEM_TYPES)[number];

export interface IommuDomain {
  readonly id: DomainId;
  readonly enforceCacheCoherency: boolean;
  readonly iommu: string | null;
}

export interface Device {
  readonly bdf: PciAddress;
  readonly domainId: DomainId | null;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly function: DeviceFunction;
  /** For a VF: its PF. When the PF is assigned to the same VM, the PF's bit governs the VF. */
  readonly physfn: PciAddress | null;
  /**
   * The state that counts: as last reported by the VMM, or as decided when the decision made the
   * device more exposed. For a VF, what it reported; its PF governs it (exposure.ts).
   */
  readonly nosnoop: NoSnoopState;
  /**
   * A state decided but not yet in force: a change that makes the device less exposed (a denied
   * enable, a cleared bit, a clear at reset or on a policy change) counts only once the VMM
   * reports that the hardware reads it (a device PUT with its state). Null: nothing pending.
   */
  readonly pendingNosnoop: NoSnoopState | null;
  /**
   * Attached with bus mastering off and told to clear its bit: the function itself cannot DMA
   * before the VMM has written that value, so for its own DMA it counts as `pendingNosnoop`. Its
   * VFs follow the bit as the hardware holds it, so for them it counts as `nosnoop` until the VMM
   * reports the write.
   */
  readonly quietUntilReported: boolean;
  /** False for a device without PCI config space: it always counts as able to no-snoop. */
  readonly pci: boolean;
  /** Last known hardware DEVCTL value (16 bits). */
  readonly devctl: number;
}

export interface Vm {
  readonly id: VmId;
  readonly arch: Arch;
  policy: Policy;
  readonly domains: Map<DomainId, IommuDomain>;
  readonly devices: Map<PciAddress, Device>;
  readonly pins: PinMap;
  /**
   * Interned domain subsets of pins. Index 0 means "every domain of the VM" (VFIO type1
   * semantics); other entries list the domains an iommufd-style pin maps into. A domain removal
   * edits these lists, not every range.
   */
  readonly subsets: DomainId[][];
  /** Pages of pinned ranges whose flushOnUnpin flag is set. */
  flaggedPages: number;
  /** Bumped by every change to this VM. */
  revision: number;
  readonly createdAt: number;
  updatedAt: number;
}

export interface CoherencyState {
  readonly vms: Map<VmId, Vm>;
  quirks: QuirkTable;
  readonly defaults: PolicyDefaults;
}

export function createState(defaults: PolicyDefaults, quirks: readonly Quirk[]): CoherencyState {
  return { vms: new Map(), quirks: new QuirkTable(quirks), defaults };
}

export function createVm(id: VmId, arch: Arch, policy: Policy, now: number): Vm {
  return {
    id,
    arch,
    policy,
    domains: new Map(),
    devices: new Map(),
    pins: new PinMap(),
    subsets: [[]],
    flaggedPages: 0,
    revision: 0,
    createdAt: now,
    updatedAt: now
  };
}

// ---- the attribute word stored with every pinned range -------------------------------------
// bits 0-2 memType index, bit 3 mmio, bit 4 flushOnUnpin, bit 5 the flag the pessimistic
// policy would have set (for "bytes avoided"), bits 6+ subset index.

const MEM_BITS = 0b111;
const MMIO_BIT = 0b1000;
const FLAG_BIT = 0b10000;
const SHADOW_BIT = 0b100000;
const SUBSET_SHIFT = 6;

export function packAttr(memType: MemType, mmio: boolean, flushOnUnpin: boolean, subset: number, pessimisticFlag = flushOnUnpin): number {
  return MEM_TYPES.indexOf(memType) | (mmio ? MMIO_BIT : 0) | (flushOnUnpin ? FLAG_BIT : 0) | (pessimisticFlag ? SHADOW_BIT : 0) | (subset << SUBSET_SHIFT);
}

/** The flushOnUnpin flag the pessimistic policy would have set: ever mapped into a non-coherent domain. */
export function attrPessimisticFlag(attr: number): boolean {
  return (attr & SHADOW_BIT) !== 0;
}

export function withPessimisticFlag(attr: number): number {
  return attr | SHADOW_BIT;
}

export function attrMemType(attr: number): MemType {
  return MEM_TYPES[attr & MEM_BITS] as MemType;
}

export function attrMmio(attr: number): boolean {
  return (attr & MMIO_BIT) !== 0;
}

export function attrFlushOnUnpin(attr: number): boolean {
  return (attr & FLAG_BIT) !== 0;
}

export function withFlushOnUnpin(attr: number): number {
  return attr | FLAG_BIT;
}

export function attrSubset(attr: number): number {
  return attr >>> SUBSET_SHIFT;
}

/** F4: mmio mapped uncacheable or write-combining on the host is never flushed (CLFLUSH there can machine-check). */
export function isFlushExempt(attr: number): boolean {
  if ((attr & MMIO_BIT) === 0) return false;
  const mt = attr & MEM_BITS;
  return mt === 3 || mt === 4 || mt === 5;
}

/** Index of `domains` in the VM's subset table, adding it when new. An empty list means every domain. */
export function internSubset(vm: Vm, domains: readonly DomainId[] | null): number {
  if (domains === null || domains.length === 0) return 0;
  const sorted = [...new Set(domains)].sort();
  const key = sorted.join('\u0000');
  for (let i = 1; i < vm.subsets.length; i++) {
    if ((vm.subsets[i] as DomainId[]).join('\u0000') === key) return i;
  }
  vm.subsets.push(sorted);
  return vm.subsets.length - 1;
}

/** The domains a range with this subset index maps into right now. */
export function domainsOf(vm: Vm, subset: number): readonly DomainId[] {
  return subset === 0 ? [...vm.domains.keys()] : (vm.subsets[subset] ?? []);
}
