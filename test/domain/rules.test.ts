/**
 * One or more named tests per decision rule of SPEC section 3.
 */
import { describe, expect, it } from 'vitest';
import { DEVCTL_NOSNOOP_EN, DEVCTL_RESET_DEFAULT, exposedDomains, getVm, kvmNoncoherentDma, parseDomainId, RULE_IDS, ruleRanges, viewVm } from '../../src/domain/index.js';
import { Core, IGPU, rules } from '../helpers/core.js';

const NS = DEVCTL_NOSNOOP_EN;

describe('C1 coherent domain', () => {
  it('C1: never flushes for a coherent domain, even in pessimistic mode', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    expect(rules(core.domain('d0', true))).toContain('C1');
    core.device('0000:01:00.0', { nosnoop: 'enabled' });
    const d = core.pin(0, 16);
    expect(d.flush.required).toBe(false);
    expect(rules(d)).toEqual(['C1']);
    expect(core.flagged(0)).toBe(false);
  });
});

describe('F1 pin', () => {
  it('F1: flushes the host range before mapping into an exposed domain and sets flushOnUnpin', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    const d = core.pin(0x10, 4, { hpa: 0x5000 });
    expect(d.flush).toEqual({ required: true, ranges: [{ hpa: 0x5000, pages: 4 }], pages: 4, cause: 'pin', when: 'before-map' });
    expect(rules(d)).toEqual(['F1']);
    expect(core.flagged(0x10)).toBe(true);
  });

  it('F1: no flush when the non-coherent domain is not exposed (trap mode, no device may no-snoop)', () => {
    const core = Core.withVm({ mode: 'trap' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    const d = core.pin(0, 8);
    expect(d.flush.required).toBe(false);
    expect(d.reasons[0]?.rule).toBe('F1');
    expect(d.reasons[0]?.message).toMatch(/not exposed/);
    expect(core.flagged(0)).toBe(false);
  });

  it('F1: a subset pin is flushed only when one of its own domains is exposed', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.domain('d1', false);
    core.device('0000:01:00.0', { domain: 'd0', nosnoop: 'enabled' });
    expect(core.pin(0, 1, { domains: ['d1'] }).flush.required).toBe(false);
    expect(core.pin(1, 1, { domains: ['d0'] }).flush.required).toBe(true);
    expect(core.pin(2, 1).flush.required).toBe(true);
  });

  it('F1: a batch is coalesced into sorted host ranges', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    const d = core.pinBatch([
      { iova: 0x20, pages: 2, hpa: 0x902 },
      { iova: 0x00, pages: 2, hpa: 0x900 },
      { iova: 0x40, pages: 1, hpa: 0x2000 }
    ]);
    expect(d.flush.ranges).toEqual([
      { hpa: 0x900, pages: 4 },
      { hpa: 0x2000, pages: 1 }
    ]);
    expect(d.flush.pages).toBe(5);
  });
});

describe('F2 exposure transitions (replay)', () => {
  it('F2: first non-coherent domain in pessimistic mode replays every pinned range', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('c0', true);
    core.pin(0, 4, { hpa: 0x100 });
    core.pin(8, 4, { hpa: 0x200 });
    const d = core.domain('d0', false);
    expect(d.flush.cause).toBe('replay');
    expect(d.flush.ranges).toEqual([
      { hpa: 0x100, pages: 4 },
      { hpa: 0x200, pages: 4 }
    ]);
    expect(rules(d)).toContain('F2');
    expect(core.flagged(0)).toBe(true);
    // A second non-coherent domain finds everything flagged: nothing more to flush.
    expect(core.domain('d1', false).flush.required).toBe(false);
  });

  it('F2: attaching a device that may no-snoop exposes its domain and replays', () => {
    const core = Core.withVm({ mode: 'trap' });
    core.domain('d0', false);
    core.pin(0, 4);
    const d = core.device('0000:01:00.0', { nosnoop: 'unknown' });
    expect(d.flush.pages).toBe(4);
    expect(rules(d)).toContain('F2');
  });

  it('F2: a quirk change that marks a device ignores-nosnoop-enable replays its domain', () => {
    const core = Core.withVm({ mode: 'trap' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    core.pin(0, 2);
    const result = core.run({ type: 'put-quirks', quirks: [{ vendorId: 0x15b3, deviceId: 0x1017, deviceMask: 0xffff, flags: ['ignores-nosnoop-enable'] }] });
    const d = result.vms?.get(core.vm);
    expect(d?.flush.pages).toBe(2);
    expect(d === undefined ? [] : rules(d)).toContain('F2');
  });

  it('F2: a policy change to pessimistic replays', () => {
    const core = Core.withVm({ mode: 'trap' });
    core.domain('d0', false);
    core.pin(0, 3);
    const d = core.putVm({ mode: 'pessimistic' });
    expect(d.flush.pages).toBe(3);
    expect(rules(d)).toEqual(['F2']);
  });
});

describe('F3 unpin', () => {
  it('F3: flushes before release iff flushOnUnpin is set', () => {
    const core = Core.withVm({ mode: 'trap' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    core.pin(0, 2, { hpa: 0x700 });
    expect(core.unpin(0, 2).flush.required).toBe(false);
    const pessimistic = Core.withVm({ mode: 'pessimistic' });
    pessimistic.domain('d0', false);
    pessimistic.pin(0, 2, { hpa: 0x700 });
    const d = pessimistic.unpin(0, 2);
    expect(d.flush).toEqual({ required: true, ranges: [{ hpa: 0x700, pages: 2 }], pages: 2, cause: 'unpin', when: 'after-unmap' });
    expect(rules(d)).toEqual(['F3']);
  });

  it('F3: the flag is sticky: it survives the bit being cleared and a coherent domain being added', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    core.pin(0, 2);
    expect(core.devctl('0000:01:00.0', { nosnoopEnable: true }).flush.pages).toBe(2);
    core.devctl('0000:01:00.0', { nosnoopEnable: false });
    core.domain('c1', true);
    // The clear counts once the VMM reports the hardware reads it.
    expect(exposedDomains(getVm(core.state, core.vm), core.state.quirks).size).toBe(1);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    expect(exposedDomains(getVm(core.state, core.vm), core.state.quirks).size).toBe(0);
    expect(core.flagged(0)).toBe(true);
    expect(core.unpin(0, 2).flush.pages).toBe(2);
  });

  it('F3: unpinning a span releases every whole range inside it', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    core.pin(0, 2, { hpa: 0x10 });
    core.pin(4, 2, { hpa: 0x20 });
    const d = core.unpin(0, 8);
    expect(d.flush.pages).toBe(4);
    expect(getVm(core.state, core.vm).pins.size).toBe(0);
  });
});

describe('F4 mmio memory types', () => {
  for (const memType of ['UC', 'UC-', 'WC'] as const) {
    it(`F4: mmio mapped ${memType} on the host is never flushed, at pin or unpin`, () => {
      const core = Core.withVm({ mode: 'pessimistic' });
      core.domain('d0', false);
      const d = core.pin(0, 4, { mmio: true, memType });
      expect(d.flush.required).toBe(false);
      expect(rules(d)).toEqual(['F4']);
      const u = core.unpin(0, 4);
      expect(u.flush.required).toBe(false);
      expect(rules(u)).toEqual(['F4']);
    });
  }
  for (const memType of ['WB', 'WT', 'WP'] as const) {
    it(`F4: mmio mapped ${memType} is cacheable and is flushed`, () => {
      const core = Core.withVm({ mode: 'pessimistic' });
      core.domain('d0', false);
      expect(core.pin(0, 4, { mmio: true, memType }).flush.pages).toBe(4);
    });
  }
  it('F4: UC RAM (not mmio) is still flushed', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    expect(core.pin(0, 1, { memType: 'UC' }).flush.pages).toBe(1);
  });
});

describe('F5 teardown', () => {
  it('F5: deleting a VM releases every range with unpin semantics', () => {
    const core = Core.withVm({ mode: 'trap' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    core.pin(0, 2, { hpa: 0x100 });
    core.device('0000:01:00.0', { nosnoop: 'enabled' });
    core.pin(8, 2, { hpa: 0x200 });
    const d = core.deleteVm();
    expect(d.flush).toEqual({ required: true, ranges: [{ hpa: 0x100, pages: 2 }, { hpa: 0x200, pages: 2 }], pages: 4, cause: 'teardown', when: 'after-unmap' });
    expect(rules(d)).toEqual(['F5', 'F3']);
    expect(core.state.vms.size).toBe(0);
  });

  it("F5: removing the VM's last domain unmaps and releases everything", () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    core.pin(0, 2);
    const d = core.deleteDomain('d0');
    expect(d.flush.pages).toBe(2);
    expect(rules(d)).toContain('F5');
    expect(getVm(core.state, core.vm).pins.size).toBe(0);
  });

  it('F5: removing one domain of several unpins nothing; flags stay', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    core.domain('d1', true);
    core.pin(0, 2);
    const d = core.deleteDomain('d0');
    expect(d.flush.required).toBe(false);
    expect(core.flagged(0)).toBe(true);
  });

  it('F5: a pin that named only the removed domain is released', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    core.domain('d1', true);
    core.pin(0, 2, { domains: ['d0'] });
    core.pin(4, 2, { domains: ['d0', 'd1'] });
    const d = core.deleteDomain('d0');
    expect(d.flush.pages).toBe(2);
    expect(getVm(core.state, core.vm).pins.size).toBe(1);
    expect(core.flagged(4)).toBe(true);
  });
});

describe('W1-W7 trapped DEVCTL writes', () => {
  it('W1: enabling on a device in a coherent domain is allowed without a flush', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('c0', true);
    core.device('0000:01:00.0', { domain: 'c0' });
    core.pin(0, 4);
    const d = core.devctl('0000:01:00.0', { nosnoopEnable: true });
    expect(d.devctl?.decision).toBe('allow');
    expect(rules(d)).toEqual(['W1']);
    expect(d.flush.required).toBe(false);
  });

  it("W2: a VF's write is ignored; the guest reads the reserved bit as 0", () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.device('0000:01:00.1', { fn: 'vf', nosnoop: 'disabled' });
    const d = core.devctl('0000:01:00.1', { value: 0x2810 });
    expect(d.devctl).toEqual({ decision: 'ignore', hardwareValue: 0x2010, guestValue: 0x2010 });
    expect(rules(d)).toEqual(['W2']);
    expect(viewVm(core.state, getVm(core.state, core.vm)).devices[0]?.nosnoop).toBe('disabled');
  });

  it("W2: a VF follows its PF's bit when the PF is assigned to the same VM", () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.domain('d1', false);
    core.device('0000:01:00.0', { domain: 'd0', nosnoop: 'disabled' });
    core.device('0000:01:00.1', { domain: 'd1', fn: 'vf', physfn: '0000:01:00.0', nosnoop: 'disabled' });
    core.pin(0, 2, { domains: ['d1'] });
    const d = core.devctl('0000:01:00.0', { nosnoopEnable: true });
    expect(d.flush.pages).toBe(2);
    expect(d.reasons.map((r) => r.message).join(' ')).toMatch(/domain d1 becomes exposed/);
  });

  it('W3: virtualize-zero denies: hardware keeps 0, guest reads 0, nothing is flushed', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    core.pin(0, 4);
    const d = core.devctl('0000:01:00.0', { value: 0x2810 });
    expect(d.devctl).toEqual({ decision: 'deny', hardwareValue: 0x2010, guestValue: 0x2010 });
    expect(rules(d)).toEqual(['W3']);
    expect(d.flush.required).toBe(false);
  });

  it('W3: an exempt needs-nosnoop device is allowed and pays the F2 replay', () => {
    const core = Core.withVm({ mode: 'virtualize-zero', exemptNeedsNoSnoop: true });
    core.domain('d0', false);
    core.device('0000:00:02.0', { kind: IGPU, nosnoop: 'disabled' });
    core.pin(0, 4);
    const d = core.devctl('0000:00:02.0', { nosnoopEnable: true });
    expect(d.devctl?.decision).toBe('allow');
    expect(rules(d)).toEqual(['W3', 'F2']);
    expect(d.flush.pages).toBe(4);
    const strict = Core.withVm({ mode: 'virtualize-zero', exemptNeedsNoSnoop: false });
    strict.domain('d0', false);
    strict.device('0000:00:02.0', { kind: IGPU, nosnoop: 'disabled' });
    expect(strict.devctl('0000:00:02.0', { nosnoopEnable: true }).devctl?.decision).toBe('deny');
  });

  it('W3: at attach the answer says to clear the bit before the guest gets the device; nothing is replayed', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('d0', false);
    core.pin(0, 2);
    const attach = core.device('0000:01:00.0', { nosnoop: 'enabled' });
    expect(attach.devctl?.decision).toBe('deny');
    expect(attach.devctl !== undefined && (attach.devctl.hardwareValue & NS) === 0).toBe(true);
    expect(rules(attach)).toContain('W3');
    expect(attach.flush.required).toBe(false);
    expect(core.pin(8, 2).flush.required).toBe(false);
  });

  it('W3: a device moved into a non-coherent domain is live: it counts as enabled until reported disabled', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('c0', true);
    core.domain('d0', false);
    core.device('0000:01:00.0', { domain: 'c0', nosnoop: 'enabled' });
    core.pin(0, 2);
    const move = core.device('0000:01:00.0', { domain: 'd0', nosnoop: 'enabled' });
    expect(move.devctl?.decision).toBe('deny');
    expect(move.flush.pages).toBe(2);
    expect(core.pin(8, 2).flush.required).toBe(true);
    core.device('0000:01:00.0', { domain: 'd0', nosnoop: 'disabled' });
    expect(core.pin(16, 2).flush.required).toBe(false);
  });

  it('W4: trap with onEnable deny clears at attach as it would after a reset', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'deny' });
    core.domain('d0', false);
    const attach = core.device('0000:01:00.0', { nosnoop: 'enabled' });
    expect(attach.devctl).toEqual({ decision: 'deny', hardwareValue: DEVCTL_RESET_DEFAULT & ~NS, guestValue: DEVCTL_RESET_DEFAULT & ~NS });
    expect(rules(attach)).toContain('W4');
    expect(core.pin(0, 2).flush.required).toBe(false);
  });

  it('W4: trap mode applies onEnable: allow, deny, allow-needs-nosnoop', () => {
    const cases = [
      { onEnable: 'allow', kind: undefined, decision: 'allow' },
      { onEnable: 'deny', kind: IGPU, decision: 'deny' },
      { onEnable: 'allow-needs-nosnoop', kind: IGPU, decision: 'allow' },
      { onEnable: 'allow-needs-nosnoop', kind: undefined, decision: 'deny' }
    ] as const;
    for (const c of cases) {
      const core = Core.withVm({ mode: 'trap', onEnable: c.onEnable });
      core.domain('d0', false);
      core.device('0000:01:00.0', { nosnoop: 'disabled', ...(c.kind === undefined ? {} : { kind: c.kind }) });
      core.pin(0, 2);
      const d = core.devctl('0000:01:00.0', { nosnoopEnable: true });
      expect(d.devctl?.decision, JSON.stringify(c)).toBe(c.decision);
      expect(d.reasons[0]?.rule).toBe('W4');
      // An allowed enable is preceded by the replay of what is already mapped.
      expect(d.flush.pages).toBe(c.decision === 'allow' ? 2 : 0);
    }
  });

  it('W4: dryRun evaluates without changing anything', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    core.pin(0, 2);
    const revision = getVm(core.state, core.vm).revision;
    const d = core.devctl('0000:01:00.0', { nosnoopEnable: true }, true);
    expect(d.devctl?.decision).toBe('allow');
    expect(d.flush.pages).toBe(2);
    expect(core.flagged(0)).toBe(false);
    expect(getVm(core.state, core.vm).revision).toBe(revision);
  });

  it('W5: pessimistic mode allows the enable', () => {
    const core = Core.withVm({ mode: 'pessimistic' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    const d = core.devctl('0000:01:00.0', { nosnoopEnable: true });
    expect(d.devctl?.decision).toBe('allow');
    expect(rules(d)).toEqual(['W5']);
  });

  it('W6: clearing is always allowed; the exposure ends once the VMM reports the bit clear', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'enabled' });
    expect(core.pin(0, 2).flush.required).toBe(true);
    const d = core.devctl('0000:01:00.0', { value: 0x2010 });
    expect(d.devctl).toEqual({ decision: 'allow', hardwareValue: 0x2010, guestValue: 0x2010 });
    expect(rules(d)).toEqual(['W6', 'W6']);
    // Until the VMM has written the value and read it back, the bit may still be 1.
    expect(core.pin(8, 2).flush.required).toBe(true);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    expect(core.pin(16, 2).flush.required).toBe(false);
    expect(core.flagged(0)).toBe(true);
  });

  it('W7: an ignores-nosnoop-enable device is allowed, reported, and exposes its domain whatever its bit', () => {
    const core = new Core([{ vendorId: 0x15b3, deviceId: 0x1017, deviceMask: 0xffff, flags: ['ignores-nosnoop-enable'] }]);
    core.putVm({ mode: 'virtualize-zero' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    expect(core.pin(0, 2).flush.required).toBe(true);
    const d = core.devctl('0000:01:00.0', { nosnoopEnable: true });
    expect(d.devctl?.decision).toBe('allow');
    expect(rules(d)).toEqual(['W7']);
  });
});

describe('R1 device reset', () => {
  it('R1: the bit returns to 1 after reset, which exposes the domain (F2) until the VMM reports otherwise', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'deny' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'disabled' });
    core.pin(0, 2);
    const d = core.reset('0000:01:00.0', false);
    expect(rules(d)).toEqual(['R1', 'F2', 'W4']);
    expect(d.flush.pages).toBe(2);
    // trap + deny: the answer tells the VMM to clear the bit the reset set.
    expect(d.devctl).toEqual({ decision: 'deny', hardwareValue: DEVCTL_RESET_DEFAULT & ~NS, guestValue: DEVCTL_RESET_DEFAULT & ~NS });
    expect(viewVm(core.state, getVm(core.state, core.vm)).devices[0]?.nosnoop).toBe('enabled');
  });

  it('R1: a hardwired-zero device stays at 0 and exposes nothing', () => {
    const core = Core.withVm({ mode: 'trap' });
    core.domain('d0', false);
    core.device('0000:01:00.0', { nosnoop: 'hardwired-zero' });
    core.pin(0, 2);
    const d = core.reset('0000:01:00.0');
    expect(rules(d)).toEqual(['R1']);
    expect(d.flush.required).toBe(false);
  });

  it("R1: a VF reset leaves the PF's bit alone", () => {
    const core = Core.withVm({ mode: 'trap' });
    core.domain('d0', false);
    core.device('0000:01:00.1', { fn: 'vf', nosnoop: 'disabled' });
    core.pin(0, 2);
    const d = core.reset('0000:01:00.1');
    expect(rules(d)).toEqual(['R1']);
    expect(d.flush.required).toBe(false);
  });
});

describe('K1 KVM non-coherent DMA', () => {
  it('K1: true once any device sits in a non-coherent domain, false again when it leaves', () => {
    const core = Core.withVm();
    core.domain('c0', true);
    core.domain('d0', false);
    expect(core.device('0000:01:00.0', { domain: 'c0' }).kvmNoncoherentDma).toBe(false);
    const attach = core.device('0000:02:00.0', { domain: 'd0' });
    expect(attach.kvmNoncoherentDma).toBe(true);
    expect(rules(attach)).toContain('K1');
    expect(kvmNoncoherentDma(getVm(core.state, core.vm))).toBe(true);
    const detach = core.deleteDevice('0000:02:00.0');
    expect(detach.kvmNoncoherentDma).toBe(false);
    expect(rules(detach)).toContain('K1');
  });
});

describe('rule table', () => {
  it('names exactly the rules of SPEC section 3', () => {
    expect(RULE_IDS).toEqual(['C1', 'F1', 'F2', 'F3', 'F4', 'F5', 'W1', 'W2', 'W3', 'W4', 'W5', 'W6', 'W7', 'W8', 'R1', 'K1']);
  });

  it('lists them as documentation writes them, from the table', () => {
    expect(ruleRanges()).toBe('C1, F1-F5, W1-W8, R1, K1');
    expect(ruleRanges('W')).toBe('W1-W8');
  });

  it('the VM view reports coherent and exposed per domain', () => {
    const core = Core.withVm({ mode: 'trap' });
    core.domain('c0', true);
    core.domain('d0', false);
    core.device('0000:00:02.0', { domain: 'd0', kind: IGPU, nosnoop: 'enabled' });
    const view = viewVm(core.state, getVm(core.state, core.vm));
    expect(view.domains.map((d) => [d.id, d.coherent, d.exposed])).toEqual([
      ['c0', true, false],
      ['d0', false, true]
    ]);
    expect(view.devices[0]?.quirks).toEqual(['needs-nosnoop']);
    expect(view.kvmNoncoherentDma).toBe(true);
    expect(exposedDomains(getVm(core.state, core.vm), core.state.quirks)).toEqual(new Set([parseDomainId('d0')]));
  });
});
