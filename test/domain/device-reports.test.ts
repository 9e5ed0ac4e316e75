/**
 * What a device report (a device PUT) says is either refused or acted on in its own answer: a
 * report that contradicts itself about bit 11 is refused (INVALID_DEVICE), and a bit it says is set
 * where the policy denies it is cleared in that answer, as at attach (W3, W4). Under W3's
 * policies a bit the VMM could not read (`unknown`) is cleared at attach too; since it cannot be
 * read back, the device still counts as able to no-snoop until the VMM reports it clear.
 */
import { describe, expect, it } from 'vitest';
import {
  DEVCTL_NOSNOOP_EN,
  DEVCTL_RESET_DEFAULT,
  DomainError,
  exposedDomains,
  getVm,
  parseDomainId,
  parsePciAddress,
  type Decision,
  type NoSnoopState,
  type PolicyInput
} from '../../src/domain/index.js';
import { digest } from '../model/simulation.js';
import { Core, IGPU, NIC, rules } from '../helpers/core.js';

const NS = DEVCTL_NOSNOOP_EN;
const PF = '0000:01:00.0';
const OTHER = '0000:02:00.0';
const VF = '0000:01:00.2';
const CLEARED = DEVCTL_RESET_DEFAULT & ~NS;

/** A device PUT that gives the DEVCTL value the VMM read, which the Core helper leaves out. */
function report(core: Core, bdf: string, nosnoop: NoSnoopState, devctl: number, o: { fn?: 'pf' | 'vf'; physfn?: string } = {}): Decision {
  return core.run({
    type: 'put-device',
    vmId: core.vm,
    device: {
      bdf: parsePciAddress(bdf),
      domainId: parseDomainId('d0'),
      ...NIC,
      function: o.fn ?? 'pf',
      physfn: o.physfn === undefined ? null : parsePciAddress(o.physfn),
      nosnoop,
      devctl
    }
  }).decision;
}

function refusal(fn: () => unknown): DomainError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DomainError) return err;
    throw err;
  }
  throw new Error('expected a DomainError');
}

function exposed(core: Core): string[] {
  return [...exposedDomains(getVm(core.state, core.vm), core.state.quirks)].sort();
}

describe('a report that contradicts itself about Enable No Snoop is refused', () => {
  for (const nosnoop of ['disabled', 'hardwired-zero'] as const) {
    it(`devctl 0x2810 with nosnoop "${nosnoop}": INVALID_DEVICE naming both fields, nothing changed`, () => {
      const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
      core.domain('d0', false);
      core.pin(0, 4);
      const before = digest(core.state);
      const err = refusal(() => report(core, PF, nosnoop, 0x2810));
      expect(err.code).toBe('INVALID_DEVICE');
      expect(err.message).toBe(`devctl 0x2810 has Enable No Snoop (bit 11) set but nosnoop says "${nosnoop}"`);
      expect(err.details).toMatchObject({ field: 'devctl' });
      expect(digest(core.state)).toBe(before);
    });
  }

  it('is refused on a device already in the VM too, which keeps what it had', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    report(core, PF, 'enabled', 0x2810);
    const before = digest(core.state);
    expect(refusal(() => report(core, PF, 'disabled', 0x2810)).code).toBe('INVALID_DEVICE');
    expect(digest(core.state)).toBe(before);
    expect(exposed(core)).toEqual(['d0']);
  });

  it('consistent reports are taken: bit set and enabled or unknown, bit clear and any state; a VF (reserved bit) is not checked', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    expect(() => report(core, PF, 'enabled', 0x2810)).not.toThrow();
    expect(() => report(core, PF, 'unknown', 0x2810)).not.toThrow();
    expect(() => report(core, PF, 'disabled', 0x2010)).not.toThrow();
    expect(() => report(core, PF, 'enabled', 0x2010)).not.toThrow();
    expect(() => report(core, VF, 'disabled', 0x2810, { fn: 'vf', physfn: PF })).not.toThrow();
  });
});

describe("a reported set bit the policy denies is cleared in that report's own answer", () => {
  const denying: { name: string; policy: PolicyInput; rule: string }[] = [
    { name: 'virtualize-zero', policy: { mode: 'virtualize-zero' }, rule: 'W3' },
    { name: 'trap/deny', policy: { mode: 'trap', onEnable: 'deny' }, rule: 'W4' },
    { name: 'trap/allow-needs-nosnoop', policy: { mode: 'trap', onEnable: 'allow-needs-nosnoop' }, rule: 'W4' }
  ];
  for (const { name, policy, rule } of denying) {
    it(`${name}: the report reading 1 is answered with the clear, the replay it needs, and counts as set until reported clear`, () => {
      const core = Core.withVm(policy);
      core.domain('d0', false);
      core.device(PF, { nosnoop: 'disabled' });
      core.pin(0, 4);
      const answer = core.device(PF, { nosnoop: 'enabled' });
      expect(answer.devctl).toEqual({ decision: 'deny', hardwareValue: CLEARED, guestValue: CLEARED });
      expect(answer.reasons.find((r) => r.rule === rule)?.message).toMatch(/^report: the device reports Enable No Snoop set and .*; write hardwareValue to clear Enable No Snoop/);
      // The device is live with its bit set until the VMM writes the clear: its domain is exposed now.
      expect(answer.flush).toMatchObject({ required: true, pages: 4, cause: 'replay' });
      expect(rules(answer)).toContain('F2');
      expect(exposed(core)).toEqual(['d0']);
      // The clear is not left for another device's answer to carry.
      expect(core.device(OTHER, { nosnoop: 'disabled' }).devices).toBeUndefined();
      core.device(PF, { nosnoop: 'disabled' });
      expect(exposed(core)).toEqual([]);
    });
  }

  it('an allowed bit is left alone: trap/allow, and virtualize-zero for an exempted needs-nosnoop device', () => {
    const trap = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    trap.domain('d0', false);
    trap.device(PF, { nosnoop: 'disabled' });
    expect(trap.device(PF, { nosnoop: 'enabled' }).devctl).toBeUndefined();
    const vz = Core.withVm({ mode: 'virtualize-zero', exemptNeedsNoSnoop: true });
    vz.domain('d0', false);
    vz.device(PF, { kind: IGPU, nosnoop: 'disabled' });
    expect(vz.device(PF, { kind: IGPU, nosnoop: 'enabled' }).devctl).toBeUndefined();
  });

  it('virtualize-zero: a report saying the bit is unknown is answered with the clear too', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('d0', false);
    core.device(PF, { nosnoop: 'disabled' });
    const answer = core.device(PF, { nosnoop: 'unknown' });
    expect(answer.devctl).toEqual({ decision: 'deny', hardwareValue: CLEARED, guestValue: CLEARED });
    expect(exposed(core)).toEqual(['d0']);
    core.device(PF, { nosnoop: 'disabled' });
    expect(exposed(core)).toEqual([]);
  });
});

describe('W3: an unknown bit is cleared at attach where the policy keeps it 0', () => {
  for (const policy of [{ mode: 'virtualize-zero' as const }, { mode: 'trap' as const, onEnable: 'deny' as const }]) {
    it(`${policy.mode}${'onEnable' in policy ? `/${policy.onEnable}` : ''}: attach answers the clearing value; the bit still counts as unknown until reported clear`, () => {
      const core = Core.withVm(policy);
      core.domain('d0', false);
      core.pin(0, 4);
      const attach = core.device(PF, { nosnoop: 'unknown' });
      expect(attach.devctl).toEqual({ decision: 'deny', hardwareValue: CLEARED, guestValue: CLEARED });
      expect(attach.reasons.find((r) => r.rule === (policy.mode === 'trap' ? 'W4' : 'W3'))?.message).toMatch(/^attach: Enable No Snoop is unknown/);
      // The VMM could not read the bit, so it cannot be known clear once written: not quiet, the
      // domain is exposed and replayed as for any device that may no-snoop.
      expect(attach.flush).toMatchObject({ required: true, pages: 4, cause: 'replay' });
      expect(core.flagged(0)).toBe(true);
      const device = getVm(core.state, core.vm).devices.get(parsePciAddress(PF));
      expect(device).toMatchObject({ nosnoop: 'unknown', pendingNosnoop: 'disabled', quietUntilReported: false, devctl: CLEARED });
      expect(exposed(core)).toEqual(['d0']);
      core.device(PF, { nosnoop: 'disabled' });
      expect(exposed(core)).toEqual([]);
    });
  }

  it('an enabled bit at attach keeps its quiet semantics: nothing replayed, the domain not exposed by the device itself', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('d0', false);
    core.pin(0, 4);
    const attach = core.device(PF, { nosnoop: 'enabled' });
    expect(attach.devctl?.decision).toBe('deny');
    expect(attach.flush.required).toBe(false);
    expect(getVm(core.state, core.vm).devices.get(parsePciAddress(PF))).toMatchObject({ quietUntilReported: true, pendingNosnoop: 'disabled' });
    expect(exposed(core)).toEqual([]);
  });

  it('a VF already live follows the PF bit as found: its domain stays exposed until the clear is reported', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('d0', false);
    core.device(VF, { fn: 'vf', physfn: PF, nosnoop: 'disabled' });
    core.pin(0, 2);
    expect(core.device(PF, { nosnoop: 'unknown' }).devctl?.decision).toBe('deny');
    expect(exposed(core)).toEqual(['d0']);
    core.device(PF, { nosnoop: 'disabled' });
    expect(exposed(core)).toEqual([]);
  });

  it('trap whose onEnable denies only what lacks needs-nosnoop leaves an unknown bit as found (it counts as set)', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow-needs-nosnoop' });
    core.domain('d0', false);
    core.pin(0, 4);
    const attach = core.device(PF, { nosnoop: 'unknown', kind: NIC });
    expect(attach.devctl).toBeUndefined();
    expect(attach.flush.pages).toBe(4);
  });
});
