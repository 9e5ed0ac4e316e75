/**
 * Per-VM policy (SPEC section 4). A VM's policy is the server default overlaid with what the VM
 * was created with; `resolvePolicy` validates the combination for the VM's architecture.
 */
import { DomainError } from './errors.js';
import { parsePciAddress } from './ids.js';

export const ARCHES = ['x86_64', 'aarch64'] as const;
export type Arch = (typeof ARCHES)[number];

export const POLICY_MODES = ['pessimistic', 'trap', 'virtualize-zero'] as const;
export type PolicyMode = (typeof POLICY_MODES)[number];

export const ON_ENABLE = ['allow', 'deny', 'allow-needs-nosnoop'] as const;
export type OnEnable = (typeof ON_ENABLE)[number];

/** W8: a device's own answer to its trapped enables, ahead of the mode's (W3, W4). */
export const DEVICE_ON_ENABLE = ['allow', 'deny'] as const;
export type DeviceOnEnable = (typeof DEVICE_ON_ENABLE)[number];

export interface DeviceOverride {
  readonly onEnable: DeviceOnEnable;
}

/** Per-device overrides one VM's policy may carry, at most (they are kept with the VM's record). */
export const MAX_DEVICE_OVERRIDES = 256;

/** Per-line flush instructions. WBINVD is not a per-line method: see `wbinvdAbovePages`. */
export const FLUSH_METHODS = ['clflushopt', 'clflush', 'dc-civac'] as const;
export type FlushMethod = (typeof FLUSH_METHODS)[number];

export interface Policy {
  readonly mode: PolicyMode;
  readonly onEnable: OnEnable;
  readonly exemptNeedsNoSnoop: boolean;
  readonly flushMethod: FlushMethod;
  /**
   * x86 only: a flush of more than this many pages may use WBINVD instead of per-line flushes.
   * Null (the default) never uses WBINVD: it stalls every CPU and ignores cache partitioning.
   */
  readonly wbinvdAbovePages: number | null;
  /**
   * W8: per-device overrides, by PCI address (lower case), of how the device's trapped enables
   * are decided. Absent when there are none.
   */
  readonly devices?: Readonly<Record<string, DeviceOverride>>;
}

export type PolicyInput = Partial<Policy>;

/** Server-wide defaults; `flushMethod` is chosen per architecture when not given. */
export interface PolicyDefaults {
  readonly mode: PolicyMode;
  readonly onEnable: OnEnable;
  readonly exemptNeedsNoSnoop: boolean;
}

export const DEFAULT_POLICY: PolicyDefaults = Object.freeze({
  mode: 'trap',
  onEnable: 'allow-needs-nosnoop',
  exemptNeedsNoSnoop: true
});

export function defaultFlushMethod(arch: Arch): FlushMethod {
  return arch === 'aarch64' ? 'dc-civac' : 'clflushopt';
}

/** Overlays `input` on `base` and checks that the result makes sense on `arch`. */
export function resolvePolicy(arch: Arch, base: PolicyDefaults | Policy, input: PolicyInput = {}): Policy {
  const flushMethod = input.flushMethod ?? ('flushMethod' in base ? base.flushMethod : defaultFlushMethod(arch));
  const wbinvdAbovePages = input.wbinvdAbovePages !== undefined ? input.wbinvdAbovePages : 'wbinvdAbovePages' in base ? base.wbinvdAbovePages : null;
  const policy: Policy = {
    mode: input.mode ?? base.mode,
    onEnable: input.onEnable ?? base.onEnable,
    exemptNeedsNoSnoop: input.exemptNeedsNoSnoop ?? base.exemptNeedsNoSnoop,
    flushMethod,
    wbinvdAbovePages,
    ...deviceOverrides(input.devices)
  };
  const x86 = arch === 'x86_64';
  if (x86 && policy.flushMethod === 'dc-civac') {
    throw new DomainError('INVALID_POLICY', 'flushMethod dc-civac is an aarch64 instruction', { field: 'policy.flushMethod' });
  }
  if (!x86 && policy.flushMethod !== 'dc-civac') {
    throw new DomainError('INVALID_POLICY', `flushMethod ${policy.flushMethod} is an x86 instruction; aarch64 uses dc-civac`, {
      field: 'policy.flushMethod'
    });
  }
  if (policy.wbinvdAbovePages !== null) {
    if (!x86) {
      throw new DomainError('INVALID_POLICY', 'WBINVD exists only on x86_64', { field: 'policy.wbinvdAbove' });
    }
    if (!Number.isSafeInteger(policy.wbinvdAbovePages) || policy.wbinvdAbovePages <= 0) {
      throw new DomainError('INVALID_POLICY', 'wbinvdAbove must be a positive byte threshold', { field: 'policy.wbinvdAbove' });
    }
  }
  return Object.freeze(policy);
}

/** W8 overrides keyed by canonical PCI address; none: no `devices` field at all. */
function deviceOverrides(input: PolicyInput['devices']): { devices?: Readonly<Record<string, DeviceOverride>> } {
  if (input === undefined) return {};
  const entries = Object.entries(input);
  if (entries.length > MAX_DEVICE_OVERRIDES) {
    throw new DomainError('INVALID_POLICY', `at most ${MAX_DEVICE_OVERRIDES} per-device overrides`, { field: 'policy.devices' });
  }
  if (entries.length === 0) return {};
  const devices: Record<string, DeviceOverride> = {};
  for (const [bdf, override] of entries) {
    let key: string;
    try {
      key = parsePciAddress(bdf);
    } catch {
      throw new DomainError('INVALID_PCI_ADDRESS', 'a per-device override is keyed by PCI address SSSS:BB:DD.F, e.g. 0000:00:02.0', { field: 'policy.devices', value: bdf });
    }
    if (key in devices) throw new DomainError('INVALID_POLICY', `device ${key} is named twice`, { field: 'policy.devices', value: bdf });
    if (!(DEVICE_ON_ENABLE as readonly string[]).includes(override.onEnable)) {
      throw new DomainError('INVALID_POLICY', 'a per-device onEnable is allow or deny', { field: `policy.devices.${bdf}.onEnable` });
    }
    devices[key] = Object.freeze({ onEnable: override.onEnable });
  }
  return { devices: Object.freeze(devices) };
}
