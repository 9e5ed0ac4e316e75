/**
 * Reading a trace: JSON Lines text parsed line by line against the written format (trace-line)
 * into the events the simulator replays (trace-event). A trace that does not parse is refused
 * whole, naming its first bad line; the limits bound the work one simulation can ask for.
 */
import type { z } from 'zod';
import { CodedError, DomainError } from '../domain/index.js';
import { toEvent, type TraceEvent } from './trace-event.js';
import { TraceHeader, TraceLine } from './trace-line.js';

export { toEvent, type Run, type TraceEvent } from './trace-event.js';
export { TRACE_VERSION, TraceHeader, TraceLine, TracePolicy } from './trace-line.js';

export interface Trace {
  readonly header: TraceHeader | null;
  readonly events: readonly TraceEvent[];
  /** Pinned and unpinned ranges in all, repeats expanded. */
  readonly ranges: number;
}

/** A trace that does not parse: the line (1-based) and what is wrong with it. */
export class TraceError extends CodedError<'INVALID_TRACE'> {
  override readonly name = 'TraceError';

  constructor(
    readonly line: number,
    readonly detail: string
  ) {
    super('INVALID_TRACE', `trace line ${line}: ${detail}`, { details: { line } });
  }
}

export const MAX_TRACE_EVENTS = 2_000_000;
/** Pinned and unpinned ranges in all, repeats expanded: bounds the work one simulation can ask for. */
export const MAX_TRACE_RANGES = 4_194_304;

/** Parses JSON Lines text; blank lines are skipped. Throws TraceError naming the first bad line. */
export function parseTrace(text: string): Trace {
  let header: TraceHeader | null = null;
  const events: TraceEvent[] = [];
  let ranges = 0;
  let lineNo = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const raw = text.slice(start, end).trim();
    start = end + 1;
    lineNo++;
    if (raw === '') continue;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new TraceError(lineNo, 'not a JSON object');
    }
    if (events.length === 0 && header === null && typeof json === 'object' && json !== null && (json as { t?: unknown }).t === 'trace') {
      const parsed = TraceHeader.safeParse(json);
      if (!parsed.success) throw new TraceError(lineNo, describe(parsed.error));
      header = parsed.data;
      continue;
    }
    const parsed = TraceLine.safeParse(json);
    if (!parsed.success) throw new TraceError(lineNo, describe(parsed.error));
    if (events.length >= MAX_TRACE_EVENTS) throw new TraceError(lineNo, `a trace holds at most ${MAX_TRACE_EVENTS} events`);
    try {
      const event = toEvent(parsed.data);
      if (event.t === 'pin' || event.t === 'unpin') ranges += event.run.count;
      if (ranges > MAX_TRACE_RANGES) throw new TraceError(lineNo, `a trace pins and unpins at most ${MAX_TRACE_RANGES.toLocaleString('en-US')} ranges in all`);
      events.push(event);
    } catch (err) {
      if (err instanceof DomainError) throw new TraceError(lineNo, err.message);
      throw err;
    }
  }
  if (events.length === 0) throw new TraceError(lineNo, 'the trace has no events');
  return { header, events, ranges };
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'invalid event';
  const path = issue.path.join('.');
  return path === '' ? issue.message : `${path}: ${issue.message}`;
}
