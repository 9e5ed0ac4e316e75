/**
 * A DEVCTL dry run is the write, changing nothing: on random VM states (quiet devices attached
 * with a clear pending under virtualize-zero or trap/deny, unconfirmed clears, VFs, hardwired
 * and unknown bits, resets, quirk and policy changes, pins), every write to every device of the
 * VM is asked as a dry run and then made for real on a copy of the state: both answer the same
 * decision, hardwareValue, guestValue, flush (required, ranges, cause) and reasons, or the same
 * error, and the dry run leaves the state as it was.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyCommand,
  decodeVm,
  DomainError,
  encodeVmRecord,
  getVm,
  parsePciAddress,
  PinMap,
  POLICY_MODES,
  type CoherencyState,
  type Command,
  type Decision,
  type DevctlWrite,
  type NoSnoopState,
  type OnEnable,
  type PolicyMode,
  type Vm,
  type VmId
} from '../../src/domain/index.js';
import { digest } from '../model/simulation.js';
import { Core, IGPU, NIC } from '../helpers/core.js';

const RUNS = Number(process.env['PROPERTY_RUNS'] ?? 500);
const DOMAINS = ['d0', 'd1'];
const BDFS = ['0000:01:00.0', '0000:02:00.0', '0000:01:00.2'];
const BAD = { vendorId: 0x1d0f, deviceId: 0x0001 };
const WRITES: readonly DevctlWrite[] = [
  { nosnoopEnable: true },
  { nosnoopEnable: false },
  { value: 0x2810 },
  { value: 0x2010 },
  { value: 0xa810 },
  { value: 0x2a30 }
];

type Step =
  | { t: 'domain'; dom: number; coherent: boolean }
  | { t: 'device'; dev: number; dom: number; nosnoop: NoSnoopState; kind: number; vf: boolean; pci: boolean }
  | { t: 'devctl'; dev: number; write: number }
  | { t: 'confirm'; dev: number; nosnoop: NoSnoopState }
  | { t: 'reset'; dev: number; restores: boolean }
  | { t: 'quirks'; bad: boolean }
  | { t: 'policy'; mode: PolicyMode; onEnable: OnEnable }
  | { t: 'pin'; iova: number; pages: number; dom: number | null }
  | { t: 'probe' };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ t: fc.constant('domain' as const), dom: fc.nat(1), coherent: fc.boolean() }) },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('device' as const),
      dev: fc.nat(2),
      dom: fc.nat(1),
      nosnoop: fc.constantFrom<NoSnoopState>('enabled', 'disabled', 'disabled', 'hardwired-zero', 'unknown'),
      kind: fc.nat(2),
      vf: fc.boolean(),
      pci: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) })
    })
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('devctl' as const), dev: fc.nat(2), write: fc.nat(WRITES.length - 1) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('confirm' as const), dev: fc.nat(2), nosnoop: fc.constantFrom<NoSnoopState>('enabled', 'disabled', 'unknown') }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('reset' as const), dev: fc.nat(2), restores: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('quirks' as const), bad: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('policy' as const),
      mode: fc.constantFrom(...POLICY_MODES),
      onEnable: fc.constantFrom<OnEnable>('allow', 'deny', 'allow-needs-nosnoop')
    })
  },
  {
    weight: 5,
    arbitrary: fc.record({ t: fc.constant('pin' as const), iova: fc.nat(30), pages: fc.integer({ min: 1, max: 3 }), dom: fc.option(fc.nat(1), { nil: null }) })
  },
  { weight: 4, arbitrary: fc.constant({ t: 'probe' as const }) }
);

/** A deep copy of the state, through the stored record format and the pin map's ranges. */
function copyState(state: CoherencyState): CoherencyState {
  const vms = new Map<VmId, Vm>();
  for (const vm of state.vms.values()) {
    const pins = new PinMap();
    pins.insertMany(vm.pins.toArray());
    vms.set(vm.id, decodeVm(encodeVmRecord(vm), pins));
  }
  return { vms, quirks: state.quirks, defaults: state.defaults };
}

/** Everything an answer says, as plain data (the flush's ranges read out of their lazy form). */
function answerOf(decision: Decision): unknown {
  const { flush } = decision;
  return {
    devctl: decision.devctl,
    flush: { required: flush.required, ranges: flush.ranges.map((r) => ({ ...r })), pages: flush.pages, cause: flush.cause, when: flush.when },
    reasons: decision.reasons,
    kvmNoncoherentDma: decision.kvmNoncoherentDma,
    pessimisticPages: decision.pessimisticPages,
    devices: decision.devices
  };
}

function outcome(state: CoherencyState, cmd: Command): { code: string } | { answer: unknown } {
  try {
    return { answer: answerOf(applyCommand(state, cmd, 5_000_000).decision) };
  } catch (err) {
    if (err instanceof DomainError) return { code: err.code };
    throw err;
  }
}

/** Applies a step that sets up state; a rejection is fine (it changes nothing). */
function setUp(core: Core, s: Exclude<Step, { t: 'probe' }>): void {
  const bdf = BDFS[('dev' in s ? s.dev : 0) % BDFS.length] as string;
  try {
    switch (s.t) {
      case 'domain':
        core.domain(DOMAINS[s.dom] as string, s.coherent);
        return;
      case 'device':
        core.device(bdf, {
          domain: DOMAINS[s.dom] as string,
          nosnoop: s.nosnoop,
          kind: [NIC, IGPU, BAD][s.kind],
          pci: s.pci,
          ...(s.vf && bdf === BDFS[2] ? { fn: 'vf' as const, physfn: BDFS[0] as string } : {})
        });
        return;
      case 'devctl':
        core.devctl(bdf, WRITES[s.write] as DevctlWrite);
        return;
      case 'confirm': {
        const d = getVm(core.state, core.vm).devices.get(parsePciAddress(bdf));
        if (d !== undefined) core.device(bdf, { domain: d.domainId, nosnoop: s.nosnoop, fn: d.function, ...(d.physfn === null ? {} : { physfn: d.physfn }), kind: d });
        return;
      }
      case 'reset':
        core.reset(bdf, s.restores);
        return;
      case 'quirks':
        core.run({ type: 'put-quirks', quirks: s.bad ? [{ ...BAD, deviceMask: 0xffff, flags: ['ignores-nosnoop-enable'] }] : [] });
        return;
      case 'policy':
        core.putVm({ mode: s.mode, onEnable: s.onEnable });
        return;
      case 'pin':
        core.pin(s.iova, s.pages, s.dom === null ? {} : { domains: [DOMAINS[s.dom] as string] });
        return;
    }
  } catch (err) {
    if (!(err instanceof DomainError)) throw err;
  }
}

describe('a DEVCTL dry run answers what the write answers', () => {
  it('a quiet device (attached with its clear pending): clearing the bit replays nothing, dry run or not', () => {
    const core = Core.withVm({ mode: 'virtualize-zero' });
    core.domain('d0', false);
    core.pin(0, 4);
    expect(core.device('0000:01:00.0', { nosnoop: 'enabled' }).devctl?.decision).toBe('deny');
    const cmd: Command = { type: 'devctl', vmId: core.vm, bdf: parsePciAddress('0000:01:00.0'), write: { nosnoopEnable: false }, dryRun: true };
    const before = digest(core.state);
    const dry = outcome(core.state, cmd);
    expect(digest(core.state)).toBe(before);
    const real = outcome(copyState(core.state), { ...cmd, dryRun: false });
    expect(dry).toEqual(real);
    expect(real).toMatchObject({ answer: { flush: { required: false } } });
  });

  it(`${RUNS} random VMs: every write to every device, dry run ≡ the write on a copy of the state, nothing changed`, () => {
    let probes = 0;
    let quiet = 0;
    let flushed = 0;
    let refused = 0;
    fc.assert(
      fc.property(
        fc.constantFrom<{ mode: PolicyMode; onEnable: OnEnable }>(
          { mode: 'virtualize-zero', onEnable: 'allow-needs-nosnoop' },
          { mode: 'trap', onEnable: 'deny' },
          { mode: 'trap', onEnable: 'allow' },
          { mode: 'trap', onEnable: 'allow-needs-nosnoop' },
          { mode: 'pessimistic', onEnable: 'allow' }
        ),
        fc.array(step, { minLength: 5, maxLength: 30 }),
        (policy, steps) => {
          const core = Core.withVm(policy);
          core.domain('d0', false);
          // Pinned before any device can expose d0: what a later allowed enable must replay.
          core.pin(100, 2);
          for (const s of [...steps, { t: 'probe' as const }]) {
            if (s.t !== 'probe') {
              setUp(core, s);
              continue;
            }
            // Every device of the VM, and one it does not have (the same error either way).
            const devices = [...getVm(core.state, core.vm).devices.values()];
            for (const bdf of [...devices.map((d) => d.bdf), parsePciAddress('0000:7f:00.0')]) {
              const device = devices.find((d) => d.bdf === bdf);
              for (const write of WRITES) {
                const cmd: Command = { type: 'devctl', vmId: core.vm, bdf, write, dryRun: true };
                const before = digest(core.state);
                const dry = outcome(core.state, cmd);
                expect(digest(core.state)).toBe(before);
                const real = outcome(copyState(core.state), { ...cmd, dryRun: false });
                expect(dry, `${bdf} ${JSON.stringify(write)} ${JSON.stringify(device)}`).toEqual(real);
                probes++;
                if (device?.quietUntilReported === true) quiet++;
                if ('code' in real) refused++;
                else if ((real.answer as { flush: { required: boolean } }).flush.required) flushed++;
              }
            }
          }
        }
      ),
      { numRuns: RUNS }
    );
    // The states must exercise quiet devices, replays and refusals, not only one of them.
    expect(quiet).toBeGreaterThan(RUNS / 5);
    expect(flushed).toBeGreaterThan(RUNS / 20);
    expect(refused).toBeGreaterThan(RUNS);
    expect(probes).toBeGreaterThan(10 * RUNS);
  });
});

describe('a dry run that exposes two domains at once', () => {
  it('counts a range mapped into both once, as the write does', () => {
    const core = Core.withVm({ mode: 'trap', onEnable: 'allow' });
    core.domain('d0', false);
    core.domain('d1', false);
    core.device('0000:01:00.0', { domain: 'd0', nosnoop: 'disabled' });
    core.device('0000:01:00.1', { domain: 'd1', nosnoop: 'disabled', fn: 'vf', physfn: '0000:01:00.0' });
    core.pin(0, 2);
    const dry = core.devctl('0000:01:00.0', { nosnoopEnable: true }, true);
    const write = core.devctl('0000:01:00.0', { nosnoopEnable: true });
    expect(dry.reasons).toEqual(write.reasons);
    expect(dry.flush).toEqual(write.flush);
    expect(write.reasons.filter((r) => r.rule === 'F2')).toHaveLength(2);
  });
});
