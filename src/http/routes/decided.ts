/**
 * Turns a command's result into the answer, and writes the one structured log line per decision
 * that an operator greps for: VM, command, rules, flush bytes.
 */
import type { FastifyRequest } from 'fastify';
import { formatPages, type CommandResult, type VmId } from '../../domain/index.js';
import { decisionWire } from '../wire.js';

export function decided(request: FastifyRequest, vmId: VmId, command: string, result: CommandResult) {
  const vm = result.state.vms.get(vmId);
  const revision = vm?.revision ?? result.revision ?? 0;
  const d = result.decision;
  request.log.info(
    {
      decision: command,
      vmId,
      rules: [...new Set(d.reasons.map((r) => r.rule))],
      flushRequired: d.flush.required,
      flushBytes: formatPages(d.flush.pages),
      flushRanges: d.flush.ranges.length,
      kvmNoncoherentDma: d.kvmNoncoherentDma,
      ...(d.devctl === undefined ? {} : { devctl: d.devctl.decision }),
      revision
    },
    'decision'
  );
  return decisionWire(d, revision);
}
