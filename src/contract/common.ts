/**
 * Wire building blocks shared by every route. Addresses travel as hex strings (IOVAs use all 64
 * bits) or non-negative safe integers; handlers turn them into page numbers with the core's
 * parsers, which also check 4 KiB alignment.
 */
import { z } from 'zod';
import { FLUSH_CAUSES, ID_PATTERN, MEM_TYPES, PLANNED_METHODS, RULE_IDS } from '../domain/index.js';

export const HexAddress = z
  .union([z.string().max(20), z.number().int().nonnegative()])
  .meta({ id: 'HexAddress', description: 'Byte address or length: a hex string ("0x7f3a00000") or a non-negative safe integer; multiple of 4 KiB', examples: ['0x100000000'] });

/** Answers always use hex strings. */
export const HexOut = z.string().regex(/^0x[0-9a-f]+$/).meta({ id: 'Hex', description: 'Hex byte value', examples: ['0x200000000'] });

export const Hex16 = z
  .union([z.string().regex(/^0x[0-9a-fA-F]{1,4}$/), z.number().int().min(0).max(0xffff)])
  .meta({ id: 'Hex16', description: '16-bit value: a hex string ("0x8086") or an integer', examples: ['0x8086'] });

export const Hex16Out = z.string().regex(/^0x[0-9a-f]{4}$/);

export const MemType = z.enum(MEM_TYPES).meta({ id: 'MemType', description: 'Memory type of the host mapping' });

// The pattern is documented here and enforced by the domain's parser (INVALID_ID), so the error stays the domain's.
export const IdParam = z.string().max(64).meta({ pattern: ID_PATTERN.source, description: 'An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens' });

export const VmParams = z.object({ vmId: IdParam });
export const DomainParams = z.object({ vmId: IdParam, domainId: IdParam });
export const DeviceParams = z.object({ vmId: IdParam, bdf: z.string().max(16).describe('PCI address SSSS:BB:DD.F') });

export const FreshQuery = z.object({
  minRevision: z.coerce.number().int().min(0).optional().describe("Answer from the VM's state at least as fresh as the answer that gave this revision (any earlier answer's, possibly another replica's; revisions increase with each change of a VM)")
});

export const PageQuery = z.object({
  minRevision: FreshQuery.shape.minRevision,
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(200).optional()
});

export const Reason = z
  .object({ rule: z.enum(RULE_IDS), message: z.string() })
  .meta({ id: 'Reason', description: 'A decision rule that fired (SPEC section 3) and what it decided' });

export const HostRange = z.object({ hpa: HexOut, length: HexOut }).meta({ id: 'HostRange' });

export const FlushJobState = z
  .enum(['queued', 'running', 'pending', 'acknowledged', 'done', 'failed'])
  .meta({
    id: 'FlushJobState',
    description:
      '`queued` (its batching window is open), `running` (being planned), `pending` (planned; the VMM must flush and acknowledge it), `acknowledged` (the VMM did), `done` when a teardown covered it. Where acknowledgements are not required (FLUSH_ACKS=answered) a planned job is `done` (or `failed` when its planning failed).'
  });

export const Receipt = z
  .object({
    jobId: z.string(),
    state: FlushJobState,
    method: z.enum(PLANNED_METHODS),
    bytes: HexOut,
    ranges: z.number().int().describe('Coalesced host ranges'),
    lines: z.number().int().describe('64-byte cache lines'),
    fences: z.number().int(),
    chunks: z.number().int(),
    modeledCycles: z.number().int(),
    modeledNs: z.number().int(),
    jobBytes: HexOut.optional().describe("In an answer's receipt: bytes of the whole job, which may carry other decisions' flushes (the other figures are this answer's own)"),
    jobDecisions: z.number().int().optional().describe("In an answer's receipt: decisions the job carries")
  })
  .meta({ id: 'FlushReceipt', description: 'What the planned flush costs under the cost model' });

export const Flush = z
  .object({
    required: z.boolean(),
    bytes: HexOut,
    ranges: z.array(HostRange).describe('Host-physical ranges to flush, sorted and coalesced; at most 10,000 are listed'),
    rangeCount: z.number().int().describe('How many ranges the flush has'),
    rangesTruncated: z.boolean().describe('True when not every range is listed here: page them with GET /v1/flush-jobs/{jobId}/ranges'),
    cause: z.enum(FLUSH_CAUSES).optional(),
    when: z
      .enum(['before-map', 'after-unmap'])
      .optional()
      .describe(
        'When to flush: `before-map` (pins, replays: flush, then the change takes effect) or `after-unmap` (unpins, teardown, domain removal: unmap from the IOMMU, flush, then release the pages)'
      ),
    jobId: z.string().optional().describe('The flush job that carries it (GET /v1/flush-jobs/{jobId}); the VMM acknowledges it with POST /v1/flush-jobs/{jobId}/ack once flushed'),
    after: z
      .array(z.string())
      .optional()
      .describe(
        "Outstanding flush jobs of this VM (replays not acknowledged yet) that this change depends on: perform the change only once each is acknowledged. With ?wait=true the change waits for them instead and this is absent"
      ),
    receipt: Receipt.optional().describe('With ?wait=true: the finished job\'s receipt')
  })
  .meta({ id: 'Flush', description: 'What must be flushed, and when relative to the change (`when`)' });

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    code: z.string().describe('Stable machine-readable error code'),
    requestId: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    details: z.record(z.string(), z.unknown()).optional()
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details (application/problem+json)' });

export function page<T extends z.ZodType>(item: T, id: string) {
  return z.object({ items: z.array(item), nextCursor: z.string().optional() }).meta({ id });
}

/** The problem responses every /v1 route may give. */
export const problems = {
  400: Problem,
  404: Problem,
  409: Problem,
  413: Problem
} as const;
