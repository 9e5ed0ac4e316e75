/**
 * Commands: the only way state changes. Each validates its whole input first (so a rejected
 * command changes nothing), then updates the aggregate and returns the decision the caller must
 * act on. Every flush a decision demands must be done before the change takes effect.
 *
 * Where the rules live:
 *   F1, F2, F3, F4, C1 .... ranges.ts: the one range classifier (pins, replays, releases, query)
 *   F1 pin ................ mapRanges()           F3 unpin ............ release()
 *   F2 replay ............. exposureTransition()  F5 teardown ......... deleteVm(), deleteDomain()
 *   C1, W1-W7 ............. devctl.ts, exposure.ts (VFs and their PFs: governingFunction())
 *   W3, W4 set bits ....... applyPolicyToBit() (attach, report, reset), applyPolicyToSetBits() (changes)
 *   R1 reset .............. resetDevice()         K1 .................. kvmTransition()
 *   pending clears ........ decideState(): exposure grows when decided, shrinks when confirmed
 */
import { checkSpan, formatPages } from './address.js';
import { DecisionBuilder, type Decision, type DevctlOutcome, type FlushCause } from './decision.js';
import { DEVCTL_BCR_FLR, DEVCTL_NOSNOOP_EN, DEVCTL_RESET_DEFAULT, devctlFor, enableVerdict, evaluateDevctlWrite, type DevctlWrite } from './devctl.js';
import { DomainError } from './errors.js';
import { exposedDomains, governedVfs, kvmNoncoherentDma, stateMayNoSnoop, type NoSnoopOverride } from './exposure.js';
import { classifyPin, classifyRelease, classifyReplay, Exposure } from './ranges.js';
import { formatHex16, type DomainId, type PciAddress, type VmId } from './ids.js';
import { resolvePolicy, type Arch, type PolicyInput } from './policy.js';
import { QuirkTable, type Quirk } from './quirks.js';
import type { RuleId } from './rules.js';
import {
  attrFlushOnUnpin,
  attrPessimisticFlag,
  attrSubset,
  createVm,
  internSubset,
  isFlushExempt,
  packAttr,
  withFlushOnUnpin,
  type CoherencyState,
  type Device,
  type MemType,
  type NoSnoopState,
  type Vm,
  withPessimisticFlag
} from './state.js';

export interface PinInput {
  readonly iova: number;
  readonly pages: number;
  readonly hpa: number;
  readonly memType?: MemType;
  readonly mmio?: boolean;
  /** The domains the range maps into; absent or null: every domain of the VM. */
  readonly domains?: readonly DomainId[] | null;
}

export interface RangeInput {
  readonly iova: number;
  readonly pages: number;
}

export interface DeviceInput {
  readonly bdf: PciAddress;
  readonly domainId: DomainId | null;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly function: 'pf' | 'vf';
  readonly physfn?: PciAddress | null;
  readonly nosnoop: NoSnoopState;
  readonly pci?: boolean;
  readonly devctl?: number;
}

export type Command =
  | { readonly type: 'put-vm'; readonly vmId: VmId; readonly arch: Arch; readonly policy?: PolicyInput }
  | { readonly type: 'delete-vm'; readonly vmId: VmId }
  | { readonly type: 'put-domain'; readonly vmId: VmId; readonly domainId: DomainId; readonly enforceCacheCoherency: boolean; readonly iommu?: string | null }
  | { readonly type: 'delete-domain'; readonly vmId: VmId; readonly domainId: DomainId }
  | { readonly type: 'put-device'; readonly vmId: VmId; readonly device: DeviceInput }
  | { readonly type: 'delete-device'; readonly vmId: VmId; readonly bdf: PciAddress }
  | {
      readonly type: 'reset-device';
      readonly vmId: VmId;
      readonly bdf: PciAddress;
      /** vfio-pci saves and restores config space around every reset it performs: true (the default). */
      readonly restoresConfig?: boolean;
    }
  | { readonly type: 'pin'; readonly vmId: VmId; readonly ranges: readonly PinInput[] }
  | { readonly type: 'unpin'; readonly vmId: VmId; readonly ranges: readonly RangeInput[] }
  | { readonly type: 'devctl'; readonly vmId: VmId; readonly bdf: PciAddress; readonly write: DevctlWrite; readonly dryRun?: boolean }
  | { readonly type: 'put-quirks'; readonly quirks: readonly Quirk[] };

export interface CommandResult {
  readonly state: CoherencyState;
  /** The decision for the VM the command names (for put-quirks: an empty decision, see `vms`). */
  readonly decision: Decision;
  /** put-quirks: the decision for every VM the change affected. */
  readonly vms?: ReadonlyMap<VmId, Decision>;
  /** put-vm, put-domain, put-device: whether the resource was created. */
  readonly created?: boolean;
  /** delete-vm: the VM's last revision, since it is no longer in the state. */
  readonly revision?: number;
}

/** Applies `cmd` to `state` at time `now` (ms). Throws DomainError when the command is rejected. */
export function applyCommand(state: CoherencyState, cmd: Command, now: number): CommandResult {
  switch (cmd.type) {
    case 'put-vm':
      return putVm(state, cmd, now);
    case 'delete-vm':
      return deleteVm(state, cmd.vmId);
    case 'put-domain':
      return putDomain(state, cmd, now);
    case 'delete-domain':
      return deleteDomain(state, cmd, now);
    case 'put-device':
      return putDevice(state, cmd.vmId, cmd.device, now);
    case 'delete-device':
      return deleteDevice(state, cmd, now);
    case 'reset-device':
      return resetDevice(state, cmd, now);
    case 'pin':
      return pin(state, cmd, now);
    case 'unpin':
      return unpin(state, cmd, now);
    case 'devctl':
      return devctl(state, cmd, now);
    case 'put-quirks':
      return putQuirks(state, cmd.quirks, now);
  }
}

/**
 * The command as decided, for the log: a put-vm carries the policy resolved against the server
 * defaults in force when it was applied, so replaying it after a restart under other defaults
 * decides nothing again. Other commands carry everything their decision depends on already.
 */
export function decidedCommand(state: CoherencyState, cmd: Command): Command {
  if (cmd.type !== 'put-vm') return cmd;
  return { ...cmd, policy: resolvePolicy(cmd.arch, state.defaults, cmd.policy) };
}

// ---- helpers ---------------------------------------------------------------------------------

export function getVm(state: CoherencyState, vmId: VmId): Vm {
  const vm = state.vms.get(vmId);
  if (vm === undefined) throw new DomainError('UNKNOWN_VM', `VM ${vmId} does not exist`, { vmId });
  return vm;
}

export function getDevice(vm: Vm, bdf: PciAddress): Device {
  const device = vm.devices.get(bdf);
  if (device === undefined) throw new DomainError('UNKNOWN_DEVICE', `device ${bdf} is not assigned to VM ${vm.id}`, { vmId: vm.id, bdf });
  return device;
}

function touch(vm: Vm, now: number): void {
  vm.revision++;
  vm.updatedAt = now;
}

function bytes(pages: number): string {
  return formatPages(pages);
}

/**
 * F2: flush every pinned range mapped into `domainId` whose flushOnUnpin flag is not set yet,
 * and set the flags (unless this is a dry run). Returns the ranges and pages concerned.
 */
function replay(vm: Vm, domainId: DomainId, out: DecisionBuilder, commit: boolean): { ranges: number; pages: number } {
  const mapsInto = vm.subsets.map((s, i) => i === 0 || s.includes(domainId));
  // Classified once per attribute word: the ranges newly flagged are counted, flushed unless exempt.
  const walked = vm.pins.walkByAttr((attr) => {
    const c = classifyReplay(attr, mapsInto[attrSubset(attr)] === true);
    const counted = c.flag && !attrFlushOnUnpin(attr);
    return { attr: counted && commit ? withFlushOnUnpin(attr) : attr, collect: counted && c.flush, counted };
  });
  if (commit) vm.flaggedPages += walked.pages;
  out.flushAll(walked.pairs, 'replay', walked.coalesced);
  return { ranges: walked.ranges, pages: walked.pages };
}

/**
 * What the pessimistic policy would replay when `domainId` becomes non-coherent: the same walk
 * as F2 over the shadow flag, counted for the "bytes avoided" figure and never flushed.
 */
function pessimisticReplay(vm: Vm, domainId: DomainId, out: DecisionBuilder): void {
  const mapsInto = vm.subsets.map((s, i) => i === 0 || s.includes(domainId));
  // One pass over the map's arrays, planned once per attribute word (see replay).
  const walked = vm.pins.walkByAttr((attr) => {
    if (attrPessimisticFlag(attr) || mapsInto[attrSubset(attr)] !== true) return { attr, collect: false, counted: false };
    return { attr: withPessimisticFlag(attr), collect: false, counted: !isFlushExempt(attr) };
  });
  if (walked.pages > 0) out.pessimistic(walked.pages);
}

/** F2 for every domain exposed now that was not exposed in `before`. */
function exposureTransition(
  state: CoherencyState,
  vm: Vm,
  before: ReadonlySet<DomainId>,
  out: DecisionBuilder,
  commit: boolean,
  override?: NoSnoopOverride
): void {
  const after = exposedDomains(vm, state.quirks, override);
  for (const domainId of after) {
    if (before.has(domainId)) continue;
    const { ranges, pages } = replay(vm, domainId, out, commit);
    out.reason(
      'F2',
      ranges === 0
        ? `domain ${domainId} becomes exposed; no pinned range needs a replay flush`
        : `domain ${domainId} becomes exposed: flush ${ranges} pinned range(s), ${bytes(pages)} bytes, before the change takes effect; flushOnUnpin set`
    );
  }
}

/** K1: says so when the VM's need for non-coherent DMA handling in KVM changes. */
function kvmTransition(vm: Vm, before: boolean, out: DecisionBuilder): boolean {
  const after = kvmNoncoherentDma(vm);
  if (after !== before) {
    const what =
      vm.arch === 'x86_64'
        ? 'KVM must treat the VM as having non-coherent DMA (honour guest WBINVD and PAT)'
        : "KVM must treat the VM as having non-coherent DMA (the guest's memory attributes and its cache maintenance by VA must reach the hardware)";
    out.reason('K1', after ? `a device now sits in a non-coherent domain: ${what}` : 'no device sits in a non-coherent domain any more: KVM may treat the VM as coherent');
  }
  return after;
}

/**
 * F3: releases the pinned ranges that start at `starts`, flushing those whose flushOnUnpin flag
 * is set, except F4-exempt mmio. Used by unpin (F3) and teardown (F5).
 */
function release(vm: Vm, starts: readonly number[], out: DecisionBuilder, cause: FlushCause): void {
  let flushed = 0;
  let flushedPages = 0;
  let clean = 0;
  let exempt = 0;
  for (const start of starts) {
    const r = vm.pins.get(start);
    if (r === undefined) continue;
    if (attrPessimisticFlag(r.attr) && !isFlushExempt(r.attr)) out.pessimistic(r.pages);
    if (attrFlushOnUnpin(r.attr)) vm.flaggedPages -= r.pages;
    const c = classifyRelease(r.attr);
    if (c.flush) {
      out.flush(r.hpa, r.pages, cause);
      flushed++;
      flushedPages += r.pages;
    } else if (c.rule === 'F4') {
      exempt++;
    } else {
      clean++;
    }
    vm.pins.remove(start);
  }
  if (flushed > 0) {
    out.reason('F3', `unmap, then flush ${flushed} range(s), ${bytes(flushedPages)} bytes, before the pages are released: flushOnUnpin is set`);
  }
  if (clean > 0) {
    out.reason('F3', `${clean} range(s) released without a flush: never mapped into an exposed domain`);
  }
  if (exempt > 0) {
    out.reason('F4', `${exempt} mmio range(s) mapped UC, UC- or WC on the host are released without a flush`);
  }
}

function allStarts(vm: Vm): number[] {
  const starts: number[] = [];
  vm.pins.forEach((start) => {
    starts.push(start);
    return undefined;
  });
  return starts;
}

// ---- VMs -------------------------------------------------------------------------------------

function putVm(state: CoherencyState, cmd: { vmId: VmId; arch: Arch; policy?: PolicyInput }, now: number): CommandResult {
  const policy = resolvePolicy(cmd.arch, state.defaults, cmd.policy);
  const out = new DecisionBuilder();
  const existing = state.vms.get(cmd.vmId);
  if (existing === undefined) {
    const vm = createVm(cmd.vmId, cmd.arch, policy, now);
    state.vms.set(vm.id, vm);
    touch(vm, now);
    return { state, decision: out.build(false), created: true };
  }
  if (existing.arch !== cmd.arch) {
    throw new DomainError('ARCH_CHANGE', `VM ${cmd.vmId} is ${existing.arch}; its architecture cannot change`, { vmId: cmd.vmId });
  }
  const before = exposedDomains(existing, state.quirks);
  existing.policy = policy;
  exposureTransition(state, existing, before, out, true);
  applyPolicyToSetBits(state, existing, out, 'policy change');
  touch(existing, now);
  return { state, decision: out.build(kvmNoncoherentDma(existing)), created: false };
}

/** F5: teardown unpins every range with F3 semantics. */
function deleteVm(state: CoherencyState, vmId: VmId): CommandResult {
  const vm = getVm(state, vmId);
  const out = new DecisionBuilder();
  const count = vm.pins.size;
  out.reason('F5', `VM teardown: ${count} pinned range(s) are unmapped, then released with unpin semantics`);
  release(vm, allStarts(vm), out, 'teardown');
  state.vms.delete(vmId);
  return { state, decision: out.build(false), revision: vm.revision + 1 };
}

// ---- IOMMU domains ---------------------------------------------------------------------------

function putDomain(
  state: CoherencyState,
  cmd: { vmId: VmId; domainId: DomainId; enforceCacheCoherency: boolean; iommu?: string | null },
  now: number
): CommandResult {
  const vm = getVm(state, cmd.vmId);
  const out = new DecisionBuilder();
  const existing = vm.domains.get(cmd.domainId);
  const iommu = cmd.iommu ?? null;
  if (existing !== undefined && existing.enforceCacheCoherency === cmd.enforceCacheCoherency && existing.iommu === iommu) {
    return { state, decision: out.build(kvmNoncoherentDma(vm)), created: false };
  }
  const before = exposedDomains(vm, state.quirks);
  const kvmBefore = kvmNoncoherentDma(vm);
  vm.domains.set(cmd.domainId, { id: cmd.domainId, enforceCacheCoherency: cmd.enforceCacheCoherency, iommu });
  if (!cmd.enforceCacheCoherency) pessimisticReplay(vm, cmd.domainId, out);
  if (cmd.enforceCacheCoherency) {
    out.reason('C1', `domain ${cmd.domainId} enforces cache coherency: nothing is flushed for it, existing flushOnUnpin flags stay`);
  }
  exposureTransition(state, vm, before, out, true);
  if (existing !== undefined) applyPolicyToSetBits(state, vm, out, `domain ${cmd.domainId} changed`);
  const kvm = kvmTransition(vm, kvmBefore, out);
  touch(vm, now);
  return { state, decision: out.build(kvm), created: existing === undefined };
}

/**
 * Removing the last domain unmaps everything (VFIO type1): F5. Removing one of several unpins
 * nothing, except pins that named only removed domains.
 */
function deleteDomain(state: CoherencyState, cmd: { vmId: VmId; domainId: DomainId }, now: number): CommandResult {
  const vm = getVm(state, cmd.vmId);
  if (!vm.domains.has(cmd.domainId)) {
    throw new DomainError('UNKNOWN_DOMAIN', `domain ${cmd.domainId} does not exist in VM ${vm.id}`, { vmId: vm.id, domainId: cmd.domainId });
  }
  const attached = [...vm.devices.values()].filter((d) => d.domainId === cmd.domainId).map((d) => d.bdf);
  if (attached.length > 0) {
    throw new DomainError('DOMAIN_HAS_DEVICES', `domain ${cmd.domainId} still has devices attached: ${attached.join(', ')}`, {
      vmId: vm.id,
      domainId: cmd.domainId,
      devices: attached
    });
  }
  const out = new DecisionBuilder();
  const kvmBefore = kvmNoncoherentDma(vm);
  if (vm.domains.size === 1) {
    out.reason('F5', `domain ${cmd.domainId} is the VM's last domain: all ${vm.pins.size} pinned range(s) are unmapped and released`);
    release(vm, allStarts(vm), out, 'teardown');
  } else {
    const emptied = new Set<number>();
    vm.subsets.forEach((list, i) => {
      if (i === 0 || !list.includes(cmd.domainId)) return;
      const rest = list.filter((d) => d !== cmd.domainId);
      vm.subsets[i] = rest;
      if (rest.length === 0) emptied.add(i);
    });
    if (emptied.size > 0) {
      const orphans: number[] = [];
      vm.pins.forEach((start, _n, _h, attr) => {
        if (emptied.has(attrSubset(attr))) orphans.push(start);
        return undefined;
      });
      if (orphans.length > 0) {
        out.reason('F5', `${orphans.length} pinned range(s) mapped only into domain ${cmd.domainId} are unmapped and released`);
        release(vm, orphans, out, 'teardown');
      }
    }
  }
  vm.domains.delete(cmd.domainId);
  const kvm = kvmTransition(vm, kvmBefore, out);
  touch(vm, now);
  return { state, decision: out.build(kvm) };
}

// ---- devices ---------------------------------------------------------------------------------

/**
 * A decided No-Snoop state. One that makes the device more exposed (or as exposed) takes effect
 * at once; one that makes it less exposed is pending until the VMM reports that the hardware
 * reads it, since until then the bit may still be 1.
 */
function decideState(device: Device, next: NoSnoopState, devctl: number): Device {
  if (stateMayNoSnoop(device.nosnoop) && !stateMayNoSnoop(next)) return { ...device, pendingNosnoop: next, devctl };
  return { ...device, nosnoop: next, pendingNosnoop: null, quietUntilReported: false, devctl };
}

function putDevice(state: CoherencyState, vmId: VmId, input: DeviceInput, now: number): CommandResult {
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

type PolicyOccasion = 'attach' | 'move' | 'report' | 'reset';

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
function applyPolicyToBit(state: CoherencyState, vm: Vm, device: Device, out: DecisionBuilder, when: PolicyOccasion): DevctlOutcome | undefined {
  if (device.function === 'vf' || !device.pci) return undefined;
  const unknown = device.nosnoop === 'unknown';
  if (device.nosnoop !== 'enabled' && !(unknown && keepsBitZero(vm.policy))) return undefined;
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

/** W3: the policies under which the hardware's bit is kept 0 whatever the guest writes. */
function keepsBitZero(policy: Vm['policy']): boolean {
  return policy.mode === 'virtualize-zero' || (policy.mode === 'trap' && policy.onEnable === 'deny');
}

/**
 * A policy, domain, device or quirk change applies the policy to bits already set: every device
 * of the VM whose bit is set and that the policy now denies is told to clear it (`devices`). The
 * exposure it causes ends once the VMM reports the bit clear.
 */
function applyPolicyToSetBits(state: CoherencyState, vm: Vm, out: DecisionBuilder, cause: string, skip?: PciAddress): void {
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

function deleteDevice(state: CoherencyState, cmd: { vmId: VmId; bdf: PciAddress }, now: number): CommandResult {
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
function resetDevice(state: CoherencyState, cmd: { vmId: VmId; bdf: PciAddress; restoresConfig?: boolean }, now: number): CommandResult {
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

/** A trapped DEVCTL write (W1-W7); an allowed enable triggers F2 before the bit reaches hardware. */
function devctl(
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

// ---- pins ------------------------------------------------------------------------------------

/** Per range of a pin or a map query: whether it is flushed, and the rule that decided it. */
export interface RangeOutcome {
  required: boolean;
  rule: RuleId;
}

/**
 * F1 (C1, F4) over a batch already validated: classifies every range with the one classifier,
 * adds the flushes to `out`, and (when `commit`) inserts the ranges. Without `commit` nothing
 * changes: this is the map query's dry run. `results`, when given, receives one outcome per range.
 */
export function mapRanges(vm: Vm, exposure: Exposure, ranges: readonly PinInput[], out: DecisionBuilder, commit: boolean, results?: RangeOutcome[]): void {
  let flushed = 0;
  let flushedPages = 0;
  let unlisted = 0;
  let exempt = 0;
  let coherent = 0;
  let quiet = 0;
  for (const r of ranges) {
    const domains = r.domains === undefined || r.domains === null || r.domains.length === 0 ? null : r.domains;
    const subset = commit ? internSubset(vm, domains) : 0;
    const verdict = commit ? exposure.ofSubset(subset) : exposure.ofDomains(domains);
    const c = classifyPin(verdict, packAttr(r.memType ?? 'WB', r.mmio ?? false, false, 0));
    // Pessimistic flags every range mapped into any non-coherent domain.
    const shadow = verdict !== 'coherent';
    const attr = packAttr(r.memType ?? 'WB', r.mmio ?? false, c.flag, subset, shadow);
    if (shadow && !isFlushExempt(attr)) out.pessimistic(r.pages);
    if (c.flush) {
      if (Number.isNaN(r.hpa)) {
        out.unlisted('pin');
        unlisted++;
      } else {
        out.flush(r.hpa, r.pages, 'pin');
        flushed++;
        flushedPages += r.pages;
      }
    } else if (c.rule === 'F4') exempt++;
    else if (c.rule === 'C1') coherent++;
    else quiet++;
    results?.push({ required: c.flush, rule: c.rule });
    if (!commit) continue;
    if (c.flag) vm.flaggedPages += r.pages;
    vm.pins.insert(r.iova, r.pages, r.hpa, attr);
  }
  if (flushed > 0) {
    const names = [...exposure.exposed].join(', ');
    out.reason('F1', `flush ${flushed} range(s), ${bytes(flushedPages)} bytes, before mapping: they map into exposed domain(s) ${names}; flushOnUnpin set`);
  }
  if (unlisted > 0) {
    out.reason('F1', `flush ${unlisted} range(s) before mapping: they map into exposed domain(s) ${[...exposure.exposed].join(', ')}; give hpa to have their host ranges listed`);
  }
  if (exempt > 0) {
    out.reason('F4', `${exempt} mmio range(s) mapped UC, UC- or WC on the host are not flushed; flushOnUnpin set`);
  }
  if (coherent > 0) {
    out.reason('C1', `${coherent} range(s) map only into coherent domains: no flush`);
  }
  if (quiet > 0) {
    out.reason('F1', `${quiet} range(s) need no flush: their non-coherent domains are not exposed (no attached device may no-snoop)`);
  }
}

/** F1 (and C1, F4): pins a batch of ranges, all or nothing. */
function pin(state: CoherencyState, cmd: { vmId: VmId; ranges: readonly PinInput[] }, now: number): CommandResult {
  const vm = getVm(state, cmd.vmId);
  validatePins(vm, cmd.ranges);
  const out = new DecisionBuilder();
  mapRanges(vm, new Exposure(vm, exposedDomains(vm, state.quirks)), cmd.ranges, out, true);
  touch(vm, now);
  return { state, decision: out.build(kvmNoncoherentDma(vm)) };
}

/**
 * Everything a pin refuses, checked before anything changes. The map query checks the ranges it
 * previews as pins with this too. An hpa of NaN (a query that does not know it) is not checked.
 */
export function validatePins(vm: Vm, ranges: readonly PinInput[]): void {
  if (vm.domains.size === 0) {
    throw new DomainError('VM_HAS_NO_DOMAINS', `VM ${vm.id} has no IOMMU domain to map into; attach one first`, { vmId: vm.id });
  }
  for (const r of ranges) {
    checkRange(r.iova, r.pages, 'iova');
    if (!Number.isNaN(r.hpa)) checkRange(r.hpa, r.pages, 'hpa');
    for (const d of r.domains ?? []) {
      if (!vm.domains.has(d)) {
        throw new DomainError('UNKNOWN_DOMAIN', `pin names domain ${d}, which does not exist in VM ${vm.id}`, { vmId: vm.id, domainId: d });
      }
    }
  }
  // Overlaps inside the batch: sort by IOVA and compare neighbours.
  if (ranges.length > 1) checkBatchOverlaps(vm, ranges);
  for (const r of ranges) {
    vm.pins.forEachOverlap(r.iova, r.iova + r.pages, (start, pages) => {
      throw pinOverlap(vm, r, start, pages);
    });
  }
}

export function pinOverlap(vm: Vm, r: RangeInput, start: number, pages: number): DomainError {
  return new DomainError('PIN_OVERLAP', `iova ${formatPages(r.iova)} + ${formatPages(r.pages)} overlaps the pinned range at ${formatPages(start)}`, {
    vmId: vm.id,
    iova: formatPages(r.iova),
    conflict: { iova: formatPages(start), length: formatPages(pages) }
  });
}

function checkBatchOverlaps(vm: Vm, ranges: readonly PinInput[]): void {
  const order = ranges.map((_r, i) => i).sort((a, b) => (ranges[a] as PinInput).iova - (ranges[b] as PinInput).iova);
  for (let k = 1; k < order.length; k++) {
    const a = ranges[order[k - 1] as number] as PinInput;
    const b = ranges[order[k] as number] as PinInput;
    if (a.iova + a.pages > b.iova) {
      throw new DomainError('PIN_OVERLAP', `ranges in the batch overlap at iova ${formatPages(b.iova)}`, {
        vmId: vm.id,
        iova: formatPages(b.iova)
      });
    }
  }
}

export function checkRange(start: number, pages: number, field: string): void {
  if (!Number.isSafeInteger(start) || start < 0) throw new DomainError('INVALID_HEX', `${field} is not a page address`, { field });
  if (!Number.isSafeInteger(pages) || pages < 1) throw new DomainError('INVALID_LENGTH', 'length must be at least one page', { field: 'length' });
  checkSpan(start, pages, field);
}

/**
 * What an unpin of [iova, iova + pages) releases: every pinned range inside it, written into
 * `found` four numbers each (start, pages, hpa, attr); returns how many. Refuses what unpin
 * refuses (UNKNOWN_RANGE, UNPIN_BISECTS); the unmap query checks with it too. `overlaps`: the
 * lookup of a batch asked in IOVA order (PinMap.overlapsInOrder), else collectOverlaps.
 */
export function unpinVictims(vm: Vm, iova: number, pages: number, found: number[], overlaps?: (start: number, end: number, out: number[]) => number): number {
  checkRange(iova, pages, 'iova');
  const end = iova + pages;
  const hits = overlaps === undefined ? vm.pins.collectOverlaps(iova, end, found) : overlaps(iova, end, found);
  for (let h = 0; h < hits; h++) {
    const start = found[4 * h] as number;
    const length = found[4 * h + 1] as number;
    if (start < iova || start + length > end) {
      throw new DomainError('UNPIN_BISECTS', `unpin of ${formatPages(iova)} + ${formatPages(pages)} would cut the pinned range at ${formatPages(start)} in two`, {
        vmId: vm.id,
        conflict: { iova: formatPages(start), length: formatPages(length) }
      });
    }
  }
  if (hits === 0) {
    throw new DomainError('UNKNOWN_RANGE', `nothing is pinned in ${formatPages(iova)} + ${formatPages(pages)}`, {
      vmId: vm.id,
      iova: formatPages(iova)
    });
  }
  return hits;
}

/** F3: unpins whole pinned ranges; a range that would be cut in two is refused (UNPIN_BISECTS). */
function unpin(state: CoherencyState, cmd: { vmId: VmId; ranges: readonly RangeInput[] }, now: number): CommandResult {
  const vm = getVm(state, cmd.vmId);
  const victims = new Set<number>();
  const found: number[] = [];
  for (const r of cmd.ranges) {
    const hits = unpinVictims(vm, r.iova, r.pages, found);
    for (let h = 0; h < hits; h++) victims.add(found[4 * h] as number);
  }
  const out = new DecisionBuilder();
  release(vm, [...victims], out, 'unpin');
  touch(vm, now);
  return { state, decision: out.build(kvmNoncoherentDma(vm)) };
}

// ---- quirks ----------------------------------------------------------------------------------

/** Replaces the quirk table; every VM whose domains become exposed gets its F2 replay. */
function putQuirks(state: CoherencyState, quirks: readonly Quirk[], now: number): CommandResult {
  const before = new Map<VmId, Set<DomainId>>();
  for (const vm of state.vms.values()) before.set(vm.id, exposedDomains(vm, state.quirks));
  state.quirks = new QuirkTable(quirks);
  const vms = new Map<VmId, Decision>();
  for (const vm of state.vms.values()) {
    const out = new DecisionBuilder();
    exposureTransition(state, vm, before.get(vm.id) ?? new Set(), out, true);
    applyPolicyToSetBits(state, vm, out, 'quirk change');
    if (out.reasons.length > 0) {
      touch(vm, now);
      vms.set(vm.id, out.build(kvmNoncoherentDma(vm)));
    }
  }
  const out = new DecisionBuilder();
  return { state, decision: out.build(false), vms };
}
