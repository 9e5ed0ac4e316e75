/**
 * The audit trail: every accepted change (VM, domain, device, reset, devctl decision, pins,
 * quirk list), who made it, the rules its decision named and its revision. Kept by the store
 * for AUDIT_RETENTION days and within AUDIT_MAX_MB; each page says since when it has them.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { HttpError } from '../errors.js';
import { AuditEntry } from '../../contract/audit.js';
import { problems } from '../../contract/common.js';
import { decodeCursor, encodeCursor } from '../wire.js';

export default function auditRoutes(app: FastifyInstance): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/v1/audit',
    {
      schema: {
        tags: ['audit'],
        summary: 'The audit trail of accepted changes (paged, oldest first)',
        description: 'Accepted changes, oldest first: who (the token), what (the command) and the rules that fired; by VM and time; `limit` per page, `nextCursor` to continue.',
        querystring: z.object({
          vmId: z.string().max(64).optional(),
          since: z.iso.datetime({ offset: true }).optional().describe('Only changes at or after this time'),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          cursor: z.string().max(200).optional()
        }),
        response: {
          200: z
            .object({
              items: z.array(AuditEntry),
              nextCursor: z.string().optional(),
              retention: z
                .object({ days: z.number(), keptSince: z.string().describe('Changes made before this time are no longer kept (past AUDIT_RETENTION, or removed to keep the trail within AUDIT_MAX_MB)') })
                .describe('What the trail no longer has')
            })
            .meta({ id: 'AuditPage' }),
          400: problems[400]
        }
      }
    },
    async (request) => {
      const q = request.query;
      const after = q.cursor === undefined ? 0 : Number(decodeCursor(q.cursor));
      if (!Number.isSafeInteger(after) || after < 0) throw new HttpError('INVALID_CURSOR', 'cursor is not one this service issued');
      const rows = await app.policy.audit({
        ...(q.vmId === undefined ? {} : { vmId: q.vmId }),
        ...(q.since === undefined ? {} : { since: Date.parse(q.since) }),
        afterSeq: after,
        limit: q.limit + 1
      });
      const shown = rows.slice(0, q.limit);
      const last = shown[shown.length - 1];
      return {
        items: shown.map((r) => {
          const { type, ...change } = r.command;
          return {
            revision: r.seq,
            at: new Date(r.at).toISOString(),
            actor: r.actor ?? 'anonymous',
            vmId: 'vmId' in r.command ? r.command.vmId : null,
            action: type,
            rules: [...(r.rules ?? [])],
            change: change
          };
        }),
        ...(rows.length > q.limit && last !== undefined ? { nextCursor: encodeCursor(String(last.seq)) } : {}),
        retention: { days: app.policy.auditBudget.retentionMs / 86_400_000, keptSince: new Date(app.policy.auditBudget.keptSince).toISOString() }
      };
    }
  );
}
