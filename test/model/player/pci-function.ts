/**
 * A PCI function as the hardware has it: its PCIe Device Control register (DEVCTL) and whether
 * it may put the No-Snoop attribute on its transactions, whatever the service believes.
 *
 * - A PF's Enable No Snoop bit (DEVCTL bit 11) is a register: it resets to 1 unless hardwired to
 *   0, and a write of 1 to a hardwired bit does not stick. Initiate Function Level Reset (bit
 *   15) reads 0: it is never stored.
 * - A VF's own bit is reserved (RsvdP): writes to it do nothing, and the VF puts No-Snoop on the
 *   wire iff the PF that governs it has its bit set.
 * - An ignores-nosnoop-enable quirk naming the function, or the PF that governs it, makes the
 *   bit mean nothing: the function may emit No-Snoop whatever the bit says.
 * - A bit the VMM cannot read back counts as set.
 */

/** Enable No Snoop. */
export const DEVCTL_NOSNOOP_EN = 0x0800;
/** Initiate Function Level Reset. */
export const DEVCTL_BCR_FLR = 0x8000;
/** DEVCTL after a reset: Max_Read_Request_Size 512 bytes, Enable No Snoop and Enable Relaxed Ordering set. */
export const DEVCTL_RESET_DEFAULT = 0x2810;

/** What a VMM reads back from a function's bit. */
export type ReadBack = 'enabled' | 'disabled' | 'hardwired-zero' | 'unknown';

export interface PciFunctionSpec {
  readonly bdf: string;
  readonly fn: 'pf' | 'vf';
  /** A VF's PF, when the hardware links them. */
  readonly pf?: PciFunction | null;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly hardwired?: boolean;
  readonly unreadable?: boolean;
  /** The bit as the host left it (0 whatever this says when hardwired). */
  readonly bit: 0 | 1;
}

export class PciFunction {
  readonly bdf: string;
  readonly fn: 'pf' | 'vf';
  readonly pf: PciFunction | null;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly hardwired: boolean;
  /** The VMM cannot read the bit back: it reports `unknown`, and the bit counts as set. */
  readonly unreadable: boolean;
  /** The real Enable No Snoop bit (a VF's is reserved, and unused when it has a PF). */
  bit: 0 | 1;
  /** The real DEVCTL register. */
  devctl: number;

  constructor(spec: PciFunctionSpec) {
    this.bdf = spec.bdf;
    this.fn = spec.fn;
    this.pf = spec.pf ?? null;
    this.vendorId = spec.vendorId;
    this.deviceId = spec.deviceId;
    this.hardwired = spec.hardwired ?? false;
    this.unreadable = spec.unreadable ?? false;
    this.bit = this.hardwired ? 0 : spec.bit;
    this.devctl = this.bit === 1 ? DEVCTL_RESET_DEFAULT : DEVCTL_RESET_DEFAULT & ~DEVCTL_NOSNOOP_EN;
  }

  /** A DEVCTL write, by the VMM of the VM the function is assigned to or by the host. */
  write(value: number): void {
    if (this.fn === 'vf') return;
    const bit = this.hardwired || (value & DEVCTL_NOSNOOP_EN) === 0 ? 0 : 1;
    this.bit = bit;
    this.devctl = (value & ~(DEVCTL_BCR_FLR | DEVCTL_NOSNOOP_EN)) | (bit === 1 ? DEVCTL_NOSNOOP_EN : 0);
  }

  /** A reset that does not restore config space: DEVCTL back at its default (a VF's reset leaves its PF alone). */
  coldReset(): void {
    this.write(DEVCTL_RESET_DEFAULT);
  }

  /** The bit as the hardware has it; one the VMM cannot read counts as set. */
  get bitSet(): boolean {
    return this.unreadable || (!this.hardwired && this.bit === 1);
  }

  /**
   * Whether the function may set the No-Snoop attribute on its transactions, `ignores` telling
   * which functions the quirk list that is true names ignores-nosnoop-enable. `pf` is the PF
   * that governs a VF (by default the one the hardware links it to; none: the VF's own bit).
   */
  emits(ignores: (f: PciFunction) => boolean, pf: PciFunction | null = this.pf): boolean {
    if (ignores(this)) return true;
    if (pf !== null) return ignores(pf) || pf.bitSet;
    return this.bitSet;
  }

  /** What the VMM reads back from the function's own bit. */
  readBack(): ReadBack {
    if (this.unreadable) return 'unknown';
    if (this.hardwired) return 'hardwired-zero';
    return this.bit === 1 ? 'enabled' : 'disabled';
  }
}

/** A quirk list entry, as the hardware bears it out: the functions it names (by vendor, and device id under a mask) and its flags. */
export interface QuirkEntry {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly deviceMask: number;
  readonly flags: readonly string[];
}

/** Whether a quirk of `quirks` names `f` ignores-nosnoop-enable (the function ignores its bit). */
export function ignoresEnable(quirks: readonly QuirkEntry[], f: PciFunction): boolean {
  return quirks.some((q) => q.vendorId === f.vendorId && (f.deviceId & q.deviceMask) === (q.deviceId & q.deviceMask) && q.flags.includes('ignores-nosnoop-enable'));
}
