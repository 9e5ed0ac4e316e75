/**
 * The policy choices a caller makes, as the core names them. The API's VM policy and a
 * simulation trace's both take their fields from here, so a new choice is added once.
 */
import { z } from 'zod';
import { DEVICE_ON_ENABLE, FLUSH_METHODS, MAX_DEVICE_OVERRIDES, ON_ENABLE, POLICY_MODES } from './policy.js';

export const POLICY_CHOICES = {
  mode: z.enum(POLICY_MODES).optional(),
  onEnable: z.enum(ON_ENABLE).optional(),
  exemptNeedsNoSnoop: z.boolean().optional(),
  flushMethod: z.enum(FLUSH_METHODS).optional(),
  devices: z
    .record(z.string().max(16), z.strictObject({ onEnable: z.enum(DEVICE_ON_ENABLE) }))
    .refine((d) => Object.keys(d).length <= MAX_DEVICE_OVERRIDES, `at most ${MAX_DEVICE_OVERRIDES} per-device overrides`)
    .optional()
    .describe(
      'W8: per-device overrides by PCI address. `onEnable` decides that device\'s trapped enables ahead of the mode (W3, W4): `allow` lets it set the bit (replay first), `deny` keeps the bit 0 even for an exempted needs-nosnoop device. W1 and W7 still apply; pessimistic ignores it'
    )
};
