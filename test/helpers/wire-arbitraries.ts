/**
 * Values for property tests of the answers' serializers: any value the schemas admit, as the
 * serializers must write it exactly as zod's does.
 */
import fc from 'fast-check';

/** A 64-bit address or length as the API writes it. */
export const hex = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((n) => `0x${n.toString(16)}`);
export const int = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
/** Any text, quotes, backslashes, controls and non-ASCII included. */
export const text = fc.string({ unit: 'binary', maxLength: 40 });
/** A flush job's state. */
export const jobState = fc.constantFrom('queued', 'running', 'pending', 'acknowledged', 'done', 'failed');
/** A flush job's receipt. */
export const receipt = fc.record(
  {
    jobId: text,
    state: jobState,
    method: fc.constantFrom('clflushopt', 'clflush', 'wbinvd', 'dc-civac'),
    bytes: hex,
    ranges: int,
    lines: int,
    fences: int,
    chunks: int,
    modeledCycles: int,
    modeledNs: int,
    jobBytes: hex,
    jobDecisions: int
  },
  { requiredKeys: ['jobId', 'state', 'method', 'bytes', 'ranges', 'lines', 'fences', 'chunks', 'modeledCycles', 'modeledNs'] }
);
