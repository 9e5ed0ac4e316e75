/**
 * A VM as stored: everything but its pinned ranges as a JSON record (small: policy, domains,
 * devices, subsets, counters), the ranges as a typed array. The store keeps these records and
 * the pin map's operations, never the commands that led to them, so loading them decides nothing.
 */
import type { DomainId, PciAddress, VmId } from './ids.js';
import type { PinMap } from './pin-map.js';
import type { Arch, Policy } from './policy.js';
import type { Device, IommuDomain, Vm } from './state.js';

/** Version of the record format; a record of another version is refused, never guessed at. */
export const VM_RECORD_VERSION = 1;

interface VmRecordJson {
  readonly v: number;
  readonly id: VmId;
  readonly arch: Arch;
  readonly policy: Policy;
  readonly domains: readonly IommuDomain[];
  readonly devices: readonly Device[];
  readonly subsets: readonly (readonly DomainId[])[];
  readonly flaggedPages: number;
  readonly revision: number;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** The VM without its pinned ranges, as JSON. */
export function encodeVmRecord(vm: Vm): string {
  const record: VmRecordJson = {
    v: VM_RECORD_VERSION,
    id: vm.id,
    arch: vm.arch,
    policy: vm.policy,
    domains: [...vm.domains.values()],
    devices: [...vm.devices.values()],
    subsets: vm.subsets,
    flaggedPages: vm.flaggedPages,
    revision: vm.revision,
    createdAt: vm.createdAt,
    updatedAt: vm.updatedAt
  };
  return JSON.stringify(record);
}

/**
 * What a change that only pins or unpins does to the record, besides its pin operations: the
 * revision, the time and the flagged pages, as `~revision,updatedAt,flaggedPages`. Far smaller
 * and cheaper than the whole record, which such a change leaves as it was otherwise.
 */
export function encodeVmDelta(vm: Vm): string {
  return `~${vm.revision},${vm.updatedAt},${vm.flaggedPages}`;
}

/** Whether a stored record is a delta (encodeVmDelta) rather than a whole record. */
export function isVmDelta(text: string): boolean {
  return text.charCodeAt(0) === 0x7e;
}

/** Applies a delta (encodeVmDelta) to the VM it was made for. */
export function applyVmDelta(vm: Vm, text: string): void {
  const [revision, updatedAt, flaggedPages] = text.slice(1).split(',').map(Number);
  if (!Number.isSafeInteger(revision) || !Number.isSafeInteger(updatedAt) || !Number.isSafeInteger(flaggedPages)) throw new Error(`stored VM delta is malformed: ${text}`);
  vm.revision = revision as number;
  vm.updatedAt = updatedAt as number;
  vm.flaggedPages = flaggedPages as number;
}

/** A VM from its record and pinned ranges (an existing PinMap is kept as it is). */
export function decodeVm(text: string, pins: PinMap): Vm {
  const r = JSON.parse(text) as VmRecordJson;
  if (r.v !== VM_RECORD_VERSION) throw new Error(`stored VM record has an unknown format (version ${String(r.v)})`);
  return {
    id: r.id,
    arch: r.arch,
    policy: Object.freeze({ ...r.policy }),
    domains: new Map(r.domains.map((d) => [d.id, d])),
    devices: new Map<PciAddress, Device>(r.devices.map((d) => [d.bdf, d])),
    pins,
    subsets: r.subsets.map((s) => [...s]),
    flaggedPages: r.flaggedPages,
    revision: r.revision,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt
  };
}
