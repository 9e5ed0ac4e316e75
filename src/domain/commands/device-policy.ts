/**
 * W3, W4 applied to a bit already set in hardware: at attach, on a report, at a reset that does
 * not restore config, and when a policy, domain, device or quirk change denies a bit left set.
 * A clear decided here counts only once the VMM reports it (decideState).
 */
import type { DecisionBuilder, DevctlOutcome } from '../decision.js';
import { DEVCTL_NOSNOOP_EN, deviceOverride, enableVerdict } from '../devctl.js';
import { stateMayNoSnoop } from '../exposure.js';
import type { PciAddress } from '../ids.js';
import type { CoherencyState, Device, NoSnoopState, Vm } from '../state.js';

/**
 * A decided No-Snoop state. One that makes the device more exposed (or as exposed) takes effect
 * at once; one that makes it less exposed is pending until the VMM reports that the hardware
 * reads it, since until then the bit may still be 1.
 */
export function decideState(device: Device, next: NoSnoopState, devctl: number): Device {
  if (stateMayNoSnoop(device.nosnoop) && !stateMayNoSnoop(next)) return { ...device, pendingNosnoop: next, devctl };
  return { ...device, nosnoop: next, pendingNosnoop: null, quietUntilReported: false, devctl };
}

export type PolicyOccasion = 'attach' | 'move' | 'report' | 'reset';

/**
 * W3, W4 at attach, at a reset that does not restore config, and on a report (a device PUT that
 * neither attaches nor moves the device) saying the bit reads 1: the bit is set in hardware, so
 * tell the VMM what to write. Trap and virtualize-zero give the verdict an enable write would get
 * (a deny clears the bit); at attach, outside virtualize-zero, and on a report, an allowed bit is
 * left alone. A bit the VMM could not read (`unknown`) is cleared too where the policy keeps the
 * hardware's bit 0 (W3: virtualize-zero, or trap with onEnable deny); since the VMM cannot read
 * it back, such a device still counts as able to no-snoop (never quiet) until it reports the bit
 * clear. Undefined when there is nothing to write.
 */
export function applyPolicyToBit(state: CoherencyState, vm: Vm, device: Device, out: DecisionBuilder, when: PolicyOccasion): DevctlOutcome | undefined {
  if (device.function === 'vf' || !device.pci) return undefined;
  const unknown = device.nosnoop === 'unknown';
  if (device.nosnoop !== 'enabled' && !(unknown && keepsBitZero(vm.policy, device))) return undefined;
  const verdict = enableVerdict(vm, device, state.quirks);
  const set = device.devctl | DEVCTL_NOSNOOP_EN;
  if (verdict.decision === 'allow') {
    if (unknown || when === 'report' || (when !== 'reset' && vm.policy.mode !== 'virtualize-zero')) return undefined;
    out.reason(verdict.rule, `${when}: ${verdict.message}; Enable No Snoop may stay set`);
    return { decision: 'allow', hardwareValue: set, guestValue: set };
  }
  const cleared = device.devctl & ~DEVCTL_NOSNOOP_EN;
  out.reason(
    verdict.rule,
    unknown
      ? `${when}: Enable No Snoop is unknown and ${verdict.message}; write hardwareValue to clear it${when === 'attach' ? ' before the guest gets the device' : ''}, then report the device disabled (it counts as unknown, able to no-snoop, until then)`
      : when === 'attach'
        ? `${when}: ${verdict.message}; write hardwareValue to clear Enable No Snoop before the guest gets the device (bus mastering is off until then): nothing is replayed`
        : `${when}: ${when === 'report' ? 'the device reports Enable No Snoop set and ' : ''}${verdict.message}; write hardwareValue to clear Enable No Snoop, then report the device disabled (it counts as enabled until then)`
  );
  return { decision: 'deny', hardwareValue: cleared, guestValue: cleared };
}

/**
 * W3, W8: whether the hardware's bit is kept 0 for this device whatever the guest writes:
 * virtualize-zero or trap with onEnable deny, unless the device's override says otherwise.
 */
function keepsBitZero(policy: Vm['policy'], device: Device): boolean {
  const override = deviceOverride(policy, device);
  if (override !== undefined) return override.onEnable === 'deny';
  return policy.mode === 'virtualize-zero' || (policy.mode === 'trap' && policy.onEnable === 'deny');
}

/**
 * A policy, domain, device or quirk change applies the policy to bits already set: every device
 * of the VM whose bit is set and that the policy now denies is told to clear it (`devices`). The
 * exposure it causes ends once the VMM reports the bit clear.
 */
export function applyPolicyToSetBits(state: CoherencyState, vm: Vm, out: DecisionBuilder, cause: string, skip?: PciAddress): void {
  if (vm.policy.mode === 'pessimistic') return;
  for (const device of [...vm.devices.values()]) {
    if (device.bdf === skip || device.function === 'vf' || !device.pci || device.nosnoop !== 'enabled' || device.pendingNosnoop !== null) continue;
    const verdict = enableVerdict(vm, device, state.quirks);
    if (verdict.decision !== 'deny') continue;
    const cleared = device.devctl & ~DEVCTL_NOSNOOP_EN;
    out.device({ bdf: device.bdf, decision: 'deny', hardwareValue: cleared, guestValue: cleared });
    out.reason(
      verdict.rule,
      `${cause}: device ${device.bdf} has Enable No Snoop set and ${verdict.message}; write its hardwareValue to clear it, then report the device disabled (it counts as enabled until then)`
    );
    vm.devices.set(device.bdf, decideState(device, 'disabled', cleared));
  }
}
