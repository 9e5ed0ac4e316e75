import { z } from 'zod';
import { QUIRK_FLAGS } from '../domain/index.js';
import { Decision } from './decision.js';

export const QuirkWire = z
  .object({
    vendorId: z.string().regex(/^0x[0-9a-fA-F]{1,4}$/),
    deviceId: z.string().regex(/^0x[0-9a-fA-F]{1,4}$/),
    flags: z.array(z.enum(QUIRK_FLAGS)).min(1),
    deviceMask: z.string().regex(/^0x[0-9a-fA-F]{1,4}$/).optional(),
    note: z.string().max(500).optional(),
    source: z.string().max(500).optional()
  })
  .strict()
  .meta({ id: 'Quirk' });

export const QuirkList = z
  .object({ quirks: z.array(QuirkWire) })
  .strict()
  .meta({ id: 'QuirkList', examples: [{ quirks: [{ vendorId: '0x8086', deviceId: '0x9a49', flags: ['needs-nosnoop'] }] }] });

/** POST /v1/quirks: entries added to the list in force, or replacing its entries for the same devices. */
export const QuirkAdditions = z
  .object({
    quirks: z
      .array(QuirkWire)
      .min(1)
      .describe(
        'Each entry replaces the entry in force for the same devices (the same vendorId, deviceMask and deviceId under that mask, compared as numbers; deviceMask defaults to 0xffff) where it stood, or joins the end of the list'
      )
  })
  .strict()
  .meta({
    id: 'QuirkAdditions',
    examples: [{ quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'], note: 'no-snoops whatever its Enable No Snoop bit says' }] }]
  });

export const QuirkListAnswer = z
  .object({
    quirks: z.array(QuirkWire).describe('The quirk list in force'),
    configured: z
      .object({
        inForce: z.boolean().describe('False when the configured list differs from the one in force: it is not applied by a restart, only by PUT /v1/quirks'),
        quirks: z.array(QuirkWire)
      })
      .describe('The quirk list the server was started with (QUIRKS_FILE, or the shipped list)')
  })
  .meta({ id: 'QuirkListAnswer' });

export const PutQuirksAnswer = z
  .object({
    quirks: z.array(QuirkWire).describe('The quirk list the change put in force'),
    vms: z.array(z.object({ vmId: z.string(), ...Decision.shape })).describe('VMs whose domains the change exposed, with their replay flushes'),
    revision: z.number().int().optional().describe('The change\'s revision: `?minRevision=` with it reads any VM, on any replica, with this quirk list in force')
  })
  .meta({ id: 'PutQuirksAnswer' });
