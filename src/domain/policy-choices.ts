/**
 * The policy choices a caller makes, as the core names them. The API's VM policy and a
 * simulation trace's both take their fields from here, so a new choice is added once.
 */
import { z } from 'zod';
import { FLUSH_METHODS, ON_ENABLE, POLICY_MODES } from './policy.js';

export const POLICY_CHOICES = {
  mode: z.enum(POLICY_MODES).optional(),
  onEnable: z.enum(ON_ENABLE).optional(),
  exemptNeedsNoSnoop: z.boolean().optional(),
  flushMethod: z.enum(FLUSH_METHODS).optional()
};
