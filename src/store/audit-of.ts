import type { Command } from '../domain/index.js';

/** Ranges a pin or unpin batch lists in the audit trail; a larger batch is summarised. */
export const AUDIT_RANGES = 16;

/**
 * The command as the audit trail keeps it: whole, except that a pin or unpin batch of more than
 * AUDIT_RANGES ranges keeps its count, its pages and its IOVA span (the ranges themselves are in
 * the state while pinned), so the trail grows with the changes, not with the ranges they carry.
 */
export function auditOf(command: Command): Command {
  if ((command.type !== 'pin' && command.type !== 'unpin') || command.ranges.length <= AUDIT_RANGES) return command;
  let pages = 0;
  let first = Number.POSITIVE_INFINITY;
  let end = 0;
  for (const r of command.ranges) {
    pages += r.pages;
    if (r.iova < first) first = r.iova;
    if (r.iova + r.pages > end) end = r.iova + r.pages;
  }
  return { type: command.type, vmId: command.vmId, summary: { ranges: command.ranges.length, pages, iovaFrom: first, iovaTo: end } } as unknown as Command;
}
