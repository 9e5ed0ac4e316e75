/**
 * Commands: the only way state changes. Each validates its whole input first (so a rejected
 * command changes nothing), then updates the aggregate and returns the decision the caller must
 * act on. Every flush a decision demands must be done before the change takes effect.
 *
 * Where the rules live:
 *   F1, F2, F3, F4, C1 .... ranges.ts: the one range classifier (pins, replays, releases, query)
 *   F1 pin ................ pins.ts mapRanges()         F3 unpin .... release.ts release()
 *   F2 replay ............. transitions.ts exposureTransition()
 *   F5 teardown ........... vms.ts deleteVm(), domains.ts deleteDomain()
 *   C1, W1-W8 ............. devctl.ts, exposure.ts (VFs and their PFs: governingFunction())
 *   W3, W4, W8 set bits ... device-policy.ts: applyPolicyToBit() (attach, report, reset),
 *                           applyPolicyToSetBits() (changes)
 *   R1 reset .............. devices.ts resetDevice()    K1 .......... transitions.ts kvmTransition()
 *   pending clears ........ device-policy.ts decideState(): exposure grows when decided, shrinks when confirmed
 *   what a change did ..... effects.ts recordChange()
 */
import { resolvePolicy } from '../policy.js';
import { mergeQuirks } from '../quirks.js';
import type { CoherencyState } from '../state.js';
import type { Command, CommandResult } from './command.js';
import { deleteDevice, devctl, putDevice, resetDevice } from './devices.js';
import { deleteDomain, putDomain } from './domains.js';
import { recordChange, type ChangeResult, type ChangeStamp } from './effects.js';
import { pin, unpin } from './pins.js';
import { putQuirks } from './quirks.js';
import { deleteVm, putVm } from './vms.js';

export type { Command, CommandResult, DeviceInput, PinInput, RangeInput } from './command.js';
export type { ChangeEffects, ChangeResult, ChangeStamp, VmEffect } from './effects.js';
export { getDevice, getVm } from './common.js';
export { checkRange, pinOverlap, unpinVictims, validatePins } from './pin-checks.js';
export { mapRanges, type RangeOutcome } from './pins.js';

/**
 * Applies `cmd` to `state` at time `now` (ms). Throws DomainError when the command is rejected.
 * Given the change's position in the log (`change`), it also numbers the VMs it changed or
 * decided about with that revision and reports what it did (`effects`); without one (the
 * simulator, tests) each VM counts its own changes and nothing is journaled.
 */
export function applyCommand(state: CoherencyState, cmd: Command, now: number): CommandResult;
export function applyCommand(state: CoherencyState, cmd: Command, now: number, change: ChangeStamp): ChangeResult;
export function applyCommand(state: CoherencyState, cmd: Command, now: number, change?: ChangeStamp): CommandResult {
  if (change === undefined) return dispatch(state, cmd, now);
  return recordChange(state, cmd, change, () => dispatch(state, cmd, now));
}

function dispatch(state: CoherencyState, cmd: Command, now: number): CommandResult {
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
      return putQuirks(state, cmd.merge === true ? mergeQuirks(state.quirks.quirks, cmd.quirks) : cmd.quirks, now);
  }
}

/**
 * The command as decided, for the log: a put-vm carries the policy resolved against the server
 * defaults in force when it was applied, so replaying it after a restart under other defaults
 * decides nothing again. Other commands carry everything their decision depends on already,
 * or it is kept with their effects: a put-quirks with `merge` is merged into the list in force
 * when it is applied (never into one read before), and the list it put in force is stored as
 * its effect, which is what a restart or another replica applies.
 */
export function decidedCommand(state: CoherencyState, cmd: Command): Command {
  if (cmd.type !== 'put-vm') return cmd;
  return { ...cmd, policy: resolvePolicy(cmd.arch, state.defaults, cmd.policy) };
}
