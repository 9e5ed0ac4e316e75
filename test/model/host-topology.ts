/**
 * The host the host model (host-simulation.ts) plays: its VMs, IOMMU domains and PCI functions,
 * the quirk tables a service may be given, and the events that happen to it.
 */
import {
  defaultQuirksFile,
  parseDomainId,
  parseQuirkFile,
  parseVmId,
  type Arch,
  type DomainId,
  type MemType,
  type OnEnable,
  type PolicyDefaults,
  type PolicyMode,
  type Quirk,
  type VmId
} from '../../src/domain/index.js';
import type { UnpinHow } from './player/guest-pins.js';

export type FnKind = 'igpu' | 'nic' | 'bad';

/** What a VMM reads back from a VF's reserved bit: 0 (RsvdP), its PF's bit, or nothing it trusts. */
export type VfReport = 'disabled' | 'pf-bit' | 'unknown';

export interface PfSpec {
  readonly kind: FnKind;
  readonly hardwired: boolean;
  /** The VMM cannot read the bit: it reports `unknown`, and the bit counts as set. */
  readonly unreadable: boolean;
  /** The bit as the host left it. */
  readonly bit: 0 | 1;
  /** One entry per VF of this PF: what the VMM reports for it. */
  readonly vfs: readonly VfReport[];
}

/** Vendor and device ids of each kind's PF and VF (SR-IOV VFs usually have a device id of their own). */
export const IDS: Record<FnKind, { pf: readonly [number, number]; vf: readonly [number, number] }> = {
  igpu: { pf: [0x8086, 0x9a49], vf: [0x8086, 0x9a49] }, // needs-nosnoop in the default quirk file
  nic: { pf: [0x15b3, 0x1017], vf: [0x15b3, 0x1018] },
  bad: { pf: [0x1d0f, 0x0001], vf: [0x1d0f, 0x0002] }
};

function quirk(ids: readonly [number, number], flag: Quirk['flags'][number]): Quirk {
  return { vendorId: ids[0], deviceId: ids[1], deviceMask: 0xffff, flags: [flag] };
}

const DEFAULT_QUIRKS = parseQuirkFile(defaultQuirksFile);
const BAD_PF_IGNORES = quirk(IDS.bad.pf, 'ignores-nosnoop-enable');
const BAD_VF_IGNORES = quirk(IDS.bad.vf, 'ignores-nosnoop-enable');
const NIC_PF_IGNORES = quirk(IDS.nic.pf, 'ignores-nosnoop-enable');

/**
 * The quirk tables a service may start with, be restarted with, or be given by put-quirks. Table
 * 0 quirks only the bad PF (its VFs follow it); table 4 quirks the NIC PF, whose VFs may sit in
 * other VMs; table 3 is empty, not even the iGPU is needs-nosnoop.
 */
export const HOST_QUIRK_TABLES: readonly (readonly Quirk[])[] = [
  [...DEFAULT_QUIRKS, BAD_PF_IGNORES],
  DEFAULT_QUIRKS,
  [...DEFAULT_QUIRKS, BAD_PF_IGNORES, BAD_VF_IGNORES, quirk(IDS.nic.pf, 'needs-nosnoop'), quirk(IDS.nic.vf, 'needs-nosnoop')],
  [],
  [...DEFAULT_QUIRKS, NIC_PF_IGNORES]
];

export function tableOf(index: number): readonly Quirk[] {
  return HOST_QUIRK_TABLES[index % HOST_QUIRK_TABLES.length] ?? [];
}

export const VM_IDS: readonly VmId[] = ['vm0', 'vm1', 'vm2'].map(parseVmId);
export const ARCHES: readonly Arch[] = ['x86_64', 'aarch64', 'x86_64'];
export const DOMAIN_IDS: readonly DomainId[] = ['d0', 'd1', 'd2'].map(parseDomainId);
/** How many functions the generated topologies have: PF0 with 2 VFs, PF1 with 1, PF2 with none. */
export const FUNCTIONS = 6;

export type HostEvent =
  /** put-vm: create, or change a live VM's policy. A null field is left to the server defaults; `overrides`: W8, per function. */
  | { t: 'vm'; vm: number; mode: PolicyMode | null; onEnable: OnEnable | null; exempt: boolean | null; overrides?: readonly { fn: number; onEnable: 'allow' | 'deny' }[] | null }
  | { t: 'delete-vm'; vm: number }
  /** put-domain: create, or flip coherent <-> non-coherent. */
  | { t: 'domain'; vm: number; dom: number; coherent: boolean }
  | { t: 'delete-domain'; vm: number; dom: number }
  /** Put a function into a VM and domain (null: none), from the host, another VM, or another domain. */
  | { t: 'assign'; fn: number; vm: number; dom: number | null }
  /** delete-device: the function goes back to the host. */
  | { t: 'unassign'; fn: number }
  /** The host sets the bit of a PF that is on the host. */
  | { t: 'host-bit'; fn: number; bit: 0 | 1 }
  /** A guest DEVCTL write (nosnoopEnable, or a whole 16-bit value), or its dry run. */
  | { t: 'devctl'; fn: number; enable: boolean; dryRun: boolean; value: number | null }
  | { t: 'reset'; fn: number; restoresConfig: boolean }
  /** A VMM performs the oldest queued write to one device. */
  | { t: 'hw-write'; pick: number }
  /** A VMM finishes its writes to a device and reports what it reads back (device PUT). */
  | { t: 'confirm'; fn: number }
  /** With the protocol: a VMM performs one of the flush jobs it was told of (any one) and acknowledges it. */
  | { t: 'vmm'; pick: number }
  | { t: 'pin'; vm: number; slot: number; pages: number; doms: number[] | null; mmio: MemType | null }
  | { t: 'unpin'; vm: number; pick: number; how: UnpinHow }
  | { t: 'dma'; fn: number; pick: number; off: number; write: boolean; ns: boolean }
  | { t: 'cpu'; vm: number; pick: number; off: number; write: boolean }
  | { t: 'evict'; page: number }
  | { t: 'quirks'; table: number }
  /** The service restarts over the same store with these server defaults and quirk file. */
  | { t: 'restart'; defaults: PolicyDefaults; table: number };

export interface HostConfig {
  /** Server defaults the service starts with. */
  readonly defaults: PolicyDefaults;
  /** Index into HOST_QUIRK_TABLES: the quirk file the service starts with. */
  readonly table: number;
}

export interface Scenario {
  readonly pfs: readonly PfSpec[];
  readonly config: HostConfig;
  readonly events: readonly HostEvent[];
}
