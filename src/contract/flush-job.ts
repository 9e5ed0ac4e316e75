import { z } from 'zod';
import { ARCHES, FLUSH_CAUSES } from '../domain/index.js';
import { FlushJobState, HexOut, Receipt } from './common.js';

/** A flush job as GET /v1/flush-jobs/{jobId} answers it. */
export const FlushJob = z
  .object({
    id: z.string(),
    vmId: z.string(),
    arch: z.enum(ARCHES),
    cause: z.enum(FLUSH_CAUSES),
    state: FlushJobState,
    decisions: z.number().int().describe("Answers whose flush this job is: always 1 (a job is one answer's own flush)"),
    requestedBytes: HexOut.describe('Bytes requested by those decisions, before coalescing'),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    receipt: Receipt.nullable(),
    error: z.string().nullable(),
    acknowledgedAt: z.string().nullable().describe('When the VMM acknowledged the flush'),
    batch: z
      .object({
        id: z.string().describe('The batch this flush was planned and priced in, with the flushes of other answers of its window'),
        decisions: z.number().int().describe('Answers whose flushes the batch planned together'),
        bytes: HexOut.describe('Bytes of the whole batch, coalesced')
      })
      .nullable()
      .describe('The batch it was planned in (null until planned). An acknowledgement covers this job only, never the batch.'),
    report: z
      .object({ flushedBytes: HexOut.optional(), durationNs: z.number().int().optional() })
      .nullable()
      .describe('What the VMM reported with its acknowledgement')
  })
  .meta({ id: 'FlushJob' });
