/**
 * Pin and unpin answers as bytes: a batch of 10,000 ranges flushed is answered with its 10,000
 * flush ranges written from the decision's pairs, without a wire object or string per range.
 * The bytes are exactly what the serializer compiled from the Decision schema writes for
 * decisionWire's answer (compiled-wire.ts); a property test compares them.
 */
import type { Decision } from '../domain/index.js';
import { decisionJson, putRanges, rangesMaxBytes } from './json-bytes.js';
import { decisionWire, LISTED_RANGES_MAX } from './wire.js';

type Wire = ReturnType<typeof decisionWire>;

/** A decision answer (the Decision schema) still as its decision: written by serializeDecisionReply. */
export class DecisionReply {
  constructor(
    readonly decision: Decision,
    readonly revisionNumber: number,
    readonly jobId: string | undefined,
    readonly after: readonly string[] | undefined
  ) {}

  /** True when serializeDecisionReply writes this decision's answer: one without device writes or a DEVCTL outcome. */
  static fits(decision: Decision): boolean {
    return decision.devices === undefined && decision.devctl === undefined;
  }

  /** The answer as objects, as the schema describes it. */
  wire(): Wire {
    return decisionWire(this.decision, this.revisionNumber, { jobId: this.jobId, after: this.after });
  }

  get flush(): Wire['flush'] {
    return this.wire().flush;
  }

  get reasons(): Wire['reasons'] {
    return this.wire().reasons;
  }

  get kvmNoncoherentDma(): boolean {
    return this.decision.kvmNoncoherentDma;
  }

  get revision(): number {
    return this.revisionNumber;
  }
}

/** The answer's JSON bytes: flush (its ranges from the decision's pairs), reasons, kvmNoncoherentDma, revision. */
export function serializeDecisionReply(a: DecisionReply): Buffer {
  const parts = decisionJson(a.decision, LISTED_RANGES_MAX, a.jobId, a.after);
  const head = `{${parts.head}`;
  const tail = `${parts.tail},"revision":${a.revisionNumber}}`;
  const { pairs, listed } = parts;
  const out = Buffer.allocUnsafe(Buffer.byteLength(head) + rangesMaxBytes(listed) + Buffer.byteLength(tail));
  let o = putRanges(out, out.write(head, 0, 'utf8'), pairs, listed);
  o += out.write(tail, o, 'utf8');
  return out.subarray(0, o);
}
