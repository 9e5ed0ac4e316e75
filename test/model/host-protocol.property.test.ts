/**
 * The VMM protocol against a whole host (test/model/host-simulation.ts with `protocol`): each
 * VMM performs its flush jobs at a later step, in any order, and acknowledges them; it hears of
 * an admin's policy change or an operator's quirk list only on its VM's event stream; a write
 * that sets Enable No Snoop waits for its own flush and for `flush.after`, other writes go ahead
 * in any order; the service restarts mid-sequence and the VMMs resume their streams. Every
 * sequence must end with no leak, no stale line, no broken rule and no restart that changed the
 * state; and a VMM that does not wait for `flush.after` must be caught.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { VmId } from '../../src/domain/index.js';
import { protocolScenario } from './host-scenarios.js';
import { findings, HostSimulation, NONE } from './host-simulation.js';
import { VM_IDS, type HostEvent, type PfSpec } from './host-topology.js';

/** Sequences per property; PROPERTY_RUNS overrides. */
const RUNS = Number(process.env['PROPERTY_RUNS'] ?? 300);


/** PF0 (function 0, VFs 1 and 2), PF1 (3, VF 4), PF2 (5): NICs with Enable No Snoop clear. */
const NICS: PfSpec[] = [
  { kind: 'nic', hardwired: false, unreadable: false, bit: 0, vfs: ['disabled', 'disabled'] },
  { kind: 'nic', hardwired: false, unreadable: false, bit: 0, vfs: ['disabled'] },
  { kind: 'nic', hardwired: false, unreadable: false, bit: 0, vfs: [] }
];
const PF0 = 0;
const PF1 = 3;

/**
 * The issue's two-devices case on the host: PF0 and PF1 in the non-coherent d0 of a trap VM
 * that allows enables, pages pinned while no device could no-snoop (so not flushed), then both
 * guests' enables: PF0's answer carries the replay J, PF1's lists J in `flush.after`. The VMM
 * writes PF1's bit before anyone performed J (the `hw-write` picks PF1's queued write).
 */
const twoDevices: HostEvent[] = [
  { t: 'vm', vm: 0, mode: 'trap', onEnable: 'allow', exempt: null },
  { t: 'domain', vm: 0, dom: 0, coherent: false },
  { t: 'assign', fn: PF0, vm: 0, dom: 0 },
  { t: 'assign', fn: PF1, vm: 0, dom: 0 },
  { t: 'pin', vm: 0, slot: 1, pages: 2, doms: null, mmio: null },
  { t: 'pin', vm: 0, slot: 2, pages: 2, doms: null, mmio: null },
  { t: 'devctl', fn: PF0, enable: true, dryRun: false, value: null },
  { t: 'devctl', fn: PF1, enable: true, dryRun: false, value: null },
  // Writes to PF0 wait for J in either VMM; the pick lands on PF1's write where it may go.
  { t: 'hw-write', pick: 0 },
  { t: 'hw-write', pick: 1 }
];

describe('host model under the VMM protocol: jobs performed late and out of order, others heard on the stream', () => {
  it(`${RUNS} sequences of replayed enables, late flushes, quirk and policy changes and restarts: 0 leaks, 0 stale lines, 0 broken rules`, async () => {
    const totals = { heard: 0, lateFlushes: 0, afterWaits: 0, rereads: 0, restarts: 0, quirkChanges: 0, policyChanges: 0, lateWrites: 0 };
    await fc.assert(
      fc.asyncProperty(protocolScenario(200), async (scenario) => {
        const sim = await HostSimulation.play(scenario, { protocol: 'honour' });
        expect(findings(sim)).toEqual(NONE);
        for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += sim.stats[k];
      }),
      { numRuns: RUNS }
    );
    // Not vacuous: decisions heard only on the stream, jobs performed late, writes held by
    // `flush.after`, streams reset by restarts, quirk and policy changes all happen.
    for (const [k, n] of Object.entries(totals)) expect(n, k).toBeGreaterThan(RUNS / 20);
  });

  it('a VMM that ignores flush.after is caught in some generated sequences (the model has teeth)', async () => {
    // Seeded: about 2% of sequences put a second guest's enable between a replay and its flush.
    let caught = 0;
    await fc.assert(
      fc.asyncProperty(protocolScenario(200), async (scenario) => {
        const honest = await HostSimulation.play(scenario, { protocol: 'honour' });
        const careless = await HostSimulation.play(scenario, { protocol: 'ignore-after' });
        expect(findings(honest)).toEqual(NONE);
        if (careless.model.violations.filter((v) => v.kind === 'leak').length > 0) caught++;
      }),
      { numRuns: 300, seed: 20261202 }
    );
    expect(caught).toBeGreaterThan(0);
  });

  it('the two-devices case: the second enable waits for the first one\'s replay; a VMM ignoring flush.after leaks', async () => {
    const scenario = { pfs: NICS, config: { defaults: { mode: 'trap' as const, onEnable: 'allow' as const, exemptNeedsNoSnoop: false }, table: 1 }, events: twoDevices };
    const honest = new HostSimulation(scenario.pfs, scenario.config, { protocol: 'honour' });
    await honest.run(scenario.events);
    // PF1's answer named PF0's replay, and neither bit is set before it is performed.
    expect(honest.last?.after).toHaveLength(1);
    expect(honest.stats.afterWaits).toBe(1);
    expect(findings(honest)).toEqual(NONE);
    await honest.step({ t: 'vmm', pick: 0 });
    await honest.step({ t: 'hw-write', pick: 0 });
    await honest.step({ t: 'hw-write', pick: 0 });
    await honest.finish();
    expect(findings(honest)).toEqual(NONE);

    const careless = await HostSimulation.play(scenario, { protocol: 'ignore-after' });
    expect(careless.model.violations.filter((v) => v.kind === 'leak').length).toBeGreaterThan(0);
  });

  it('a reset without config restore while a replay is outstanding: its answer lists the replay, whatever value it then writes', async () => {
    // PF0 enabled (replay J pending), then an admin's policy denies enables, then a cold reset:
    // the bit is back at 1 at once, so the reset waits for J although the value to write clears it.
    const events: HostEvent[] = [
      { t: 'vm', vm: 0, mode: 'trap', onEnable: 'allow', exempt: null },
      { t: 'domain', vm: 0, dom: 0, coherent: false },
      { t: 'assign', fn: PF0, vm: 0, dom: 0 },
      { t: 'pin', vm: 0, slot: 1, pages: 2, doms: null, mmio: null },
      { t: 'devctl', fn: PF0, enable: true, dryRun: false, value: null },
      { t: 'vm', vm: 0, mode: 'trap', onEnable: 'deny', exempt: null },
      { t: 'reset', fn: PF0, restoresConfig: false }
    ];
    const config = { defaults: { mode: 'trap' as const, onEnable: 'allow' as const, exemptNeedsNoSnoop: false }, table: 1 };
    const sim = new HostSimulation(NICS, config, { protocol: 'honour' });
    await sim.run(events.slice(0, -1));
    const [replay] = sim.service.flushJobs(VM_IDS[0] as VmId, undefined, 10).filter((j) => j.cause === 'replay');
    await sim.step(events[events.length - 1] as HostEvent);
    expect((sim.last?.decision.devctl?.hardwareValue ?? 0x800) & 0x800).toBe(0);
    expect(sim.last?.after).toEqual([replay?.id]);
    await sim.finish();
    expect(findings(sim)).toEqual(NONE);
    const careless = await HostSimulation.play({ pfs: NICS, config, events }, { protocol: 'ignore-after' });
    expect(careless.model.violations.filter((v) => v.kind === 'leak').length).toBeGreaterThan(0);
  });

  it('an operator\'s quirk list reaches the VMM on its stream: the replay is performed and acknowledged, later pins flushed meanwhile', async () => {
    // The vmq: trap, onEnable deny, a non-coherent domain, a NIC whose bit is clear, a
    // page pinned "no flush"; then the operator quirks the NIC PF ignores-nosnoop-enable (table 4).
    const events: HostEvent[] = [
      { t: 'vm', vm: 0, mode: 'trap', onEnable: 'deny', exempt: null },
      { t: 'domain', vm: 0, dom: 0, coherent: false },
      { t: 'assign', fn: PF0, vm: 0, dom: 0 },
      { t: 'pin', vm: 0, slot: 1, pages: 2, doms: null, mmio: null },
      { t: 'quirks', table: 4 },
      { t: 'pin', vm: 0, slot: 2, pages: 2, doms: null, mmio: null }
    ];
    const sim = new HostSimulation(NICS, { defaults: { mode: 'trap', onEnable: 'deny', exemptNeedsNoSnoop: false }, table: 1 }, { protocol: 'honour' });
    await sim.run(events);
    // The VMM heard of the VM's creation and of the replay on its stream only; the pin after the
    // change flushed at once.
    expect(sim.stats.heard).toBe(2);
    expect(sim.last?.decision.flush.required).toBe(true);
    const [job] = sim.service.flushJobs(VM_IDS[0] as VmId, undefined, 10).filter((j) => j.cause === 'replay');
    // Planned, it waits for the VMM's acknowledgement.
    expect((await sim.service.settledFlushJob(job?.id as string))?.state).toBe('pending');
    await sim.step({ t: 'vmm', pick: 0 });
    expect(sim.service.flushJob(job?.id as string)?.state).toBe('acknowledged');
    await sim.finish();
    expect(findings(sim)).toEqual(NONE);
  });
});
