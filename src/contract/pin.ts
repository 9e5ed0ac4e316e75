import { z } from 'zod';
import { HexAddress, HexOut, MemType, Reason } from './common.js';
import { Decision } from './decision.js';

export const PinRange = z
  .object({
    iova: HexAddress,
    hpa: HexAddress,
    length: HexAddress,
    memType: MemType.optional(),
    mmio: z.boolean().optional(),
    domains: z.array(z.string().max(64)).optional().describe('Domains the range maps into; absent: every domain of the VM')
  })
  .strict()
  .meta({ id: 'PinRange' });

export const IovaRange = z.object({ iova: HexAddress, length: HexAddress }).strict().meta({ id: 'IovaRange' });

/** One range, or a batch under `ranges`. */
export const PinBody = z
  .union([PinRange, z.object({ ranges: z.array(PinRange).min(1) }).strict()])
  .meta({ id: 'PinRequest', examples: [{ iova: '0x0', hpa: '0x100000000', length: '0x200000000' }] });

export const UnpinBody = z
  .union([IovaRange, z.object({ ranges: z.array(IovaRange).min(1) }).strict()])
  .meta({ id: 'UnpinRequest', examples: [{ iova: '0x0', length: '0x200000000' }] });

export const WaitQuery = z.object({ wait: z.enum(['true', 'false']).optional().describe('Wait for the flush job and answer with its receipt') });

export const PinnedRange = z
  .object({
    iova: HexOut,
    length: HexOut,
    hpa: HexOut,
    memType: MemType,
    mmio: z.boolean(),
    flushOnUnpin: z.boolean(),
    domains: z.array(z.string()).nullable()
  })
  .meta({ id: 'PinnedRange' });

export const FlushQueryRange = z
  .object({
    iova: HexAddress,
    length: HexAddress,
    hpa: HexAddress.optional(),
    memType: MemType.optional(),
    mmio: z.boolean().optional(),
    domains: z.array(z.string().max(64)).optional()
  })
  .strict();

export const FlushQueryBody = z
  .object({ op: z.enum(['map', 'unmap']), ranges: z.array(FlushQueryRange).min(1) })
  .strict()
  .meta({ id: 'FlushQuery', examples: [{ op: 'map', ranges: [{ iova: '0x0', length: '0x1000' }] }] });

export const FlushQueryAnswer = z
  .object({
    op: z.enum(['map', 'unmap']),
    flush: Decision.shape.flush,
    reasons: z.array(Reason),
    kvmNoncoherentDma: z.boolean(),
    results: z.array(z.object({ iova: HexOut, length: HexOut, required: z.boolean(), rule: Reason.shape.rule })),
    failClosed: z.enum(['STORE_UNAVAILABLE']).optional().describe('Present when the state could not be vouched for and the answer failed closed')
  })
  .meta({ id: 'FlushQueryAnswer', description: 'Read-only: must the caller flush for this map or unmap?' });
