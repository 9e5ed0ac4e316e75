/**
 * Rejections carry stable codes and change nothing; read-only queries answer like the commands
 * they preview.
 */
import { describe, expect, it } from 'vitest';
import { DomainError, getVm, mustFlush, parseDomainId, parsePciAddress, parseVmId, type DomainErrorCode } from '../../src/domain/index.js';
import { Core } from '../helpers/core.js';
import { digest } from '../model/simulation.js';

function rejects(core: Core, fn: () => unknown): DomainErrorCode {
  const before = digest(core.state);
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DomainError);
    expect(digest(core.state), 'a rejected command changed the state').toBe(before);
    return (err as DomainError).code;
  }
  throw new Error('expected a rejection');
}

function gpuVm(): Core {
  const core = Core.withVm({ mode: 'pessimistic' });
  core.domain('d0', false);
  core.device('0000:00:02.0', { nosnoop: 'enabled' });
  core.pin(0x10, 4);
  return core;
}

describe('rejections', () => {
  it('PIN_OVERLAP against a pinned range and inside a batch', () => {
    const core = gpuVm();
    expect(rejects(core, () => core.pin(0x13, 1))).toBe('PIN_OVERLAP');
    expect(rejects(core, () => core.pinBatch([{ iova: 0, pages: 2 }, { iova: 1, pages: 1 }]))).toBe('PIN_OVERLAP');
    // The batch is all or nothing: the first, valid range is not pinned either.
    expect(rejects(core, () => core.pinBatch([{ iova: 0x100, pages: 1 }, { iova: 0x12, pages: 1 }]))).toBe('PIN_OVERLAP');
    expect(getVm(core.state, core.vm).pins.size).toBe(1);
  });

  it('UNPIN_BISECTS when an unpin would cut a pinned range in two, UNKNOWN_RANGE when nothing is there', () => {
    const core = gpuVm();
    expect(rejects(core, () => core.unpin(0x11, 1))).toBe('UNPIN_BISECTS');
    expect(rejects(core, () => core.unpin(0x0, 0x12))).toBe('UNPIN_BISECTS');
    expect(rejects(core, () => core.unpin(0x100, 4))).toBe('UNKNOWN_RANGE');
  });

  it('DOMAIN_HAS_DEVICES, UNKNOWN_DOMAIN, UNKNOWN_DEVICE, UNKNOWN_VM', () => {
    const core = gpuVm();
    expect(rejects(core, () => core.deleteDomain('d0'))).toBe('DOMAIN_HAS_DEVICES');
    expect(rejects(core, () => core.deleteDomain('nope'))).toBe('UNKNOWN_DOMAIN');
    expect(rejects(core, () => core.device('0000:03:00.0', { domain: 'nope' }))).toBe('UNKNOWN_DOMAIN');
    expect(rejects(core, () => core.pin(0x100, 1, { domains: ['nope'] }))).toBe('UNKNOWN_DOMAIN');
    expect(rejects(core, () => core.reset('0000:09:00.0'))).toBe('UNKNOWN_DEVICE');
    expect(rejects(core, () => core.devctl('0000:09:00.0', { nosnoopEnable: true }))).toBe('UNKNOWN_DEVICE');
    expect(rejects(core, () => core.run({ type: 'delete-vm', vmId: parseVmId('other') }))).toBe('UNKNOWN_VM');
  });

  it('VM_HAS_NO_DOMAINS, ARCH_CHANGE, INVALID_POLICY, INVALID_DEVICE', () => {
    const core = Core.withVm();
    expect(rejects(core, () => core.pin(0, 1))).toBe('VM_HAS_NO_DOMAINS');
    expect(rejects(core, () => core.putVm({}, 'aarch64'))).toBe('ARCH_CHANGE');
    expect(rejects(core, () => core.putVm({ flushMethod: 'dc-civac' }))).toBe('INVALID_POLICY');
    core.domain('d0', false);
    expect(rejects(core, () => core.device('0000:01:00.0', { physfn: '0000:02:00.0' }))).toBe('INVALID_DEVICE');
    core.device('0000:01:00.0');
    expect(rejects(core, () => core.devctl('0000:01:00.0', { value: 0x10000 }))).toBe('INVALID_DEVICE');
    expect(rejects(core, () => core.devctl('0000:01:00.0', { value: 0x0800, nosnoopEnable: false }))).toBe('INVALID_DEVICE');
    expect(rejects(core, () => core.devctl('0000:01:00.0', {}))).toBe('INVALID_DEVICE');
  });

  it('ADDRESS_OVERFLOW for a pin past the end of the 64-bit space', () => {
    const core = gpuVm();
    expect(rejects(core, () => core.pin(2 ** 52 - 1, 2))).toBe('ADDRESS_OVERFLOW');
  });

  it('bumps the revision on every change and not on an identical PUT of a domain', () => {
    const core = gpuVm();
    const vm = getVm(core.state, core.vm);
    const r = vm.revision;
    core.domain('d0', false);
    expect(vm.revision).toBe(r);
    core.pin(0x100, 1);
    expect(vm.revision).toBe(r + 1);
  });
});

describe('must-flush queries', () => {
  const vm = parseVmId('vm1');

  it('map of an unpinned range answers as a pin would (F1, C1)', () => {
    const core = gpuVm();
    const a = mustFlush(core.state, vm, 'map', [{ iova: 0x100, pages: 2, hpa: 0x800 }]);
    expect(a.results).toEqual([{ iova: 0x100, pages: 2, required: true, rule: 'F1' }]);
    expect(a.decision.flush.ranges).toEqual([{ hpa: 0x800, pages: 2 }]);
    const coherent = Core.withVm();
    coherent.domain('c0', true);
    expect(mustFlush(coherent.state, vm, 'map', [{ iova: 0, pages: 1 }]).results[0]?.rule).toBe('C1');
  });

  it('unmap answers F3 from the flag and F4 for UC mmio, as the unpin would, changing nothing', () => {
    const core = gpuVm();
    core.pin(0x100, 2, { mmio: true, memType: 'UC' });
    core.pin(0x400, 1);
    const before = digest(core.state);
    const a = mustFlush(core.state, vm, 'unmap', [
      { iova: 0x10, pages: 4 },
      { iova: 0x100, pages: 2 }
    ]);
    expect(a.results.map((r) => [r.required, r.rule])).toEqual([
      [true, 'F3'],
      [false, 'F4']
    ]);
    expect(a.decision.flush.ranges).toEqual([{ hpa: 0x100000 + 0x10, pages: 4 }]);
    expect(a.decision.flush.when).toBe('after-unmap');
    expect(digest(core.state)).toBe(before);
  });

  it('unmap refuses what the unpin refuses: a range cut in two, or nothing pinned', () => {
    const core = gpuVm();
    const before = digest(core.state);
    expect(rejects(core, () => mustFlush(core.state, vm, 'unmap', [{ iova: 0x11, pages: 2 }]))).toBe('UNPIN_BISECTS');
    expect(rejects(core, () => core.unpin(0x11, 2))).toBe('UNPIN_BISECTS');
    expect(rejects(core, () => mustFlush(core.state, vm, 'unmap', [{ iova: 0x400, pages: 1 }]))).toBe('UNKNOWN_RANGE');
    expect(rejects(core, () => core.unpin(0x400, 1))).toBe('UNKNOWN_RANGE');
    expect(digest(core.state)).toBe(before);
  });

  it('rejects unknown VMs and domains', () => {
    const core = gpuVm();
    expect(() => mustFlush(core.state, parseVmId('nope'), 'map', [])).toThrow(DomainError);
    expect(() => mustFlush(core.state, vm, 'map', [{ iova: 0, pages: 1, domains: [parseDomainId('zz')] }])).toThrow(/does not exist/);
  });

  it('queries are read-only', () => {
    const core = gpuVm();
    const before = digest(core.state);
    mustFlush(core.state, vm, 'map', [{ iova: 0x10, pages: 4 }]);
    mustFlush(core.state, vm, 'unmap', [{ iova: 0x10, pages: 4 }]);
    expect(digest(core.state)).toBe(before);
    expect(parsePciAddress('0000:00:02.0')).toBe('0000:00:02.0');
  });
});
