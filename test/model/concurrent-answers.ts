/**
 * What the concurrent-callers model's VMM (concurrent-host.ts) holds from the answers it got:
 * each answer as read off the wire, the flush it obliges its caller to perform, the gate its
 * change waits at (its own flush performed, every job of `flush.after` acknowledged), and the
 * VMM's view of each device (where its answers put it, what it still owes it).
 */
import { VmFunction, type MappedRange } from './concurrent-hardware.js';
import type { Action, DevSpec } from './concurrent-scenarios.js';
import { parseRanges, showRanges, type WireAnswer } from './concurrent-wire.js';
import type { Range } from './player/ranges.js';

/** An answer the VMM got, for the trace and the per-answer checks. */
export interface Answer {
  readonly index: number;
  readonly round: number;
  readonly caller: number;
  readonly what: string;
  readonly revision: number;
  readonly required: boolean;
  readonly ranges: readonly Range[];
  readonly jobId: string | undefined;
  readonly after: readonly string[];
  readonly when: string | undefined;
  readonly cause: string | undefined;
  readonly hardwareValue: number | undefined;
}

/** An answer's own flush, which the caller that got it performs later. */
export interface Obligation {
  readonly caller: number;
  readonly answer: number;
  readonly jobId: string | undefined;
  readonly ranges: readonly Range[];
  readonly truncated: boolean;
  readonly when: 'before-map' | 'after-unmap';
  performed: boolean;
  /** An unpin's pages, released once flushed. */
  readonly release: Pin | null;
}

/** What a change waits for before it takes effect. */
export interface Gate {
  /** The answer's own flush, performed first. */
  readonly own: Obligation | null;
  /** Jobs to be acknowledged first. */
  readonly after: readonly string[];
  /** The answer, for the trace. */
  readonly answer: number;
}

export type DevOp = { readonly kind: 'write'; readonly value: number; readonly gate: Gate } | { readonly kind: 'attach'; readonly dom: number; readonly gate: Gate };

/** A range the service accepted, as the VMM holds it. */
export interface Pin extends MappedRange {
  readonly iova: number;
  mapped: boolean;
  /** An unpin of it is in flight. */
  unpinning: boolean;
  /** Its answer's own flush (before-map) and what its mapping waits for. */
  own: Obligation | null;
  gate: Gate | null;
}

/** A PF of the VM (concurrent-hardware.ts), and the VMM's view of it. */
export class Dev extends VmFunction {
  /** The VMM's view: the domain and bit once every answer it holds has taken effect. */
  intendedDom: number | null = null;
  intendedBit: 0 | 1;
  /** What the VMM still has to do to the device, in answer order. */
  ops: DevOp[] = [];

  constructor(index: number, spec: DevSpec) {
    super(index, spec);
    this.intendedBit = this.bit;
  }
}

/** Reads an answer off the wire; returns it with its line of the trace and the rules of the contract it breaks by itself. */
export function readAnswer(body: WireAnswer, at: { readonly index: number; readonly round: number; readonly caller: number; readonly what: string }): { answer: Answer; line: string; breaks: string[] } {
  const f = body.flush;
  const { index, caller, what } = at;
  const answer: Answer = {
    ...at,
    revision: body.revision,
    required: f.required,
    ranges: f.required ? parseRanges(f.ranges) : [],
    jobId: f.jobId,
    after: f.after ?? [],
    when: f.when,
    cause: f.cause,
    hardwareValue: body.hardwareValue === undefined ? undefined : Number(body.hardwareValue)
  };
  const parts = [`  #${index} c${caller} ${what} -> rev ${answer.revision}`];
  if (body.decision !== undefined) parts.push(`${body.decision} hw=${body.hardwareValue}`);
  if (f.required) parts.push(`flush ${f.cause}/${f.when} ${showRanges(answer.ranges)} job ${f.jobId?.slice(0, 11)}`);
  if (answer.after.length > 0) parts.push(`after [${answer.after.map((id) => id.slice(0, 11)).join(' ')}]`);
  // The contract: a required flush is the answer's own job, with the right timing.
  const breaks: string[] = [];
  if (f.required && f.jobId === undefined) breaks.push(`#${index} ${what}: a required flush without a jobId`);
  if (!f.required && f.jobId !== undefined) breaks.push(`#${index} ${what}: no flush required but job ${f.jobId}`);
  if (f.required && f.rangesTruncated !== true && answer.ranges.length === 0) breaks.push(`#${index} ${what}: a required flush without ranges`);
  return { answer, line: parts.join(' '), breaks };
}

/**
 * Where the service placed an answer among the VM's: its revision (-1: refused). The operator's
 * answer carries a revision in its entry for the VM. Without one it decided nothing for the VM,
 * and its place among the others is unknown: a list that takes the flag away is handled first,
 * one that adds it last, which only makes the devices' truth less exposed for the answers around
 * it.
 */
export function decidedAt(r: { readonly action: Action; readonly status: number; readonly body: unknown }, vmId: string): number {
  if (r.status >= 300 || typeof r.body !== 'object' || r.body === null) return -1;
  if (r.action.t === 'quirks') {
    const entry = ((r.body as { vms?: { vmId: string; revision: number }[] }).vms ?? []).find((v) => v.vmId === vmId);
    return entry?.revision ?? (r.action.table === 0 ? -1 : Number.MAX_SAFE_INTEGER);
  }
  const rev = (r.body as { revision?: unknown }).revision;
  return typeof rev === 'number' ? rev : -1;
}
