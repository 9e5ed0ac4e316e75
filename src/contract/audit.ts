import { z } from 'zod';

/** One accepted change of the audit trail. */
export const AuditEntry = z
  .object({
    revision: z.number().int().describe('Global sequence number of the change'),
    at: z.string(),
    actor: z.string().describe('Token id, or "anonymous" without tokens'),
    vmId: z.string().nullable(),
    action: z.string().describe('The command: put-vm, pin, devctl, put-quirks, ...'),
    rules: z.array(z.string()).describe('Rule ids the decision named'),
    change: z.record(z.string(), z.unknown()).describe('The command as stored (addresses in 4 KiB pages)')
  })
  .meta({ id: 'AuditEntry' });
