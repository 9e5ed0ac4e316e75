/**
 * The trapped PCIe Device Control write (W1-W7): what the hardware gets, what the guest reads
 * back, and the device's No-Snoop state afterwards. Exposure consequences (F2) are the caller's.
 */
import type { DevctlOutcome, DevctlVerdict, Reason } from './decision.js';
import { DomainError } from './errors.js';
import { deviceQuirks } from './exposure.js';
import type { OnEnable } from './policy.js';
import type { QuirkTable } from './quirks.js';
import type { RuleId } from './rules.js';
import type { Device, NoSnoopState, Vm } from './state.js';

/** PCI_EXP_DEVCTL_NOSNOOP_EN, bit 11 of PCIe Device Control (cap + 0x08). */
export const DEVCTL_NOSNOOP_EN = 0x0800;
/** Reset default: Max_Read_Request_Size 512 B, Enable No Snoop and Enable Relaxed Ordering set. */
export const DEVCTL_RESET_DEFAULT = 0x2810;

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
  const domain = device.domainId === null ? undefined : vm.domains.get(device.domainId);
  if (domain?.enforceCacheCoherency === true) {
    return { decision: 'allow', rule: 'W1', message: `domain ${domain.id} enforces cache coherency: the IOMMU snoops every transaction` };
  }
  const needs = flags.has('needs-nosnoop');
  const policy = vm.policy;
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
  const value = resolveWrite(device, write);
  const bit = value & DEVCTL_NOSNOOP_EN;
  const cleared = value & ~DEVCTL_NOSNOOP_EN;
  const hardwired = device.nosnoop === 'hardwired-zero';
  if (device.function === 'vf') {
    return {
      outcome: { decision: 'ignore', hardwareValue: cleared, guestValue: cleared },
      nextState: device.nosnoop,
      reasons: [{ rule: 'W2', message: "VF: Enable No Snoop is reserved and reads 0; the PF's bit governs" }]
    };
  }
  if (bit === 0) {
    return {
      outcome: { decision: 'allow', hardwareValue: value, guestValue: value },
      nextState: hardwired ? 'hardwired-zero' : 'disabled',
      reasons: [{ rule: 'W6', message: 'clearing Enable No Snoop is always allowed; flushOnUnpin flags stay set (F3)' }]
    };
  }
  const verdict = enableVerdict(vm, device, quirks);
  const reasons: Reason[] = [{ rule: verdict.rule, message: verdict.message }];
  if (hardwired) {
    reasons.push({ rule: verdict.rule, message: 'Enable No Snoop is hardwired to 0 on this device: the write does not stick' });
    return {
      outcome: { decision: verdict.decision, hardwareValue: verdict.decision === 'allow' ? value : cleared, guestValue: cleared },
      nextState: 'hardwired-zero',
      reasons
    };
  }
  if (verdict.decision === 'allow') {
    return { outcome: { decision: 'allow', hardwareValue: value, guestValue: value }, nextState: 'enabled', reasons };
  }
  return { outcome: { decision: 'deny', hardwareValue: cleared, guestValue: cleared }, nextState: 'disabled', reasons };
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
