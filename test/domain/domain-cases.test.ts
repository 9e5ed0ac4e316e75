/**
 * The "Decision rules a policy service should implement" of DOMAIN.md, as SPEC keeps them.
 */
import { describe, expect, it } from 'vitest';
import { DEVCTL_NOSNOOP_EN, getVm, resolvePolicy, DEFAULT_POLICY, viewVm } from '../../src/domain/index.js';
import { Core, GiB, IGPU, rules } from '../helpers/core.js';

describe('DOMAIN.md decision rules', () => {
  it('1. coherent domain: no CPU flush, NOSNOOP_EN left alone, KVM stays coherent', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('c0', true);
    const attach = core.device('0000:01:00.0', { domain: 'c0', nosnoop: 'enabled' });
    expect(attach.kvmNoncoherentDma).toBe(false);
    expect(attach.devctl).toBeUndefined();
    expect(core.pin(0, 8 * GiB).flush.required).toBe(false);
  });

  it('2. non-coherent domain and a non-PCI device or unknown NOSNOOP_EN: flush at map and at unpin', () => {
    for (const o of [{ pci: false, nosnoop: 'disabled' }, { pci: true, nosnoop: 'unknown' }] as const) {
      const core = Core.withVm({ mode: 'trap' });
      core.domain('d0', false);
      core.device('0000:01:00.0', o);
      expect(core.pin(0, 4).flush.pages).toBe(4);
      expect(core.unpin(0, 4).flush.pages).toBe(4);
    }
  });

  it('3. hardwired-zero NOSNOOP_EN: no flush, and an enable does not stick', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'hardwired-zero' });
    expect(core.pin(0, 4).flush.required).toBe(false);
    const d = core.devctl('0000:01:00.0', { nosnoopEnable: true });
    expect((d.devctl?.guestValue ?? DEVCTL_NOSNOOP_EN) & DEVCTL_NOSNOOP_EN).toBe(0);
    expect(d.flush.required).toBe(false);
  });

  it('4. a device on the ignores-NOSNOOP_EN list: always flush, never rely on the bit', () => {
    const core = new Core([{ vendorId: 0x15b3, deviceId: 0x1017, deviceMask: 0xffff, flags: ['ignores-nosnoop-enable'] }]);
    core.putVm({ mode: 'virtualize-zero' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'hardwired-zero' });
    expect(core.pin(0, 2).flush.pages).toBe(2);
  });

  it('5-6. "disable no-snoop" policy: attach clears the bit; a later enable is denied', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('d0', false);
    expect(core.device('0000:01:00.0', { nosnoop: 'enabled' }).devctl?.decision).toBe('deny');
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    expect(core.pin(0, 2).flush.required).toBe(false);
    const d = core.devctl('0000:01:00.0', { nosnoopEnable: true });
    expect(d.devctl?.decision).toBe('deny');
    expect(d.devctl?.guestValue ?? -1).toBe((d.devctl?.hardwareValue ?? 0) & ~DEVCTL_NOSNOOP_EN);
  });

  it('7. trap: 0->1 allowed flushes all mapped pages first; 1->0 keeps the sticky flags', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    core.pin(0, 4);
    core.pin(8, 4);
    expect(core.devctl('0000:01:00.0', { nosnoopEnable: true }).flush.pages).toBe(8);
    core.devctl('0000:01:00.0', { nosnoopEnable: false });
    expect(core.unpin(0, 4).flush.pages).toBe(4);
  });

  it('8. a device known to need no-snoop (Intel iGPU) is allowed and pays the flushes', () => {
    const core = Core.withVm(); // default policy: trap, allow-needs-nosnoop
    core.domain('d0', false);
    core.device('0000:00:02.0', { kind: IGPU, nosnoop: 'disabled' });
    core.pin(0, 4);
    const d = core.devctl('0000:00:02.0', { nosnoopEnable: true });
    expect(d.devctl?.decision).toBe('allow');
    expect(d.flush.pages).toBe(4);
  });

  it('9. first non-coherent domain attached to a container with mappings: flush all before replay, mark sticky', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('c0', true);
    core.pin(0, 16);
    const d = core.domain('d0', false);
    expect(rules(d)).toEqual(['F2']);
    expect(d.flush.pages).toBe(16);
    expect(core.flagged(0)).toBe(true);
  });

  it('10. a page ever mapped non-coherently is flushed before unpin, whatever domains remain', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    core.domain('c0', true);
    core.pin(0, 2);
    core.deleteDomain('d0');
    expect(core.unpin(0, 2).flush.pages).toBe(2);
  });

  it('11. MMIO: skip UC/WC host mappings, flush WB/WT/WP', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    expect(core.pin(0, 1, { mmio: true, memType: 'WC' }).flush.required).toBe(false);
    expect(core.pin(1, 1, { mmio: true, memType: 'WP' }).flush.required).toBe(true);
  });

  it('12. x86 flushes per line with CLFLUSHOPT, never WBINVD unless a policy allows it', () => {
    expect(resolvePolicy('x86_64', DEFAULT_POLICY)).toMatchObject({ flushMethod: 'clflushopt', wbinvdAbovePages: null });
  });

  it('13. around a device reset the device counts as able to no-snoop until re-virtualized', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    expect(core.reset('0000:01:00.0').flush.required).toBe(false);
    expect(core.pin(2, 1).flush.required).toBe(false);
    // Only a reset that does not restore config space sets the bit again.
    const d = core.reset('0000:01:00.0', false);
    expect(d.devctl?.decision).toBe('deny');
    expect(core.pin(0, 1).flush.required).toBe(true);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    expect(core.pin(1, 1).flush.required).toBe(false);
  });

  it('14. any non-coherent assignment makes KVM honour guest WBINVD and PAT', () => {
    const core = Core.withVm();
    core.domain('d0', false);
    expect(core.device('0000:01:00.0', { nosnoop: 'hardwired-zero' }).kvmNoncoherentDma).toBe(true);
  });

  it('15. arm64 with an SMMU without CANWBS is non-coherent: same rules, flushed by DC CIVAC', () => {
    const core = Core.withVm({ onEnable: 'allow' }, 'aarch64');
    core.domain('smmu0', false);
    core.device('0000:01:00.0', { domain: 'smmu0', nosnoop: 'enabled' });
    expect(core.pin(0, 4).flush.pages).toBe(4);
    expect(viewVm(core.state, getVm(core.state, core.vm)).policy.flushMethod).toBe('dc-civac');
  });
});
