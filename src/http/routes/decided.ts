/**
 * Turns a command's result into the answer, and gives the request's log line the decision's
 * fields an operator greps for: VM, command, rules, flush bytes, job.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { flushRangeCount, formatPages, type VmId } from '../../domain/index.js';
import type { Applied, FlushJob } from '../../service/policy-service.js';
import { DecisionReply, serializeDecisionReply } from '../decision-bytes.js';
import { sendJson } from '../json-bytes.js';
import { decisionWire } from '../wire.js';

/** A job's receipt: its own flush, with the batch it was planned in (`jobBytes`, `jobDecisions`: the batch's). */
export function receiptWire(job: FlushJob, withBatch = false) {
  const r = job.receipt;
  return {
    jobId: job.id,
    state: job.state,
    method: r?.method ?? job.method,
    bytes: formatPages(r?.pages ?? 0),
    ranges: r?.ranges ?? 0,
    lines: r?.lines ?? 0,
    fences: r?.fences ?? 0,
    chunks: r?.chunks ?? 0,
    modeledCycles: r?.modeledCycles ?? 0,
    modeledNs: r?.modeledNs ?? 0,
    ...(withBatch ? { jobBytes: formatPages(job.batch?.pages ?? r?.pages ?? 0), jobDecisions: job.batch?.decisions ?? 1 } : {})
  };
}

/** Pins and unpins: hot routes, whose decision line is written only at debug or for an admin token. */
const HOT_COMMANDS = new Set(['pin', 'unpin']);

/** Whether the request's log line will be written, so that its decision fields are worth building. */
function logsDecision(request: FastifyRequest, command: string): boolean {
  if (!HOT_COMMANDS.has(command) || request.principal?.scopes.has('admin') === true) return writes(request.log, 'info');
  return writes(request.log, 'debug');
}

function writes(log: FastifyRequest['log'], level: 'info' | 'debug'): boolean {
  return (log as Partial<Pick<Logger, 'isLevelEnabled'>>).isLevelEnabled?.(level) ?? false;
}

/**
 * Settles the change, counts it for the VM's activity summary (log-summary.ts) and, when the
 * request's log line will be written, joins its decision to it (plugins/access-log.ts).
 */
async function settle(app: FastifyInstance, request: FastifyRequest, vmId: VmId, command: string, applied: Applied | Promise<Applied>): Promise<{ result: Applied; revision: number }> {
  const result = await applied;
  const revision = result.revision ?? app.policy.revisionOf(vmId);
  const d = result.decision;
  if (command === 'pin' || command === 'unpin') app.activity.changed(vmId, command === 'unpin');
  if (d.flush.required) app.activity.flushed(vmId, d.flush.pages, flushRangeCount(d.flush), result.jobId);
  if (command === 'delete-vm') app.activity.forget(vmId);
  if (!logsDecision(request, command)) return { result, revision };
  request.decisionLog = {
    decision: command,
    vmId,
    rules: [...new Set(d.reasons.map((r) => r.rule))],
    flushRequired: d.flush.required,
    flushBytes: formatPages(d.flush.pages),
    flushRanges: flushRangeCount(d.flush),
    kvmNoncoherentDma: d.kvmNoncoherentDma,
    ...(d.devctl === undefined ? {} : { devctl: d.devctl.decision }),
    ...(result.jobId === undefined ? {} : { jobId: result.jobId }),
    ...(result.after === undefined ? {} : { after: result.after }),
    revision
  };
  return { result, revision };
}

/** The answer as objects; with `wait`, once its flush job is settled, with the receipt. */
async function answerOf(app: FastifyInstance, result: Applied, revision: number, wait: boolean) {
  const d = result.decision;
  const answer = decisionWire(d, revision, { jobId: result.jobId, after: result.after });
  if (result.jobId === undefined || !wait) return answer;
  const job = await app.policy.settledFlushJob(result.jobId);
  if (job === undefined) return answer;
  return { ...answer, flush: { ...answer.flush, receipt: receiptWire(job, true) } };
}

export async function decided(app: FastifyInstance, request: FastifyRequest, vmId: VmId, command: string, applied: Applied | Promise<Applied>, wait = false) {
  const { result, revision } = await settle(app, request, vmId, command, applied);
  return await answerOf(app, result, revision, wait);
}

/**
 * `decided` for the routes answering the Decision schema with the answer as it is (pins,
 * unpins): its JSON bytes (decision-bytes.ts) are sent on `reply`, and the handler returns
 * nothing; an answer that waits for its flush job's receipt is returned as objects instead.
 */
export async function sendDecided(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, vmId: VmId, command: string, applied: Applied | Promise<Applied>, wait = false) {
  const { result, revision } = await settle(app, request, vmId, command, applied);
  if (result.jobId !== undefined && wait) return await answerOf(app, result, revision, wait);
  sendJson(reply, serializeDecisionReply(new DecisionReply(result.decision, revision, result.jobId, result.after)));
  await reply;
  return undefined;
}

/**
 * `?wait=true` on a change other than a pin or unpin: before it is decided, wait for the VM's
 * outstanding replays to be acknowledged (FLUSH_ACK_TIMEOUT: 503, nothing changed), so that the
 * answer depends on none.
 */
export async function inOrder(app: FastifyInstance, vmId: VmId, wait: boolean, write?: Parameters<FastifyInstance['policy']['awaitDependencies']>[2]): Promise<void> {
  if (wait) await app.policy.awaitDependencies(vmId, app.limits.flushAckTimeoutMs, write);
}

/** `?wait=true` */
export function wants(query: { wait?: 'true' | 'false' | undefined }): boolean {
  return query.wait === 'true';
}
