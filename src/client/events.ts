/**
 * The events of a VM's stream (GET /v1/vms/{vmId}/events, Server-Sent Events), one type per
 * kind, so that `switch (event.type)` narrows `data`. Each kind's data is what the service
 * writes on its `data:` line: a decision's answer as the change was answered (the `Decision`
 * schema, with the devctl verdict when the change was one) and who made it, a flush job as
 * GET /v1/flush-jobs/{jobId} answers it, or why the stream was reset or dropped.
 */
import type { components } from './api.js';

type Schemas = components['schemas'];

/** A decision as the change answered it; a devctl write's also carries its verdict and values. */
export type EventDecision = Schemas['Decision'] & Partial<Pick<Schemas['DevctlDecision'], 'decision' | 'hardwareValue' | 'guestValue'>>;

/** `decision`: a change to the VM, whoever made it (`actor`; `revision` tells a VMM its own). */
export type DecisionEventData = EventDecision & {
  readonly vmId: string;
  /** The change: put-vm, put-domain, put-device, pin, unpin, devctl, reset-device, put-quirks, … */
  readonly command: string;
  readonly actor: string;
};
/** `policy`: the VM's policy replaced, with the decision it caused. */
export type PolicyEventData = EventDecision & { readonly vmId: string; readonly actor: string };
/** `deleted`: the VM torn down, with its teardown flush. */
export type DeletedEventData = EventDecision & { readonly vmId: string; readonly actor: string };
/** `flush-job`: one of the VM's flush jobs planned (`pending`: the VMM's to flush and acknowledge) or acknowledged. */
export type FlushJobEventData = Schemas['FlushJob'];
/** `reset`: events asked for are no longer held, or come from another start or replica: re-read the VM. */
export interface ResetEventData {
  readonly vmId: string;
  readonly reason: string;
}
/** `dropped`: the subscriber fell too far behind and the stream ends; it resumes from the last id read. */
export interface DroppedEventData {
  readonly vmId: string;
  readonly reason: string;
}

interface Event<K extends string, D> {
  /** Send it back as `Last-Event-ID` to resume after it. */
  readonly id: string;
  readonly type: K;
  readonly data: D;
}

export type DecisionEvent = Event<'decision', DecisionEventData>;
export type PolicyEvent = Event<'policy', PolicyEventData>;
export type DeletedEvent = Event<'deleted', DeletedEventData>;
export type FlushJobEvent = Event<'flush-job', FlushJobEventData>;
export type ResetEvent = Event<'reset', ResetEventData>;
/** The one event without an id: it is not part of the VM's history, only of this connection's. */
export interface DroppedEvent {
  readonly id?: undefined;
  readonly type: 'dropped';
  readonly data: DroppedEventData;
}

/** One event of a VM's stream: narrow it by `type`. */
export type VmEventMessage = DecisionEvent | PolicyEvent | DeletedEvent | FlushJobEvent | ResetEvent | DroppedEvent;
export type VmEventType = VmEventMessage['type'];

const KINDS: ReadonlySet<string> = new Set<VmEventType>(['decision', 'policy', 'deleted', 'flush-job', 'reset', 'dropped']);

/** One SSE frame as read: a comment (a heartbeat) has no data. */
export interface SseFrame {
  readonly id: string | undefined;
  readonly type: string;
  readonly data: string | undefined;
}

/** Parses one SSE frame (the lines before a blank line). */
export function parseSse(frame: string): SseFrame {
  let id: string | undefined;
  let type = 'message';
  const data: string[] = [];
  for (const line of frame.split('\n')) {
    if (line.startsWith(':') || line === '') continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1));
    if (field === 'id') id = value;
    else if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  return { id, type, data: data.length === 0 ? undefined : data.join('\n') };
}

/**
 * The typed event of a frame; undefined for a heartbeat, and for a kind this client does not know
 * (a newer service's): it has nothing to act on, and its id still counts for resuming.
 */
export function toEvent(frame: SseFrame): VmEventMessage | undefined {
  if (frame.data === undefined || !KINDS.has(frame.type)) return undefined;
  // The service writes each kind's data as documented; the wire is trusted as the types say.
  return { ...(frame.id === undefined ? {} : { id: frame.id }), type: frame.type, data: JSON.parse(frame.data) as unknown } as VmEventMessage;
}
