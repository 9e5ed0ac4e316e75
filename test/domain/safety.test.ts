/**
 * The decisions an adversarial review found unsafe or inconsistent, each as a rule test on the
 * pure core: VFs and their PFs across VMs, exposure that shrinks only when the VMM confirms,
 * hardwired bits, resets that restore config, clears at attach and on live changes, DEVCTL bits
 * vfio does not pass through, and the read-only query as a dry run of its change.
 */
import { describe, expect, it } from 'vitest';
import {
  DEVCTL_NOSNOOP_EN,
  DEVCTL_RESET_DEFAULT,
  DomainError,
  exposedDomains,
  getVm,
  mustFlush,
  parseDomainId,
  parsePciAddress,
  parseVmId,
  viewVm,
  type Decision,
  type DeviceInput
} from '../../src/domain/index.js';
import { Core, IGPU, NIC, rules } from '../helpers/core.js';

const NS = DEVCTL_NOSNOOP_EN;
const PF = '0000:3b:00.0';
const VF = '0000:3b:00.2';

function exposed(core: Core, vm = core.vm): string[] {
  return [...exposedDomains(getVm(core.state, vm), core.state.quirks)].sort();
}

function device(core: Core, vm: string) {
  return (bdf: string, o: Partial<DeviceInput> & { domain?: string | null } = {}): Decision =>
    core.run({
      type: 'put-device',
      vmId: parseVmId(vm),
      device: {
        bdf: parsePciAddress(bdf),
        domainId: o.domain === null ? null : parseDomainId(o.domain ?? 'd0'),
        ...NIC,
        function: o.function ?? 'pf',
        physfn: o.physfn ?? null,
        nosnoop: o.nosnoop ?? 'disabled'
      }
    }).decision;
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof DomainError) return err.code;
    throw err;
  }
  throw new Error('expected a DomainError');
}

describe('VFs follow their PF only when it is in the same VM', () => {
  it('a PF enabled, then removed while its VF stays: the VF may no-snoop, its domain stays exposed, and the removal replays', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.domain('d1', false);
    core.device(PF, { domain: 'd0', nosnoop: 'disabled' });
    core.device(VF, { domain: 'd1', fn: 'vf', physfn: PF, nosnoop: 'disabled' });
    core.pin(0, 2, { domains: ['d1'] });
    expect(exposed(core)).toEqual([]);
    const enable = core.devctl(PF, { nosnoopEnable: true });
    expect(enable.devctl?.decision).toBe('allow');
    expect(exposed(core)).toEqual(['d0', 'd1']);
    core.pin(8, 2, { domains: ['d1'] });
    const removed = core.deleteDevice(PF);
    expect(rules(removed)).toContain('F2');
    expect(exposed(core)).toEqual(['d1']);
    expect(core.pin(16, 2, { domains: ['d1'] }).flush.required).toBe(true);
    const vf = viewVm(core.state, getVm(core.state, core.vm)).devices.find((d) => d.bdf === VF);
    expect(vf).toMatchObject({ effectiveNosnoop: 'unknown', mayNoSnoop: true });
  });

  it('removing a PF whose VF stays answers with the replay the VF now needs', () => {
    const core = Core.withVm({ mode: 'trap' });
    core.domain('d0', false);
    core.domain('d1', false);
    core.device(PF, { domain: 'd0', nosnoop: 'disabled' });
    core.device(VF, { domain: 'd1', fn: 'vf', physfn: PF, nosnoop: 'disabled' });
    core.pin(0, 4, { domains: ['d1'], hpa: 0x900 });
    const removed = core.deleteDevice(PF);
    expect(removed.flush).toMatchObject({ required: true, pages: 4, cause: 'replay', when: 'before-map' });
    expect(core.flagged(0)).toBe(true);
  });

  it("a PF in VM b, its VF in VM a: VM a never relies on VM b's bit, whatever b does", () => {
    const core = new Core();
    const a = 'vm-a';
    const b = 'vm-b';
    for (const vm of [a, b]) {
      core.run({ type: 'put-vm', vmId: parseVmId(vm), arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
      core.run({ type: 'put-domain', vmId: parseVmId(vm), domainId: parseDomainId('d0'), enforceCacheCoherency: false });
    }
    device(core, b)(PF, { nosnoop: 'disabled' });
    device(core, a)(VF, { function: 'vf', physfn: parsePciAddress(PF), nosnoop: 'disabled' });
    // VM a cannot see the PF: its VF may no-snoop from the start.
    expect(exposed(core, parseVmId(a))).toEqual(['d0']);
    const pin = core.run({ type: 'pin', vmId: parseVmId(a), ranges: [{ iova: 0, pages: 2, hpa: 0x500 }] }).decision;
    expect(pin.flush.required).toBe(true);
    core.run({ type: 'devctl', vmId: parseVmId(b), bdf: parsePciAddress(PF), write: { nosnoopEnable: true } });
    core.run({ type: 'reset-device', vmId: parseVmId(b), bdf: parsePciAddress(PF), restoresConfig: false });
    expect(exposed(core, parseVmId(a))).toEqual(['d0']);
    expect(core.run({ type: 'pin', vmId: parseVmId(a), ranges: [{ iova: 8, pages: 2, hpa: 0x600 }] }).decision.flush.required).toBe(true);
  });

  it("a PF's ignores-nosnoop-enable quirk governs its VF: the VF's domain is exposed", () => {
    const core = new Core([{ vendorId: 0x1234, deviceId: 0x5678, deviceMask: 0xffff, flags: ['ignores-nosnoop-enable'] }]);
    core.putVm({ mode: 'trap' });
    core.domain('c0', true);
    core.domain('d1', false);
    core.device(PF, { domain: 'c0', nosnoop: 'disabled', kind: { vendorId: 0x1234, deviceId: 0x5678 } });
    core.device(VF, { domain: 'd1', fn: 'vf', physfn: PF, nosnoop: 'disabled', kind: { vendorId: 0x1234, deviceId: 0x5679 } });
    const vf = viewVm(core.state, getVm(core.state, core.vm)).devices.find((d) => d.bdf === VF);
    expect(vf?.mayNoSnoop).toBe(true);
    expect(exposed(core)).toEqual(['d1']);
    expect(core.pin(0, 1).flush.required).toBe(true);
  });

  it('W1 looks at every function the bit governs: a PF in a coherent domain whose VF is not is decided by the policy', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('c0', true);
    core.domain('d1', false);
    core.device(PF, { domain: 'c0', nosnoop: 'disabled' });
    core.device(VF, { domain: 'd1', fn: 'vf', physfn: PF, nosnoop: 'disabled' });
    const d = core.devctl(PF, { nosnoopEnable: true });
    expect(d.devctl?.decision).toBe('deny');
    expect(rules(d)).toEqual(['W3']);
    expect(d.reasons[0]?.message).toContain(VF);
    // Without the VF the coherent domain alone decides: W1.
    core.deleteDevice(VF);
    expect(rules(core.devctl(PF, { nosnoopEnable: true }))).toEqual(['W1']);
  });
});

describe('exposure grows when decided, shrinks only when confirmed', () => {
  it('after a reset that does not restore config, a denied enable keeps the device counted enabled until the VMM reports it', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'deny' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    core.reset('0000:01:00.0', false);
    const deny = core.devctl('0000:01:00.0', { nosnoopEnable: true });
    expect(deny.devctl?.decision).toBe('deny');
    // The VMM has not written hardwareValue yet: the bit may still be 1.
    const gap = core.pin(0, 2);
    expect(gap.flush.required).toBe(true);
    expect(core.flagged(0)).toBe(true);
    const view = viewVm(core.state, getVm(core.state, core.vm)).devices[0];
    expect(view).toMatchObject({ nosnoop: 'enabled', pendingNosnoop: 'disabled' });
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    expect(core.pin(8, 2).flush.required).toBe(false);
    expect(core.unpin(0, 2).flush.required).toBe(true);
  });

  it('an allowed enable takes effect at once, with its replay', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    core.pin(0, 2);
    expect(core.devctl('0000:01:00.0', { nosnoopEnable: true }).flush.pages).toBe(2);
    expect(viewVm(core.state, getVm(core.state, core.vm)).devices[0]).toMatchObject({ nosnoop: 'enabled', pendingNosnoop: null });
  });
});

describe('hardwired-zero never turns No Snoop on', () => {
  it('trap/allow answers a hardwareValue with bit 11 clear and stores none', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'hardwired-zero' });
    const d = core.devctl('0000:01:00.0', { value: 0x2810 });
    expect(d.devctl).toMatchObject({ decision: 'allow', hardwareValue: 0x2010, guestValue: 0x2010 });
    expect(viewVm(core.state, getVm(core.state, core.vm)).devices[0]).toMatchObject({ nosnoop: 'hardwired-zero', devctl: 0x2010 });
    expect(exposed(core)).toEqual([]);
  });
});

describe('R1: resets restore config unless told otherwise', () => {
  it('a reset vfio-pci performs keeps the bit and replays nothing', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'deny' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    core.pin(0, 2);
    const d = core.reset('0000:01:00.0');
    expect(rules(d)).toEqual(['R1']);
    expect(d.flush.required).toBe(false);
    expect(d.devctl).toBeUndefined();
    expect(core.pin(8, 2).flush.required).toBe(false);
  });

  it('a reset that does not restore config sets the bit (F2) and tells the VMM to clear it again', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'deny' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    core.pin(0, 2);
    const d = core.reset('0000:01:00.0', false);
    expect(d.flush.pages).toBe(2);
    expect(d.devctl).toEqual({ decision: 'deny', hardwareValue: DEVCTL_RESET_DEFAULT & ~NS, guestValue: DEVCTL_RESET_DEFAULT & ~NS });
  });
});

describe('attach clears before the device can DMA', () => {
  for (const policy of [{ mode: 'virtualize-zero' as const }, { mode: 'trap' as const, onEnable: 'deny' as const }]) {
    it(`${policy.mode}${'onEnable' in policy ? `/${policy.onEnable}` : ''}: an enabled device is answered with the clearing value, nothing replayed, as after a reset`, () => {
      const core = Core.withVm(policy);
      core.domain('d0', false);
      core.pin(0, 4);
      const attach = core.device('0000:01:00.0', { nosnoop: 'enabled' });
      expect(attach.devctl).toEqual({ decision: 'deny', hardwareValue: DEVCTL_RESET_DEFAULT & ~NS, guestValue: DEVCTL_RESET_DEFAULT & ~NS });
      expect(attach.flush.required).toBe(false);
      expect(core.flagged(0)).toBe(false);
      const reset = core.reset('0000:01:00.0', false);
      expect(reset.devctl?.decision).toBe(attach.devctl?.decision);
      expect(reset.devctl?.hardwareValue).toBe(attach.devctl?.hardwareValue);
    });
  }

  it('a PF whose VF is already live in the VM is not cleared at once: the VF follows the bit until the VMM reports it', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('d0', false);
    core.device(VF, { fn: 'vf', physfn: PF, nosnoop: 'disabled' });
    core.pin(0, 2);
    const attach = core.device(PF, { nosnoop: 'enabled' });
    expect(attach.devctl?.decision).toBe('deny');
    expect(exposed(core)).toEqual(['d0']);
    core.device(PF, { nosnoop: 'disabled' });
    expect(exposed(core)).toEqual([]);
  });
});

describe('flush timing is stated in every answer', () => {
  it('before-map for pins and replays, after-unmap for unpins, teardown and domain removal', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    expect(core.pin(0, 2).flush.when).toBe('before-map');
    expect(core.unpin(0, 2).flush.when).toBe('after-unmap');
    core.pin(0, 2);
    expect(core.deleteDomain('d0').flush.when).toBe('after-unmap');
    const trap = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    trap.domain('d0', false);
    trap.device('0000:01:00.0', { nosnoop: 'disabled' });
    trap.pin(0, 2);
    expect(trap.devctl('0000:01:00.0', { nosnoopEnable: true }).flush.when).toBe('before-map');
    expect(trap.deleteVm().flush.when).toBe('after-unmap');
  });
});

describe('DEVCTL bits the service does not own pass through as vfio-pci passes them', () => {
  it('Initiate FLR is a reset (config restored), reads 0 and is never stored or echoed', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    const d = core.devctl('0000:01:00.0', { value: 0xa010 });
    expect(d.devctl).toEqual({ decision: 'allow', hardwareValue: 0x2010, guestValue: 0x2010 });
    expect(rules(d)).toEqual(['R1', 'W6']);
    expect(viewVm(core.state, getVm(core.state, core.vm)).devices[0]?.devctl).toBe(0x2010);
    const later = core.devctl('0000:01:00.0', { nosnoopEnable: true });
    expect(later.devctl?.hardwareValue).toBe(0x2810);
  });

  it('Phantom Functions Enable and Max_Payload_Size keep the hardware value; the guest reads its payload size', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    // Hardware devctl is 0x2010 (MPS 128 B, no phantom); the guest writes phantom and MPS 256 B.
    const d = core.devctl('0000:01:00.0', { value: 0x2010 | 0x0200 | 0x0020 });
    expect(d.devctl?.hardwareValue).toBe(0x2010);
    expect(d.devctl?.guestValue).toBe(0x2010 | 0x0020);
  });
});

describe('a live policy, domain or quirk change applies the policy to bits already set', () => {
  it('trap/allow with a device enabled, then virtualize-zero: the answer says to clear it; the exposure ends once reported', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'enabled' });
    core.pin(0, 2);
    const change = core.putVm({ mode: 'virtualize-zero' });
    expect(change.devices).toEqual([{ bdf: '0000:01:00.0', decision: 'deny', hardwareValue: DEVCTL_RESET_DEFAULT & ~NS, guestValue: DEVCTL_RESET_DEFAULT & ~NS }]);
    expect(rules(change)).toContain('W3');
    expect(exposed(core)).toEqual(['d0']);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    expect(exposed(core)).toEqual([]);
    expect(core.pin(8, 2).flush.required).toBe(false);
  });

  it('a coherent domain turned non-coherent in a virtualize-zero VM: replay now, clear the bit, exposure ends when reported', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('d0', true);
    core.device('0000:01:00.0', { nosnoop: 'enabled' });
    core.pin(0, 2);
    const flip = core.domain('d0', false);
    expect(flip.flush.pages).toBe(2);
    expect(flip.devices?.map((d) => [d.bdf, d.decision])).toEqual([['0000:01:00.0', 'deny']]);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    expect(exposed(core)).toEqual([]);
  });

  it('a quirk change that takes needs-nosnoop away tells the VMM to clear the bit it allowed', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('d0', false);
    core.device('0000:00:02.0', { kind: IGPU, nosnoop: 'disabled' });
    expect(core.devctl('0000:00:02.0', { nosnoopEnable: true }).devctl?.decision).toBe('allow');
    const result = core.run({ type: 'put-quirks', quirks: [] });
    expect(result.vms?.get(core.vm)?.devices?.map((d) => d.decision)).toEqual(['deny']);
  });
});

describe('WBINVD wording and non-PCI devices', () => {
  it('a DEVCTL write to a device without config space is refused (NOT_PCI), changing nothing', () => {
    const core = Core.withVm();
    core.domain('d0', false);
    core.device('0000:01:00.0', { pci: false, nosnoop: 'unknown' });
    expect(code(() => core.devctl('0000:01:00.0', { nosnoopEnable: true }))).toBe('NOT_PCI');
  });

  it('K1 speaks of WBINVD and PAT on x86_64 only', () => {
    const x86 = Core.withVm();
    x86.domain('d0', false);
    const a = x86.device('0000:01:00.0', { nosnoop: 'disabled' });
    expect(a.reasons.find((r) => r.rule === 'K1')?.message).toMatch(/WBINVD and PAT/);
    const arm = Core.withVm({}, 'aarch64');
    arm.domain('d0', false);
    const b = arm.device('0000:01:00.0', { nosnoop: 'disabled' });
    const k1 = b.reasons.find((r) => r.rule === 'K1')?.message ?? '';
    expect(k1).toMatch(/non-coherent DMA/);
    expect(k1).not.toMatch(/WBINVD|PAT/);
  });
});

describe('the query answers exactly what the change would', () => {
  const vm = parseVmId('vm1');

  it('map without hpa in a pessimistic VM: the flush is required, as each range says', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    const a = mustFlush(core.state, vm, 'map', [{ iova: 0, pages: 1 }]);
    expect(a.results[0]).toMatchObject({ required: true, rule: 'F1' });
    expect(a.decision.flush.required).toBe(true);
    expect(a.decision.reasons[0]?.message).toMatch(/1 requiring a flush/);
  });

  it('"domains": [] maps into every domain, as the pin does', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    const q = mustFlush(core.state, vm, 'map', [{ iova: 0, pages: 1, hpa: 0x10, domains: [] }]);
    expect(q.results[0]).toMatchObject({ required: true, rule: 'F1' });
    expect(core.pinBatch([{ iova: 0, pages: 1, hpa: 0x10, domains: [] }]).flush.ranges).toEqual(q.decision.flush.ranges);
  });

  it('an already pinned range asked into another (exposed) domain is answered for that domain', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('c0', true);
    core.domain('d1', false);
    core.device('0000:01:00.0', { domain: 'd1', nosnoop: 'enabled' });
    core.pin(0, 2, { domains: ['c0'], hpa: 0x700 });
    expect(mustFlush(core.state, vm, 'map', [{ iova: 0, pages: 2 }]).results[0]).toMatchObject({ required: false, rule: 'F2' });
    const into = mustFlush(core.state, vm, 'map', [{ iova: 0, pages: 2, domains: [parseDomainId('d1')] }]);
    expect(into.results[0]).toMatchObject({ required: true, rule: 'F2' });
    expect(into.decision.flush.ranges).toEqual([{ hpa: 0x700, pages: 2 }]);
  });

  it('a VM without domains: the query refuses as the pin does (VM_HAS_NO_DOMAINS)', () => {
    const core = Core.withVm();
    expect(code(() => mustFlush(core.state, vm, 'map', [{ iova: 0, pages: 1 }]))).toBe('VM_HAS_NO_DOMAINS');
    expect(code(() => core.pin(0, 1))).toBe('VM_HAS_NO_DOMAINS');
  });

  it('a range partly pinned is refused as the pin refuses it (PIN_OVERLAP)', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    core.pin(0, 2);
    expect(code(() => mustFlush(core.state, vm, 'map', [{ iova: 1, pages: 4, hpa: 0x10 }]))).toBe('PIN_OVERLAP');
    expect(code(() => core.pin(1, 4))).toBe('PIN_OVERLAP');
  });
});
