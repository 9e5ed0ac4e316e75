/**
 * W8: a per-device override in the VM's policy decides that device's trapped enables ahead of
 * W3 and W4; W1 and W7 still apply, and pessimistic ignores it.
 */
import { describe, expect, it } from 'vitest';
import { DEVCTL_NOSNOOP_EN as NS, DEVCTL_RESET_DEFAULT, decodeVm, encodeVmRecord, getVm, isDomainError, PinMap, viewVm, type PolicyInput } from '../../src/domain/index.js';
import { Core, IGPU, rules } from '../helpers/core.js';

const GPU = '0000:01:00.0';
const NIC = '0000:02:00.0';

/** A VM with one non-coherent domain, a device at GPU (`kind`) and two pinned pages. */
function vmWith(policy: PolicyInput, kind?: typeof IGPU): Core {
  const core = Core.withVm(policy);
  core.domain('d0', false);
  core.device(GPU, { nosnoop: 'disabled', ...(kind === undefined ? {} : { kind }) });
  core.device(NIC, { nosnoop: 'disabled' });
  core.pin(0, 2);
  return core;
}

describe('W8: per-device override', () => {
  it('allow: the device may set the bit under trap deny, after the replay, as W4 allow; other devices keep the mode', () => {
    const core = vmWith({ mode: 'trap', onEnable: 'deny', devices: { [GPU]: { onEnable: 'allow' } } });
    const d = core.devctl(GPU, { nosnoopEnable: true });
    expect(d.devctl?.decision).toBe('allow');
    expect(rules(d)).toContain('W8');
    expect(rules(d)).not.toContain('W4');
    expect(d.flush.pages).toBe(2);
    expect(rules(d)).toContain('F2');
    expect(core.flagged(0)).toBe(true);
    const other = core.devctl(NIC, { nosnoopEnable: true });
    expect(other.devctl?.decision).toBe('deny');
    expect(rules(other)).toContain('W4');
  });

  it('allow overrides virtualize-zero too', () => {
    const core = vmWith({ mode: 'virtualize-zero', devices: { [GPU]: { onEnable: 'allow' } } });
    const d = core.devctl(GPU, { nosnoopEnable: true });
    expect(d.devctl?.decision).toBe('allow');
    expect(rules(d)).toEqual(expect.arrayContaining(['W8', 'F2']));
    expect(d.flush.pages).toBe(2);
  });

  it('deny: the bit stays 0 even for a needs-nosnoop device that virtualize-zero exempts (W3) or trap allows (W4)', () => {
    for (const policy of [
      { mode: 'virtualize-zero', exemptNeedsNoSnoop: true },
      { mode: 'trap', onEnable: 'allow-needs-nosnoop' },
      { mode: 'trap', onEnable: 'allow' }
    ] as const) {
      const core = vmWith({ ...policy, devices: { [GPU]: { onEnable: 'deny' } } }, IGPU);
      const d = core.devctl(GPU, { value: DEVCTL_RESET_DEFAULT });
      expect(d.devctl, JSON.stringify(policy)).toEqual({ decision: 'deny', hardwareValue: DEVCTL_RESET_DEFAULT & ~NS, guestValue: DEVCTL_RESET_DEFAULT & ~NS });
      expect(rules(d)).toContain('W8');
      expect(d.flush.required).toBe(false);
      expect(core.pin(8, 2).flush.required).toBe(false);
    }
  });

  it('deny clears a set bit at attach, and a policy change to deny clears a bit already set', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow', devices: { [GPU]: { onEnable: 'deny' } } });
    core.domain('d0', false);
    const attach = core.device(GPU, { nosnoop: 'enabled' });
    expect(attach.devctl).toEqual({ decision: 'deny', hardwareValue: DEVCTL_RESET_DEFAULT & ~NS, guestValue: DEVCTL_RESET_DEFAULT & ~NS });
    expect(rules(attach)).toContain('W8');
    const again = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    again.domain('d0', false);
    again.device(GPU, { nosnoop: 'enabled' });
    const change = again.putVm({ mode: 'trap', onEnable: 'allow', devices: { [GPU]: { onEnable: 'deny' } } });
    expect(change.devices).toEqual([{ bdf: GPU, decision: 'deny', hardwareValue: DEVCTL_RESET_DEFAULT & ~NS, guestValue: DEVCTL_RESET_DEFAULT & ~NS }]);
    expect(rules(change)).toContain('W8');
  });

  it('an unknown device under an allowing mode is told to write 0 at attach when its override denies', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow', devices: { [GPU]: { onEnable: 'deny' } } });
    core.domain('d0', false);
    const attach = core.device(GPU, { nosnoop: 'unknown' });
    expect(attach.devctl?.decision).toBe('deny');
    expect(rules(attach)).toContain('W8');
  });

  it('W1 (coherent domain) and W7 (ignores its bit) still apply ahead of it', () => {
    const coherent = Core.withVm({ mode: 'trap', onEnable: 'allow', devices: { [GPU]: { onEnable: 'deny' } } });
    coherent.domain('c0', true);
    coherent.device(GPU, { domain: 'c0', nosnoop: 'disabled' });
    const w1 = coherent.devctl(GPU, { nosnoopEnable: true });
    expect(w1.devctl?.decision).toBe('allow');
    expect(rules(w1)).toContain('W1');
    expect(rules(w1)).not.toContain('W8');
    // The NIC quirked ignores-nosnoop-enable: its bit is meaningless whatever the override says.
    const w7 = new Core([{ vendorId: 0x15b3, deviceId: 0x1017, deviceMask: 0xffff, flags: ['ignores-nosnoop-enable'] }]);
    w7.putVm({ mode: 'trap', onEnable: 'deny', devices: { [GPU]: { onEnable: 'deny' } } });
    w7.domain('d0', false);
    w7.device(GPU, { nosnoop: 'disabled' });
    const d = w7.devctl(GPU, { nosnoopEnable: true });
    expect(d.devctl?.decision).toBe('allow');
    expect(rules(d)).toContain('W7');
    expect(rules(d)).not.toContain('W8');
  });

  it('pessimistic ignores it (W5)', () => {
    const core = vmWith({ mode: 'pessimistic', devices: { [GPU]: { onEnable: 'deny' } } });
    const d = core.devctl(GPU, { nosnoopEnable: true });
    expect(d.devctl?.decision).toBe('allow');
    expect(rules(d)).toContain('W5');
    expect(rules(d)).not.toContain('W8');
  });

  it('a dry run answers as the write', () => {
    const core = vmWith({ mode: 'trap', onEnable: 'deny', devices: { [GPU]: { onEnable: 'allow' } } });
    const dry = core.devctl(GPU, { nosnoopEnable: true }, true);
    expect(dry.devctl?.decision).toBe('allow');
    expect(rules(dry)).toContain('W8');
    expect(core.flagged(0)).toBe(false);
  });

  it('is kept as resolved: canonical addresses, shown in the VM view, carried by the stored record', () => {
    const core = Core.withVm({ mode: 'trap', devices: { '0000:0A:00.0': { onEnable: 'allow' } } });
    const vm = getVm(core.state, core.vm);
    expect(vm.policy.devices).toEqual({ '0000:0a:00.0': { onEnable: 'allow' } });
    expect(viewVm(core.state, vm).policy.devices).toEqual({ '0000:0a:00.0': { onEnable: 'allow' } });
    expect(decodeVm(encodeVmRecord(vm), new PinMap()).policy).toEqual(vm.policy);
    // No override: no field at all (records of VMs without one are as before).
    expect('devices' in getVm(Core.withVm({ mode: 'trap' }).state, core.vm).policy).toBe(false);
  });

  it('refuses a key that is not a PCI address, a device named twice, an unknown verdict', () => {
    const refused = (devices: PolicyInput['devices']): string => {
      try {
        Core.withVm({ mode: 'trap', devices });
      } catch (err) {
        if (isDomainError(err)) return `${err.code} ${String(err.details['field'])}`;
        throw err;
      }
      return 'accepted';
    };
    expect(refused({ 'not-a-bdf': { onEnable: 'allow' } })).toBe('INVALID_PCI_ADDRESS policy.devices');
    expect(refused({ '0000:0a:00.0': { onEnable: 'allow' }, '0000:0A:00.0': { onEnable: 'deny' } })).toBe('INVALID_POLICY policy.devices');
    expect(refused({ [GPU]: { onEnable: 'maybe' as 'allow' } })).toBe(`INVALID_POLICY policy.devices.${GPU}.onEnable`);
  });
});
