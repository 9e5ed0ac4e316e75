/**
 * A change applied as a revision of the log says what it did: the VMs it touched (gone, changed
 * in their pins only, or changed), their pin operations and a quirk table replaced. The shell
 * stores exactly that, so the operations must rebuild the pin map and the revision must be the
 * one it was given.
 */
import { describe, expect, it } from 'vitest';
import { getVm, parseDomainId, parseVmId, PIN_OP_STRIDE, PIN_RECODE, PIN_REMOVE, PinMap, type ChangeResult, type Vm } from '../../src/domain/index.js';
import { Core, NIC } from '../helpers/core.js';

/** The pin map `vm` had, rebuilt from `before` and the change's operations. */
function rebuilt(before: Float64Array, ops: Float64Array | null): Float64Array {
  const map = new PinMap();
  map.insertMany(before);
  if (ops !== null) map.apply(ops);
  return map.toArray();
}

function onlyEffect(result: ChangeResult): ChangeResult['effects']['vms'][number] {
  expect(result.effects.vms).toHaveLength(1);
  return result.effects.vms[0] as ChangeResult['effects']['vms'][number];
}

function exposedVm(): { core: Core; vm: Vm } {
  const core = Core.withVm();
  core.domain('d0', false);
  core.domain('d1', false);
  core.device('0000:00:02.0', { nosnoop: 'enabled' });
  return { core, vm: getVm(core.state, core.vm) };
}

describe('a change applied as a revision of the log', () => {
  it('numbers its VM with that revision; without one the VM counts its own changes', () => {
    const core = Core.withVm();
    const vm = getVm(core.state, core.vm);
    expect(vm.revision).toBe(1);
    const result = core.runAs({ type: 'put-domain', vmId: core.vm, domainId: parseDomainId('d0'), enforceCacheCoherency: false }, 40);
    expect(vm.revision).toBe(40);
    expect(result.effects).toEqual({ vms: [{ vmId: core.vm, vm, pinsOnly: false, ops: null }], quirks: false });
    core.domain('d1', true);
    expect(vm.revision).toBe(41);
    expect('effects' in core.run({ type: 'delete-domain', vmId: core.vm, domainId: parseDomainId('d1') })).toBe(false);
  });

  it('reports a pin or an unpin as a change of pins only, with operations that rebuild the map', () => {
    const { core, vm } = exposedVm();
    let before = vm.pins.toArray();
    const pinned = onlyEffect(core.runAs({ type: 'pin', vmId: core.vm, ranges: [{ iova: 0x10, pages: 4, hpa: 0x100 }, { iova: 0x20, pages: 2, hpa: 0x200 }] }, 7));
    expect(pinned).toMatchObject({ vmId: core.vm, vm, pinsOnly: true });
    expect(pinned.ops?.length).toBe(2 * PIN_OP_STRIDE);
    expect([...rebuilt(before, pinned.ops)]).toEqual([...vm.pins.toArray()]);
    before = vm.pins.toArray();
    const unpinned = onlyEffect(core.runAs({ type: 'unpin', vmId: core.vm, ranges: [{ iova: 0x10, pages: 4 }] }, 8));
    expect(unpinned.pinsOnly).toBe(true);
    expect(unpinned.ops?.[0]).toBe(PIN_REMOVE);
    expect([...rebuilt(before, unpinned.ops)]).toEqual([...vm.pins.toArray()]);
    expect(vm.revision).toBe(8);
  });

  it('reports a pin that adds a subset of domains as a change of the whole VM', () => {
    const { core, vm } = exposedVm();
    const subsets = vm.subsets.length;
    const effect = onlyEffect(core.runAs({ type: 'pin', vmId: core.vm, ranges: [{ iova: 0x10, pages: 1, hpa: 0x100, domains: [parseDomainId('d1')] }] }, 3));
    expect(vm.subsets.length).toBe(subsets + 1);
    expect(effect.pinsOnly).toBe(false);
    expect(effect.ops).not.toBeNull();
  });

  it('reports a deleted VM as gone, and answers its last revision and one', () => {
    const { core, vm } = exposedVm();
    core.runAs({ type: 'pin', vmId: core.vm, ranges: [{ iova: 0, pages: 2, hpa: 0x100 }] }, 12);
    const result = core.runAs({ type: 'delete-vm', vmId: core.vm }, 13);
    expect(result.effects.vms).toEqual([{ vmId: vm.id, vm: null, pinsOnly: false, ops: null }]);
    expect(result.revision).toBe(13);
    expect(core.state.vms.has(core.vm)).toBe(false);
  });

  it('numbers each VM a quirk change decided about, reports its replay and the new table, and leaves the others', () => {
    const core = new Core([]);
    core.putVm();
    core.domain('d0', false);
    core.device('0000:00:02.0', { kind: NIC, nosnoop: 'disabled' });
    core.pin(0, 4);
    const quiet = parseVmId('vm2');
    core.run({ type: 'put-vm', vmId: quiet, arch: 'x86_64' });
    const vm = getVm(core.state, core.vm);
    const before = vm.pins.toArray();
    const result = core.runAs({ type: 'put-quirks', quirks: [{ ...NIC, deviceMask: 0xffff, flags: ['ignores-nosnoop-enable'] }] }, 99);
    expect([...(result.vms?.keys() ?? [])]).toEqual([core.vm]);
    expect(vm.revision).toBe(99);
    expect(getVm(core.state, quiet).revision).toBe(1);
    expect(result.effects.quirks).toBe(true);
    const effect = onlyEffect(result);
    expect(effect).toMatchObject({ vmId: core.vm, pinsOnly: false });
    expect(effect.ops?.[0]).toBe(PIN_RECODE);
    expect([...rebuilt(before, effect.ops)]).toEqual([...vm.pins.toArray()]);
  });

  it('throws on a rejected change and numbers nothing', () => {
    const { core, vm } = exposedVm();
    core.runAs({ type: 'pin', vmId: core.vm, ranges: [{ iova: 0, pages: 2, hpa: 0x100 }] }, 5);
    expect(() => core.runAs({ type: 'pin', vmId: core.vm, ranges: [{ iova: 1, pages: 1, hpa: 0x300 }] }, 6)).toThrow(/overlaps/);
    expect(vm.revision).toBe(5);
    // The next change reports its own operations only.
    const effect = onlyEffect(core.runAs({ type: 'unpin', vmId: core.vm, ranges: [{ iova: 0, pages: 2 }] }, 6));
    expect(effect.ops?.length).toBe(PIN_OP_STRIDE);
  });
});
