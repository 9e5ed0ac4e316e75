/**
 * What every command does first and last: find the VM and device it names (refusing unknown
 * ones before anything changes), and mark the VM changed.
 */
import { DomainError } from '../errors.js';
import type { PciAddress, VmId } from '../ids.js';
import type { CoherencyState, Device, Vm } from '../state.js';

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

/**
 * Marks a change of `vm` at `now`. Its revision counts the VM's own changes; a change applied
 * with a revision of the log (see effects.ts) numbers the VM with that instead once it is done.
 */
export function touch(vm: Vm, now: number): void {
  vm.revision++;
  vm.updatedAt = now;
}
