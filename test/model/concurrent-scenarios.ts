/**
 * What the concurrent-callers model (concurrent-host.ts) plays: one VM's configuration (policy,
 * domains, devices and the bits the host left in them, ranges pinned before the callers start),
 * the quirk lists an operator switches between, and rounds of requests in flight at once.
 */
import fc from 'fast-check';
import { defaultQuirksFile, type OnEnable, type PolicyMode } from '../../src/domain/index.js';

export type DevKind = 'nic' | 'igpu' | 'bad';
export type DevState = 'disabled' | 'enabled' | 'unknown' | 'hardwired-zero';

/** The iGPU is needs-nosnoop in the shipped quirk file; the bad device is quirked ignores-nosnoop-enable in table 1. */
export const IDS: Record<DevKind, readonly [string, string]> = { nic: ['0x15b3', '0x1017'], igpu: ['0x8086', '0x9a49'], bad: ['0x1d0f', '0x0001'] };

const SHIPPED_QUIRKS = (defaultQuirksFile as { quirks: { vendorId: string; deviceId: string; deviceMask?: string; flags: string[] }[] }).quirks.map((q) => ({
  vendorId: q.vendorId,
  deviceId: q.deviceId,
  ...(q.deviceMask === undefined ? {} : { deviceMask: q.deviceMask }),
  flags: q.flags
}));

/** Quirk lists the operator switches between: 0 the shipped list, 1 the shipped list and the bad device ignoring its bit. */
export const QUIRK_TABLES = [SHIPPED_QUIRKS, [...SHIPPED_QUIRKS, { vendorId: IDS.bad[0], deviceId: IDS.bad[1], flags: ['ignores-nosnoop-enable'] }]] as const;

export interface DevSpec {
  readonly kind: DevKind;
  /** What the host left in the bit, as the VMM reads it when the device is assigned. */
  readonly state: DevState;
  /** Index of the domain it is attached to at start. */
  readonly dom: number;
}

export interface PinSpec {
  readonly pages: number;
  /** Indices of the domains it maps into; null: every domain of the VM. */
  readonly doms: readonly number[] | null;
}

export interface Config {
  readonly mode: PolicyMode;
  readonly onEnable: OnEnable;
  readonly exempt: boolean;
  /** Per domain (d0, d1, ...): enforces cache coherency. */
  readonly coherent: readonly boolean[];
  readonly devices: readonly DevSpec[];
  /** Index into QUIRK_TABLES in force at start. */
  readonly quirks: 0 | 1;
  /** Ranges pinned (one at a time, every flush performed) before the callers start. */
  readonly prePins: readonly PinSpec[];
}

export type Action =
  | { readonly t: 'pin'; readonly caller: number; readonly pages: number; readonly doms: readonly number[] | null }
  | { readonly t: 'unpin'; readonly caller: number; readonly pick: number }
  | { readonly t: 'devctl'; readonly caller: number; readonly dev: number; readonly enable: boolean }
  /** PUT the device into another domain (or the same: a report of what it reads). */
  | { readonly t: 'move'; readonly caller: number; readonly dev: number; readonly dom: number }
  /** The caller performs its oldest flush not performed yet, then acknowledges it. */
  | { readonly t: 'flush'; readonly caller: number }
  /** The VMM lists its VM's flush jobs and performs and acknowledges those it was not answered. */
  | { readonly t: 'list' }
  /** An operator replaces the quirk list. */
  | { readonly t: 'quirks'; readonly table: 0 | 1 };

export interface Scenario {
  readonly config: Config;
  /** Each round's actions are sent at once (Promise.all). */
  readonly rounds: readonly (readonly Action[])[];
}


export interface ModeSpec {
  readonly mode: PolicyMode;
  readonly onEnable: OnEnable;
}

/** Every policy mode (trap with each onEnable), as the models play them. */
export const MODES: readonly ModeSpec[] = [
  { mode: 'trap', onEnable: 'allow' },
  { mode: 'trap', onEnable: 'deny' },
  { mode: 'trap', onEnable: 'allow-needs-nosnoop' },
  { mode: 'virtualize-zero', onEnable: 'allow-needs-nosnoop' },
  { mode: 'pessimistic', onEnable: 'allow-needs-nosnoop' }
];

/** Initial bit states, weighted: mostly clear and readable, so that enables replay. */
export const DEV_STATES: readonly DevState[] = ['disabled', 'disabled', 'disabled', 'disabled', 'disabled', 'enabled', 'enabled', 'unknown', 'hardwired-zero'];

export interface ScenarioOptions {
  /** Initial bit states to draw from (default DEV_STATES). */
  readonly states?: readonly DevState[];
  /** Device kinds to draw from (default mostly NICs, some iGPUs and bad devices). */
  readonly kinds?: readonly DevKind[];
  /** The policy's exemptNeedsNoSnoop (default either). */
  readonly exempt?: boolean;
  /** Fewest ranges pinned before the callers start (default 1). */
  readonly minPrePins?: number;
  readonly maxRounds?: number;
  /** Weight of the operator's quirk-list changes (0: none). */
  readonly quirks?: number;
  /** Weight of DEVCTL writes (default 5). */
  readonly devctl?: number;
}

function weighted<T>(...pairs: [number, T][]): fc.Arbitrary<T> {
  return fc.oneof(...pairs.map(([weight, v]) => ({ weight, arbitrary: fc.constant(v) })));
}

export function action(callers: number, options: ScenarioOptions = {}): fc.Arbitrary<Action> {
  const caller = fc.nat(callers - 1);
  const doms = fc.option(fc.uniqueArray(fc.nat(3), { minLength: 1, maxLength: 2 }), { freq: 3, nil: null });
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ t: fc.constant('pin' as const), caller, pages: fc.integer({ min: 1, max: 3 }), doms }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('unpin' as const), caller, pick: fc.nat(7) }) },
    { weight: options.devctl ?? 5, arbitrary: fc.record({ t: fc.constant('devctl' as const), caller, dev: fc.nat(3), enable: weighted<boolean>([3, true], [1, false]) }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('move' as const), caller, dev: fc.nat(3), dom: fc.nat(3) }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('flush' as const), caller }) },
    { weight: 1, arbitrary: fc.constant({ t: 'list' as const }) },
    ...(options.quirks === undefined || options.quirks === 0 ? [] : [{ weight: options.quirks, arbitrary: fc.record({ t: fc.constant('quirks' as const), table: fc.constantFrom<0 | 1>(0, 1) }) }])
  );
}

/** One VM in `spec`'s mode: 2-3 non-coherent domains and maybe a coherent one, 2-4 PFs, 2-3 callers, rounds of 2-4 requests in flight. */
export function concurrentScenario(spec: ModeSpec, options: ScenarioOptions = {}): fc.Arbitrary<Scenario> {
  return fc
    .record({
      nonCoherent: fc.integer({ min: 2, max: 3 }),
      coherentToo: fc.boolean(),
      exempt: options.exempt === undefined ? fc.boolean() : fc.constant(options.exempt),
      quirks: options.quirks === 0 ? fc.constant<0 | 1>(0) : fc.constantFrom<0 | 1>(0, 1),
      devices: fc.array(
        fc.record({
          kind: options.kinds === undefined ? weighted<DevKind>([3, 'nic'], [1, 'igpu'], [1, 'bad']) : fc.constantFrom(...options.kinds),
          state: fc.constantFrom(...(options.states ?? DEV_STATES)),
          dom: fc.nat(3)
        }),
        { minLength: 2, maxLength: 4, size: 'max' }
      ),
      prePins: fc.array(fc.record({ pages: fc.integer({ min: 1, max: 3 }), doms: fc.option(fc.uniqueArray(fc.nat(3), { minLength: 1, maxLength: 2 }), { freq: 3, nil: null }) }), { minLength: options.minPrePins ?? 1, maxLength: Math.max(3, options.minPrePins ?? 1), size: 'max' }),
      callers: fc.integer({ min: 2, max: 3 })
    })
    .chain((c) =>
      // Lengths shrink to their minimum, so a counterexample keeps only the requests it needs.
      fc.array(fc.array(action(c.callers, options), { minLength: 1, maxLength: 4, size: 'max' }), { minLength: 1, maxLength: options.maxRounds ?? 10, size: 'max' }).map((rounds): Scenario => {
        const coherent = [...Array.from({ length: c.nonCoherent }, () => false), ...(c.coherentToo ? [true] : [])];
        return {
          config: { mode: spec.mode, onEnable: spec.onEnable, exempt: c.exempt, coherent, devices: c.devices, quirks: c.quirks, prePins: c.prePins },
          rounds
        };
      })
    );
}

/**
 * Where replays meet: policies that let the guests' enables through, devices whose bit is clear
 * (nothing exposed, so pins are not flushed), ranges pinned into several domains, and rounds
 * heavy in enables: two enables of one window replay overlapping ranges, flushes come late.
 */
export function replayStorm(): fc.Arbitrary<Scenario> {
  const states: DevState[] = ['disabled', 'disabled', 'disabled', 'disabled', 'hardwired-zero'];
  const common = { states, devctl: 12, quirks: 0, minPrePins: 2 } as const;
  return fc.oneof(
    { weight: 3, arbitrary: concurrentScenario({ mode: 'trap', onEnable: 'allow' }, { ...common, kinds: ['nic'] }) },
    { weight: 1, arbitrary: concurrentScenario({ mode: 'trap', onEnable: 'allow-needs-nosnoop' }, { ...common, kinds: ['igpu', 'igpu', 'nic'] }) },
    { weight: 1, arbitrary: concurrentScenario({ mode: 'virtualize-zero', onEnable: 'allow-needs-nosnoop' }, { ...common, kinds: ['igpu', 'igpu', 'nic'], exempt: true }) }
  );
}
