/**
 * Decision answers as bytes: a batch of 10,000 ranges flushed is answered with its 10,000 flush
 * ranges written from the decision's pairs, without a wire object or string per range. Everything
 * else in the answer is written by the serializer compiled from its schema (compiled-wire.ts),
 * given a marker range where the listed ranges go; the ranges are then written in the marker's
 * place, each as that serializer writes a range (its JSON cut once from what it writes for the
 * marker). A property test compares the bytes with the zod serializer's.
 */
import { flushPairs, flushRangeCount, type Decision } from '../domain/index.js';
import { Decision as DecisionSchema } from '../contract/decision.js';
import { compileSerializer } from './compiled-wire.js';
import { bytes, cutAt, HOLE, HOLE_CHARS, PAGES_MAX_CHARS, put, putPages, spliced } from './json-bytes.js';
import { decisionWire, LISTED_RANGES_MAX, type HostRangeWire } from './wire.js';

/** A listed flush range as the answer's serializer writes it, its values the marker's holes. */
const RANGE_MARKER: HostRangeWire = { hpa: HOLE, length: HOLE };
export const RANGE_MARKER_JSON = compileSerializer(DecisionSchema.shape.flush.shape.ranges.element)(RANGE_MARKER);
const [RANGE_HPA, RANGE_LENGTH, RANGE_CLOSE] = cutAt(RANGE_MARKER_JSON, HOLE_CHARS, 3).map(bytes) as [Buffer, Buffer, Buffer];
/** The most bytes one listed range takes, with the comma before it. */
const RANGE_MAX_BYTES = 1 + RANGE_HPA.length + PAGES_MAX_CHARS + RANGE_LENGTH.length + PAGES_MAX_CHARS + RANGE_CLOSE.length;

/** The listed ranges of an answer written with `markedRanges()`: at most LISTED_RANGES_MAX of the decision's (hpa, pages) pairs. */
export class ListedRanges {
  readonly pairs: Float64Array;
  readonly listed: number;

  constructor(decision: Decision) {
    this.pairs = flushPairs(decision.flush);
    this.listed = Math.min(flushRangeCount(decision.flush), LISTED_RANGES_MAX);
  }

  /** The most bytes `put` writes. */
  get maxBytes(): number {
    return this.listed * RANGE_MAX_BYTES;
  }

  /** Writes the ranges, comma-separated, as the serializer writes HostRange objects. */
  put(out: Uint8Array, o: number): number {
    const pairs = this.pairs;
    for (let i = 0; i < this.listed; i++) {
      if (i > 0) out[o++] = 0x2c;
      o = put(out, o, RANGE_HPA, 0, RANGE_HPA.length);
      o = putPages(out, o, pairs[2 * i] as number);
      o = put(out, o, RANGE_LENGTH, 0, RANGE_LENGTH.length);
      o = putPages(out, o, pairs[2 * i + 1] as number);
      o = put(out, o, RANGE_CLOSE, 0, RANGE_CLOSE.length);
    }
    return o;
  }
}

/** The stand-in for an answer's listed ranges: the serializer writes RANGE_MARKER_JSON there. */
export function markedRanges(): HostRangeWire[] {
  return [RANGE_MARKER];
}

/** A decision answer (the Decision schema) still as its decision: written by serializeDecisionReply. */
export class DecisionReply {
  constructor(
    readonly decision: Decision,
    readonly revisionNumber: number,
    readonly jobId: string | undefined,
    readonly after: readonly string[] | undefined
  ) {}

  /** The answer as objects, as the schema describes it. */
  wire(): ReturnType<typeof decisionWire> {
    return decisionWire(this.decision, this.revisionNumber, { jobId: this.jobId, after: this.after });
  }
}

const DECISION_JSON = compileSerializer(DecisionSchema);

/** The answer's JSON bytes: what the compiled Decision serializer writes for `a.wire()`. */
export function serializeDecisionReply(a: DecisionReply): Buffer {
  const json = DECISION_JSON(decisionWire(a.decision, a.revisionNumber, { jobId: a.jobId, after: a.after, ranges: markedRanges() }));
  const ranges = new ListedRanges(a.decision);
  return spliced(json, [RANGE_MARKER_JSON], [ranges.maxBytes], (_, out, o) => ranges.put(out, o));
}
