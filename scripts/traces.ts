/**
 * npm run traces: writes the reference traces to traces/<name>.jsonl and prints, per trace, its
 * events and SHA-256, so two runs can be compared (the generator is deterministic).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateReferenceTrace, REFERENCE_TRACES, traceText } from '../src/sim/reference-traces.js';

const dir = process.argv[2] ?? 'traces';
mkdirSync(dir, { recursive: true });
for (const name of REFERENCE_TRACES) {
  const trace = generateReferenceTrace(name);
  const text = traceText(trace);
  const file = join(dir, `${name}.jsonl`);
  writeFileSync(file, text);
  const sha = createHash('sha256').update(text).digest('hex');
  console.log(`${file}: ${trace.lines.length.toLocaleString('en-US')} events, ${(text.length / 2 ** 20).toFixed(1)} MiB, sha256 ${sha}`);
}
