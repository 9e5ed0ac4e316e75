/**
 * The trapped PCIe Device Control write (W1-W8): what the hardware gets, what the guest reads
 * back, and the device's No-Snoop state afterwards. Exposure consequences (F2) are the caller's.
 */
import type { DevctlOutcome, DevctlVerdict, Reason } from './decision.js';
import { DomainError } from './errors.js';
import { deviceQuirks, governedVfs } from './exposure.js';
import type { DeviceOverride, OnEnable } from './policy.js';
import type { QuirkTable } from './quirks.js';
import type { RuleId } from './rules.js';
import type { Device, NoSnoopState, Vm } from './state.js';

/** PCI_EXP_DEVCTL_NOSNOOP_EN, bit 11 of PCIe Device Control (cap + 0x08). */
export const DEVCTL_NOSNOOP_EN = 0x0800;
/** PCI_EXP_DEVCTL_BCR_FLR, bit 15: Initiate Function Level Reset. Always reads 0. */
export const DEVCTL_BCR_FLR = 0x8000;
/** PCI_EXP_DEVCTL_PHANTOM, bit 9: vfio-pci does not let a guest write it (`~PCI_EXP_DEVCTL_PHANTOM`). */
export const DEVCTL_PHANTOM = 0x0200;
/** PCI_EXP_DEVCTL_PAYLOAD, bits 5-7 (Max_Payload_Size): virtualized by vfio-pci, never written to hardware. */
export const DEVCTL_PAYLOAD = 0x00e0;
/** Reset default: Max_Read_Request_Size 512 B, Enable No Snoop and Enable Relaxed Ordering set. */
export const DEVCTL_RESET_DEFAULT = 0x2810;

/** Bits of a guest's DEVCTL write that vfio-pci does not pass to the hardware: they keep the hardware's value. */
const HW_KEEPS = DEVCTL_PHANTOM | DEVCTL_PAYLOAD;

export interface DevctlWrite {
  /** The full 16-bit value the guest wrote. */
  readonly value?: number;
  /** Or only the Enable No Snoop bit; the other bits keep their last known value. */
  readonly nosnoopEnable?: boolean;
}

export interface DevctlEvaluation {
  readonly outcome: DevctlOutcome;
  /** The device's No-Snoop state once the VMM applies `outcome.hardwareValue`. */
  readonly nextState: NoSnoopState;
  readonly reasons: readonly Reason[];
}

/**
 * The values a guest's write of `written` leads to, given the hardware's last known value `hw`
 * and whether bit 11 ends up set: what the VMM writes to the device (bits vfio-pci does not pass
 * through keep the hardware's value; Initiate FLR is never stored) and what the guest reads back
 * (the FLR bit reads 0; Phantom Functions Enable keeps the hardware's value).
 */
export function devctlValues(written: number, hw: number, nosnoop: boolean): DevctlOutcome & { decision: 'allow' } {
  const bit = nosnoop ? DEVCTL_NOSNOOP_EN : 0;
  const hardwareValue = ((written & ~(HW_KEEPS | DEVCTL_BCR_FLR | DEVCTL_NOSNOOP_EN)) | (hw & HW_KEEPS) | bit) & 0xffff;
  const guestValue = ((written & ~(DEVCTL_PHANTOM | DEVCTL_BCR_FLR | DEVCTL_NOSNOOP_EN)) | (hw & DEVCTL_PHANTOM) | bit) & 0xffff;
  return { decision: 'allow', hardwareValue, guestValue };
}

interface Verdict {
  readonly decision: Exclude<DevctlVerdict, 'ignore'>;
  readonly rule: RuleId;
  readonly message: string;
}

/** The hardware value a device gets when its state is `state` and other bits are `base`. */
export function devctlFor(state: NoSnoopState, base: number = DEVCTL_RESET_DEFAULT): number {
  return state === 'enabled' || state === 'unknown' ? base | DEVCTL_NOSNOOP_EN : base & ~DEVCTL_NOSNOOP_EN;
}

/**
 * Whether the policy lets this (physical-function) device have Enable No Snoop set: the rules
 * that apply to a guest write of 1, and to the bit coming back on at attach or reset.
 */
export function enableVerdict(vm: Vm, device: Device, quirks: QuirkTable): Verdict {
  const flags = deviceQuirks(quirks, device);
  if (flags.has('ignores-nosnoop-enable')) {
    return { decision: 'allow', rule: 'W7', message: 'device is quirked ignores-nosnoop-enable: the bit is meaningless, it may no-snoop regardless' };
  }
  // W1 looks at every function the bit governs: the device and, for a PF, its VFs in this VM.
  const domain = device.domainId === null ? undefined : vm.domains.get(device.domainId);
  const nonCoherentVf = governedVfs(vm, device).find((vf) => vf.domainId !== null && vm.domains.get(vf.domainId)?.enforceCacheCoherency === false);
  if (domain?.enforceCacheCoherency === true && nonCoherentVf === undefined) {
    return { decision: 'allow', rule: 'W1', message: `domain ${domain.id} enforces cache coherency: the IOMMU snoops every transaction` };
  }
  const needs = flags.has('needs-nosnoop');
  const policy = vm.policy;
  const verdict = deviceVerdict(policy, device) ?? policyVerdict(policy, needs);
  if (domain?.enforceCacheCoherency !== true || nonCoherentVf === undefined) return verdict;
  return { ...verdict, message: `its VF ${nonCoherentVf.bdf} sits in non-coherent domain ${String(nonCoherentVf.domainId)} and follows this bit: ${verdict.message}` };
}

/** W8: the VM policy's override for this device, ahead of the mode's verdict (pessimistic ignores it). */
function deviceVerdict(policy: Vm['policy'], device: Device): Verdict | undefined {
  const override = deviceOverride(policy, device);
  if (override === undefined) return undefined;
  return override.onEnable === 'allow'
    ? { decision: 'allow', rule: 'W8', message: `per-device override: onEnable=allow for ${device.bdf}` }
    : { decision: 'deny', rule: 'W8', message: `per-device override: onEnable=deny for ${device.bdf}: the bit stays 0` };
}

/** The override W8 applies to this device's enables: none under pessimistic, which allows them all (W5). */
export function deviceOverride(policy: Vm['policy'], device: Device): DeviceOverride | undefined {
  return policy.mode === 'pessimistic' ? undefined : policy.devices?.[device.bdf];
}

/** W3-W5: what the policy mode says about Enable No Snoop on a device in a non-coherent domain. */
function policyVerdict(policy: Vm['policy'], needs: boolean): Verdict {
  switch (policy.mode) {
    case 'pessimistic':
      return { decision: 'allow', rule: 'W5', message: 'pessimistic policy: flushing already assumes no-snoop' };
    case 'trap':
      return trapVerdict(policy.onEnable, needs);
    case 'virtualize-zero':
      if (needs && policy.exemptNeedsNoSnoop) {
        return { decision: 'allow', rule: 'W3', message: 'virtualize-zero policy: device is quirked needs-nosnoop and the policy exempts it' };
      }
      return { decision: 'deny', rule: 'W3', message: 'virtualize-zero policy: hardware keeps 0 and the guest reads 0' };
  }
}

/** W4: the trap policy's onEnable. */
function trapVerdict(onEnable: OnEnable, needs: boolean): Verdict {
  switch (onEnable) {
    case 'allow':
      return { decision: 'allow', rule: 'W4', message: 'trap policy, onEnable=allow' };
    case 'deny':
      return { decision: 'deny', rule: 'W4', message: 'trap policy, onEnable=deny: the bit stays 0' };
    case 'allow-needs-nosnoop':
      return needs
        ? { decision: 'allow', rule: 'W4', message: 'trap policy, onEnable=allow-needs-nosnoop: device is quirked needs-nosnoop' }
        : { decision: 'deny', rule: 'W4', message: 'trap policy, onEnable=allow-needs-nosnoop: device is not quirked needs-nosnoop' };
  }
}

/** Evaluates a trapped DEVCTL write without changing anything. */
export function evaluateDevctlWrite(vm: Vm, device: Device, quirks: QuirkTable, write: DevctlWrite): DevctlEvaluation {
  if (!device.pci) {
    throw new DomainError('NOT_PCI', `device ${device.bdf} has no PCI config space: there is no Device Control register to write`, { vmId: vm.id, bdf: device.bdf });
  }
  const value = resolveWrite(device, write);
  const bit = value & DEVCTL_NOSNOOP_EN;
  const hardwired = device.nosnoop === 'hardwired-zero';
  const reasons: Reason[] = [];
  if ((value & DEVCTL_BCR_FLR) !== 0) {
    reasons.push({
      rule: 'R1',
      message:
        'Initiate Function Level Reset: vfio-pci resets the function with its config space saved and restored (bus mastering off meanwhile), so the bits keep the value written; the FLR bit reads 0 and is not stored'
    });
  }
  if (device.function === 'vf') {
    reasons.push({ rule: 'W2', message: "VF: Enable No Snoop is reserved and reads 0; the PF's bit governs" });
    return { outcome: { ...devctlValues(value, device.devctl, false), decision: 'ignore' }, nextState: device.nosnoop, reasons };
  }
  if (bit === 0) {
    reasons.push({ rule: 'W6', message: 'clearing Enable No Snoop is always allowed; flushOnUnpin flags stay set (F3)' });
    return { outcome: devctlValues(value, device.devctl, false), nextState: hardwired ? 'hardwired-zero' : 'disabled', reasons };
  }
  const verdict = enableVerdict(vm, device, quirks);
  reasons.push({ rule: verdict.rule, message: verdict.message });
  if (hardwired) {
    // Bit 11 is never set in a hardwareValue here: if "hardwired" came from reading 0 after a
    // host driver cleared the bit, setting it would enable no-snoop behind the policy's back.
    reasons.push({ rule: verdict.rule, message: 'Enable No Snoop is hardwired to 0 on this device: hardwareValue keeps it clear and the guest reads 0' });
    return { outcome: { ...devctlValues(value, device.devctl, false), decision: verdict.decision }, nextState: 'hardwired-zero', reasons };
  }
  if (verdict.decision === 'allow') {
    return { outcome: devctlValues(value, device.devctl, true), nextState: 'enabled', reasons };
  }
  return { outcome: { ...devctlValues(value, device.devctl, false), decision: 'deny' }, nextState: 'disabled', reasons };
}

function resolveWrite(device: Device, write: DevctlWrite): number {
  if (write.value !== undefined) {
    if (!Number.isInteger(write.value) || write.value < 0 || write.value > 0xffff) {
      throw new DomainError('INVALID_DEVICE', 'DEVCTL value must be 16 bits', { field: 'value' });
    }
    if (write.nosnoopEnable !== undefined && write.nosnoopEnable !== ((write.value & DEVCTL_NOSNOOP_EN) !== 0)) {
      throw new DomainError('INVALID_DEVICE', 'value and nosnoopEnable disagree about bit 11', { field: 'nosnoopEnable' });
    }
    return write.value;
  }
  if (write.nosnoopEnable === undefined) {
    throw new DomainError('INVALID_DEVICE', 'a DEVCTL write needs value or nosnoopEnable', { field: 'value' });
  }
  return write.nosnoopEnable ? device.devctl | DEVCTL_NOSNOOP_EN : device.devctl & ~DEVCTL_NOSNOOP_EN;
}
