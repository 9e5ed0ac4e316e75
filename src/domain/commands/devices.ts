/**
 * Device commands: attach, move or report a device (put-device), detach it, reset it (R1), and a
 * trapped DEVCTL write (W1-W8). Each may change which domains are exposed (F2) and KVM's view (K1).
 */
import { DecisionBuilder, type DevctlOutcome } from '../decision.js';
import { DEVCTL_BCR_FLR, DEVCTL_NOSNOOP_EN, DEVCTL_RESET_DEFAULT, devctlFor, evaluateDevctlWrite, type DevctlWrite } from '../devctl.js';
import { DomainError } from '../errors.js';
import { exposedDomains, governedVfs, kvmNoncoherentDma } from '../exposure.js';
import { formatHex16, type PciAddress, type VmId } from '../ids.js';
import type { CoherencyState, Device } from '../state.js';
import type { CommandResult, DeviceInput } from './command.js';
import { getDevice, getVm, touch } from './common.js';
import { applyPolicyToBit, applyPolicyToSetBits, decideState } from './device-policy.js';
import { exposureTransition, kvmTransition } from './transitions.js';

export function putDevice(state: CoherencyState, vmId: VmId, input: DeviceInput, now: number): CommandResult {
  const vm = getVm(state, vmId);
  if (input.domainId !== null && !vm.domains.has(input.domainId)) {
    throw new DomainError('UNKNOWN_DOMAIN', `domain ${input.domainId} does not exist in VM ${vm.id}`, { vmId, domainId: input.domainId });
  }
  const physfn = input.physfn ?? null;
  if (physfn !== null && (input.function !== 'vf' || physfn === input.bdf)) {
    throw new DomainError('INVALID_DEVICE', 'physfn names the PF of a VF: only a VF has one, and not itself', { field: 'physfn' });
  }
  if (input.devctl !== undefined && (!Number.isInteger(input.devctl) || input.devctl < 0 || input.devctl > 0xffff)) {
    throw new DomainError('INVALID_DEVICE', 'devctl must be a 16-bit value', { field: 'devctl' });
  }
  // A report that says the bit reads 1 and 0 at once is refused, not believed either way: taken as
  // disabled it would expose nothing while the device may no-snoop. A VF is not checked: its own
  // bit is reserved and `nosnoop` reports its PF's.
  if (input.function === 'pf' && input.devctl !== undefined && (input.devctl & DEVCTL_NOSNOOP_EN) !== 0 && (input.nosnoop === 'disabled' || input.nosnoop === 'hardwired-zero')) {
    throw new DomainError('INVALID_DEVICE', `devctl ${formatHex16(input.devctl)} has Enable No Snoop (bit 11) set but nosnoop says "${input.nosnoop}"`, {
      field: 'devctl',
      vmId,
      bdf: input.bdf
    });
  }
  const existing = vm.devices.get(input.bdf);
  const out = new DecisionBuilder();
  const before = exposedDomains(vm, state.quirks);
  const kvmBefore = kvmNoncoherentDma(vm);
  const base = (existing?.devctl ?? DEVCTL_RESET_DEFAULT) & ~DEVCTL_NOSNOOP_EN;
  // What the VMM reports is what the hardware reads: it takes effect at once, pending or not.
  let device: Device = {
    bdf: input.bdf,
    domainId: input.domainId,
    vendorId: input.vendorId,
    deviceId: input.deviceId,
    function: input.function,
    physfn,
    nosnoop: input.nosnoop,
    pendingNosnoop: null,
    quietUntilReported: false,
    pci: input.pci ?? true,
    devctl: (input.devctl ?? devctlFor(input.nosnoop, base)) & ~DEVCTL_BCR_FLR
  };
  vm.devices.set(device.bdf, device);
  const attached = device.domainId !== null && existing?.domainId !== device.domainId;
  // A report of a device already in its domain: a bit it says is set and the policy denies is
  // cleared in this answer, not left for a later change of another device to find.
  const reported = !attached && existing !== undefined && device.domainId !== null;
  let outcome: DevctlOutcome | undefined;
  if (attached || reported) {
    outcome = applyPolicyToBit(state, vm, device, out, existing === undefined ? 'attach' : attached ? 'move' : 'report');
    if (outcome?.decision === 'deny') {
      // The clear counts once the VMM reports it. But a device new to the VM has bus mastering
      // off until the VMM hands it to the guest, after writing hardwareValue: the function itself
      // cannot DMA before its bit is clear, so its own domain is not exposed and nothing is
      // replayed. A VF (already here or attached later) follows the bit as the hardware holds it
      // until that write, and a device already in the VM may be live: they count it as set.
      // A bit the VMM could not read is not known to be clear once written either: it is not quiet.
      device = decideState(device, 'disabled', outcome.hardwareValue);
      if (existing === undefined && input.nosnoop === 'enabled') device = { ...device, quietUntilReported: true };
      vm.devices.set(device.bdf, device);
    }
  }
  exposureTransition(state, vm, before, out, true);
  applyPolicyToSetBits(state, vm, out, `device ${device.bdf} changed`, device.bdf);
  const kvm = kvmTransition(vm, kvmBefore, out);
  touch(vm, now);
  return { state, decision: out.build(kvm, outcome), created: existing === undefined };
}

export function deleteDevice(state: CoherencyState, cmd: { vmId: VmId; bdf: PciAddress }, now: number): CommandResult {
  const vm = getVm(state, cmd.vmId);
  const device = getDevice(vm, cmd.bdf);
  const out = new DecisionBuilder();
  const before = exposedDomains(vm, state.quirks);
  const kvmBefore = kvmNoncoherentDma(vm);
  const vfs = governedVfs(vm, device);
  vm.devices.delete(cmd.bdf);
  out.reason('F3', `device ${cmd.bdf} detached: pinned ranges keep their flushOnUnpin flags`);
  if (vfs.length > 0) {
    // The PF's bit still governs its VFs from wherever it goes, out of the service's sight.
    out.reason('F2', `PF ${cmd.bdf} leaves the VM: its VF(s) ${vfs.map((v) => v.bdf).join(', ')} follow a bit the service cannot see and may no-snoop`);
  }
  exposureTransition(state, vm, before, out, true);
  const kvm = kvmTransition(vm, kvmBefore, out);
  touch(vm, now);
  return { state, decision: out.build(kvm) };
}

/**
 * R1. vfio-pci saves and restores config space around every reset it performs (bus mastering off
 * meanwhile), so by default the bit keeps its state and nothing is replayed. A reset that does
 * not restore config returns the bit to its default 1 unless hardwired to zero: that may expose
 * (F2) until the VMM re-applies the policy.
 */
export function resetDevice(state: CoherencyState, cmd: { vmId: VmId; bdf: PciAddress; restoresConfig?: boolean }, now: number): CommandResult {
  const vm = getVm(state, cmd.vmId);
  const device = getDevice(vm, cmd.bdf);
  const out = new DecisionBuilder();
  if (device.function === 'vf') {
    out.reason('R1', "VF reset: the VF's Enable No Snoop is reserved; the PF's bit, which governs it, is unchanged");
    touch(vm, now);
    return { state, decision: out.build(kvmNoncoherentDma(vm)) };
  }
  if (cmd.restoresConfig !== false) {
    out.reason('R1', `device ${device.bdf} reset with its config space saved and restored: Enable No Snoop keeps its state, nothing is replayed`);
    touch(vm, now);
    return { state, decision: out.build(kvmNoncoherentDma(vm)) };
  }
  const before = exposedDomains(vm, state.quirks);
  const hardwired = device.nosnoop === 'hardwired-zero';
  const reset: Device = {
    ...device,
    nosnoop: hardwired ? 'hardwired-zero' : 'enabled',
    pendingNosnoop: null,
    quietUntilReported: false,
    devctl: hardwired ? DEVCTL_RESET_DEFAULT & ~DEVCTL_NOSNOOP_EN : DEVCTL_RESET_DEFAULT
  };
  vm.devices.set(reset.bdf, reset);
  out.reason(
    'R1',
    hardwired
      ? `device ${device.bdf} reset without restoring config: Enable No Snoop is hardwired to 0 and stays 0`
      : `device ${device.bdf} reset without restoring config: Enable No Snoop returns to its default 1; the device counts as enabled until the VMM reports otherwise`
  );
  exposureTransition(state, vm, before, out, true);
  const outcome = applyPolicyToBit(state, vm, reset, out, 'reset');
  if (outcome?.decision === 'deny') vm.devices.set(reset.bdf, decideState(reset, 'disabled', outcome.hardwareValue));
  touch(vm, now);
  return { state, decision: out.build(kvmNoncoherentDma(vm), outcome) };
}

/** A trapped DEVCTL write (W1-W8); an allowed enable triggers F2 before the bit reaches hardware. */
export function devctl(
  state: CoherencyState,
  cmd: { vmId: VmId; bdf: PciAddress; write: DevctlWrite; dryRun?: boolean },
  now: number
): CommandResult {
  const vm = getVm(state, cmd.vmId);
  const device = getDevice(vm, cmd.bdf);
  const evaluation = evaluateDevctlWrite(vm, device, state.quirks, cmd.write);
  const out = new DecisionBuilder();
  for (const r of evaluation.reasons) out.reason(r.rule, r.message);
  const before = exposedDomains(vm, state.quirks);
  const next = evaluation.outcome.decision === 'ignore' ? device : decideState(device, evaluation.nextState, evaluation.outcome.hardwareValue);
  if (next.pendingNosnoop !== null && next.pendingNosnoop !== device.pendingNosnoop) {
    out.reason(evaluation.reasons[evaluation.reasons.length - 1]?.rule ?? 'W6', `device ${device.bdf} counts as ${next.nosnoop} until the VMM reports the bit clear`);
  }
  // One path for the write and its dry run: the dry run reads exposure with the whole device as
  // the write would leave it (pending state, quiet), not only its nosnoop, or a quiet device's
  // preview would answer a replay its write does not make.
  const commit = cmd.dryRun !== true;
  if (commit) vm.devices.set(device.bdf, next);
  exposureTransition(state, vm, before, out, commit, commit ? undefined : next);
  if (commit) touch(vm, now);
  return { state, decision: out.build(kvmNoncoherentDma(vm), evaluation.outcome) };
}
