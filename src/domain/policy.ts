/**
 * Per-VM policy (SPEC section 4). A VM's policy is the server default overlaid with what the VM
 * was created with; `resolvePolicy` validates the combination for the VM's architecture.
 */
import { DomainError } from './errors.js';

export const ARCHES = ['x86_64', 'aarch64'] as const;
export type Arch = (typeof ARCHES)[number];

export const POLICY_MODES = ['pessimistic', 'trap', 'virtualize-zero'] as const;
export type PolicyMode = (typeof POLICY_MODES)[number];

export const ON_ENABLE = ['allow', 'deny', 'allow-needs-nosnoop'] as const;
export type OnEnable = (typeof ON_ENABLE)[number];

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
    wbinvdAbovePages
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
