/**
 * The data of each kind of event on GET /v1/vms/{vmId}/events (Server-Sent Events). An event is
 * an `id:` line, an `event:` line naming its kind and one `data:` line of JSON; the JSON is
 * described here per kind. The component ids (DecisionEvent, PolicyEvent, ...) are part of the
 * contract: typed clients name their event types after them.
 */
import { z } from 'zod';
import type { Command } from '../domain/index.js';
import { decisionFields, DevctlFields } from './decision.js';
import { FlushJob } from './flush-job.js';

type DecisionCommand = Exclude<Command['type'], 'put-vm' | 'delete-vm'>;

/** The commands a `decision` event can name: every change of one VM but its creation or policy (`policy`) and its deletion (`deleted`). */
export const DECISION_COMMANDS = ['put-domain', 'delete-domain', 'put-device', 'delete-device', 'reset-device', 'pin', 'unpin', 'devctl', 'put-quirks'] as const satisfies readonly DecisionCommand[];

/** A command type the core gains and this list lacks fails to compile here. */
export type UnlistedDecisionCommand = Exclude<DecisionCommand, (typeof DECISION_COMMANDS)[number]>;
export const DECISION_COMMANDS_COMPLETE: [UnlistedDecisionCommand] extends [never] ? true : never = true;

const vmId = z.string().describe('The VM the event is about');
const actor = z.string().describe('Who made the change: the token id, or "anonymous" without a token file (a VMM tells its own changes from others by it and by `revision`)');

export const DecisionEvent = z
  .object({ vmId, command: z.enum(DECISION_COMMANDS).describe('The change, as the route that made it'), actor, ...decisionFields, ...DevctlFields })
  .meta({
    id: 'DecisionEvent',
    title: 'event: decision',
    description: "The data of a `decision` event: a change to the VM, whoever made it (another replica's included), with its decision as the change answered it: the flush, when to perform it, the jobs it waits for (`flush.after`) and DEVCTL values to write"
  });

export const PolicyEvent = z
  .object({ vmId, actor, ...decisionFields })
  .meta({
    id: 'PolicyEvent',
    title: 'event: policy',
    description: "The data of a `policy` event: the VM's policy was replaced (PUT /v1/vms/{vmId}), with the decision it caused"
  });

export const DeletedEvent = z
  .object({ vmId, actor, ...decisionFields })
  .meta({
    id: 'DeletedEvent',
    title: 'event: deleted',
    description: 'The data of a `deleted` event: the VM was deleted, with its teardown decision (the flush of what was still pinned); the stream stays open in case the VM is created again'
  });

// An alias (a $ref to FlushJob), so that the job has one schema.
export const FlushJobEvent = z
  .lazy(() => FlushJob)
  .meta({
    id: 'FlushJobEvent',
    title: 'event: flush-job',
    description: 'The data of a `flush-job` event: one of the VM\'s flush jobs as GET /v1/flush-jobs/{jobId} answers it, once planned (`pending`: the VMM flushes and acknowledges it; `done` or `failed` where acknowledgements are not required) and once acknowledged'
  });

const reason = z.string().describe('Why, for a person');

export const ResetEvent = z
  .object({ vmId, reason })
  .meta({
    id: 'ResetEvent',
    title: 'event: reset',
    description: 'The data of a `reset` event: the events after the `Last-Event-ID` sent are no longer held, or it came from an earlier start of the service or another replica: re-read the VM (GET /v1/vms/{vmId}) and carry on from the events that follow'
  });

export const DroppedEvent = z
  .object({ vmId, reason })
  .meta({
    id: 'DroppedEvent',
    title: 'event: dropped',
    description: 'The data of a `dropped` event (it has no id): the subscriber fell more than 4 MiB behind and the stream ends; reconnect with the last `Last-Event-ID` read to resume'
  });

/** Each kind of event (the `event:` line) and the schema of its data, in the order the document lists them. */
export const EVENT_DATA = {
  decision: DecisionEvent,
  policy: PolicyEvent,
  deleted: DeletedEvent,
  'flush-job': FlushJobEvent,
  reset: ResetEvent,
  dropped: DroppedEvent
} as const;

export type EventKind = keyof typeof EVENT_DATA;
export const EVENT_KINDS = Object.keys(EVENT_DATA) as EventKind[];

/** How the stream is framed, for the document: SSE has no item schema before OpenAPI 3.2. */
export const SSE_FRAMING =
  'Server-Sent Events (text/event-stream), not one JSON document: each event is an `id:` line (absent on `dropped`), an `event:` line naming its kind and one `data:` line of JSON, then a blank line; lines starting with `:` are comments (keep-alives). The data of each kind: `decision` DecisionEvent, `policy` PolicyEvent, `deleted` DeletedEvent, `flush-job` FlushJobEvent (a FlushJob), `reset` ResetEvent, `dropped` DroppedEvent. This schema is the data of one event; `x-itemSchema` describes the whole event per kind, as OpenAPI 3.2\'s `itemSchema` does.';

/** The data line of any event: one of the kinds' schemas (which one, the `event:` line says). */
export const EventData = z.union([DecisionEvent, PolicyEvent, DeletedEvent, FlushJobEvent, ResetEvent, DroppedEvent]).describe(SSE_FRAMING);
