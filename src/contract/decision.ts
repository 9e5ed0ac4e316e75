import { z } from 'zod';
import { DEVCTL_VERDICTS } from '../domain/index.js';
import { Flush, Hex16Out, Reason } from './common.js';

/**
 * Answers list their required fields before their optional ones: the compiled serializers
 * (compiled-wire.ts) write required fields first, and the bytes must be the zod serializer's.
 */
export const requiredDecisionFields = {
  flush: Flush,
  reasons: z.array(Reason),
  kvmNoncoherentDma: z.boolean().describe('K1: KVM must honour guest WBINVD and PAT for this VM'),
  revision: z.number().int().describe('Revision of the VM after this change')
};

const devicesField = {
  devices: z
    .array(
      z.object({
        bdf: z.string(),
        decision: z.enum(['allow', 'deny']),
        hardwareValue: Hex16Out.describe('DEVCTL value to write to this device'),
        guestValue: Hex16Out.describe('DEVCTL value the guest reads back')
      })
    )
    .optional()
    .describe(
      'A policy, domain, device or quirk change that makes the policy deny a bit already set: the value to write to each such device of the VM. The exposure it causes ends once the VMM reports each device disabled (device PUT).'
    )
};

/** The fields of every decision answer, required ones first. */
export const decisionFields = { ...requiredDecisionFields, ...devicesField };

/** Every state-changing answer. */
export const Decision = z.object(decisionFields).meta({ id: 'Decision', description: 'A decision: the flush to perform first and the rules that fired' });

/** Device answers add the DEVCTL outcome when the VMM must write the bit (attach or reset). */
export const DevctlFields = {
  decision: z.enum(DEVCTL_VERDICTS).optional(),
  hardwareValue: Hex16Out.optional().describe('DEVCTL value to write to the device'),
  guestValue: Hex16Out.optional().describe('DEVCTL value the guest reads back')
};

export const DeviceDecision = z.object({ ...decisionFields, ...DevctlFields }).meta({ id: 'DeviceDecision' });

export const DevctlDecision = z
  .object({
    ...requiredDecisionFields,
    decision: z.enum(DEVCTL_VERDICTS),
    hardwareValue: Hex16Out,
    guestValue: Hex16Out,
    dryRun: z.boolean(),
    ...devicesField,
    failClosed: z.enum(['STORE_UNAVAILABLE']).optional().describe('Present when the state could not be vouched for and the answer failed closed')
  })
  .meta({ id: 'DevctlDecision', description: 'The answer to a trapped DEVCTL write' });
