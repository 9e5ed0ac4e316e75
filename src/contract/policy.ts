import { z } from 'zod';
import { FLUSH_METHODS, ON_ENABLE, POLICY_MODES } from '../domain/index.js';

/** The server's policy defaults and the choices each policy field allows (GET /v1/policy). */
export const PolicyDefaults = z
  .object({
    defaults: z.object({ mode: z.enum(POLICY_MODES), onEnable: z.enum(ON_ENABLE), exemptNeedsNoSnoop: z.boolean() }),
    modes: z.array(z.enum(POLICY_MODES)),
    onEnable: z.array(z.enum(ON_ENABLE)),
    flushMethods: z.object({ x86_64: z.array(z.enum(FLUSH_METHODS)), aarch64: z.array(z.enum(FLUSH_METHODS)) }),
    batchLimit: z.number().int()
  })
  .meta({ id: 'PolicyDefaults' });
