import { z } from 'zod';
import { DEFAULT_POLICY, FLUSH_METHODS, ON_ENABLE, POLICY_MODES, resolvePolicy, type Arch, type FlushMethod } from '../domain/index.js';

/**
 * The flush methods a VM of `arch` may use: those the core's policy check accepts there (one
 * check, the core's, so the document cannot offer x86's instructions to an aarch64 VM).
 */
export function flushMethodsOf(arch: Arch): FlushMethod[] {
  return FLUSH_METHODS.filter((flushMethod) => {
    try {
      resolvePolicy(arch, DEFAULT_POLICY, { flushMethod });
      return true;
    } catch {
      return false;
    }
  });
}

/** What a default server answers (the batch limit is BATCH_LIMIT's default); a test compares them. */
const DEFAULT_ANSWER = {
  defaults: { ...DEFAULT_POLICY },
  modes: [...POLICY_MODES],
  onEnable: [...ON_ENABLE],
  flushMethods: { x86_64: flushMethodsOf('x86_64'), aarch64: flushMethodsOf('aarch64') },
  batchLimit: 10_000
};

const methodsOf = (arch: Arch) => z.array(z.enum(flushMethodsOf(arch) as [FlushMethod, ...FlushMethod[]])).describe(`Flush methods the policy of a VM on ${arch} may name`);

/** The server's policy defaults and the choices each policy field allows (GET /v1/policy). */
export const PolicyDefaults = z
  .object({
    defaults: z.object({ mode: z.enum(POLICY_MODES), onEnable: z.enum(ON_ENABLE), exemptNeedsNoSnoop: z.boolean() }),
    modes: z.array(z.enum(POLICY_MODES)),
    onEnable: z.array(z.enum(ON_ENABLE)),
    flushMethods: z.object({ x86_64: methodsOf('x86_64'), aarch64: methodsOf('aarch64') }),
    batchLimit: z.number().int()
  })
  .meta({ id: 'PolicyDefaults', examples: [DEFAULT_ANSWER] });
