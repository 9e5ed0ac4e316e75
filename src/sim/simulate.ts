/**
 * One simulation task: load a trace (reference name or JSON Lines text), replay it under one
 * policy mode. Runs in a worker thread (sim-worker.ts) or inline; the same input always gives the
 * same numbers.
 */
import { createHash } from 'node:crypto';
import { parseQuirkFile, type PolicyDefaults, type PolicyMode, type QuirkWire } from '../domain/index.js';
import { generateReferenceTrace, traceText, type ReferenceTraceName } from './reference-traces.js';
import { replay, type ModeResult } from './replay.js';
import { parseTrace, TraceError } from './trace.js';

export type TraceSource = { readonly reference: ReferenceTraceName } | { readonly text: string };

export interface TraceInfo {
  readonly name: string;
  readonly description: string | null;
  readonly events: number;
  /** Pinned and unpinned ranges with repeats expanded. */
  readonly ranges: number;
  /** SHA-256 of the JSON Lines text replayed. */
  readonly sha256: string;
}

export interface SimulateTask {
  readonly source: TraceSource;
  readonly mode: PolicyMode;
  /** The quirk table, as in the quirk file. */
  readonly quirks: readonly QuirkWire[];
  /** Policy defaults for what a trace's VMs leave unset (the mode is `mode`). */
  readonly defaults?: PolicyDefaults;
}

export type SimulateOutcome =
  | { readonly ok: true; readonly trace: TraceInfo; readonly result: ModeResult; readonly replayMs: number }
  | { readonly ok: false; readonly line: number; readonly detail: string };

export function simulateTask(task: SimulateTask): SimulateOutcome {
  const text = 'reference' in task.source ? traceText(generateReferenceTrace(task.source.reference)) : task.source.text;
  let trace;
  try {
    trace = parseTrace(text);
  } catch (err) {
    if (err instanceof TraceError) return { ok: false, line: err.line, detail: err.detail };
    throw err;
  }
  const quirks = parseQuirkFile({ quirks: task.quirks });
  const started = performance.now();
  const result = replay(trace, task.mode, { quirks, ...(task.defaults === undefined ? {} : { defaults: task.defaults }) });
  const replayMs = performance.now() - started;
  return {
    ok: true,
    trace: {
      name: trace.header?.name ?? 'uploaded',
      description: trace.header?.description ?? null,
      events: trace.events.length,
      ranges: trace.ranges,
      sha256: createHash('sha256').update(text).digest('hex')
    },
    result,
    replayMs
  };
}
