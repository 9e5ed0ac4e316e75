/**
 * coherency-sim: replays a trace under every policy mode and prints what each flushed, what it
 * would cost and whether the coherency model saw a hazard.
 *
 *   coherency-sim <trace.jsonl | reference name> [--json] [--chart out.svg] [--modes trap,pessimistic] [--threads n]
 *
 * Exit status: 0 when every mode is safe, 1 when a mode let the model see a hazard, 2 on bad input.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { defaultQuirksFile, parseQuirkFile, POLICY_MODES, type PolicyMode } from '../domain/index.js';
import { renderChart } from './chart.js';
import { REFERENCE_TRACES, type ReferenceTraceName } from './reference-traces.js';
import type { TraceSource } from './simulate.js';
import { Simulator } from './simulator.js';
import { formatTable } from './table.js';
import { TraceError } from './trace.js';

const USAGE = `usage: coherency-sim <trace.jsonl | ${REFERENCE_TRACES.join(' | ')}> [options]

  --json             print the result as JSON instead of a table
  --chart <file>     also write the SVG bar chart to <file>
  --modes <list>     comma-separated modes (default: ${POLICY_MODES.join(',')})
  --quirks <file>    quirk file (default: the shipped list)
  --threads <n>      worker threads (default: CPU count; 0 runs inline)
`;

export async function main(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        chart: { type: 'string' },
        modes: { type: 'string' },
        quirks: { type: 'string' },
        threads: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false }
      }
    });
  } catch (e) {
    err(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = args;
  if (values.help) {
    out(USAGE);
    return 0;
  }
  const target = positionals[0];
  if (target === undefined || positionals.length > 1) {
    err(USAGE);
    return 2;
  }
  const modes = (values.modes?.split(',') ?? [...POLICY_MODES]).map((m) => m.trim());
  const unknown = modes.filter((m) => !(POLICY_MODES as readonly string[]).includes(m));
  if (unknown.length > 0 || modes.length === 0) {
    err(`unknown mode ${unknown.join(', ')}; modes are ${POLICY_MODES.join(', ')}\n`);
    return 2;
  }
  const threads = values.threads === undefined ? undefined : Number(values.threads);
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 0 || threads > 64)) {
    err('--threads must be an integer from 0 to 64\n');
    return 2;
  }
  let source: TraceSource;
  let quirks;
  try {
    source = (REFERENCE_TRACES as readonly string[]).includes(target) ? { reference: target as ReferenceTraceName } : { text: readFileSync(target, 'utf8') };
    quirks = parseQuirkFile(values.quirks === undefined ? defaultQuirksFile : (JSON.parse(readFileSync(values.quirks, 'utf8')) as unknown));
  } catch (e) {
    err(`coherency-sim: ${(e as Error).message}\n`);
    return 2;
  }
  const simulator = new Simulator(threads === undefined ? {} : { threads });
  try {
    const result = await simulator.run(source, quirks, modes as PolicyMode[]);
    if (values.chart !== undefined) writeFileSync(values.chart, renderChart(result));
    out(values.json ? JSON.stringify(result, null, 2) + '\n' : formatTable(result));
    return result.summary.safe ? 0 : 1;
  } catch (e) {
    if (e instanceof TraceError) {
      err(`coherency-sim: ${target}: ${e.message}\n`);
      return 2;
    }
    throw e;
  } finally {
    await simulator.close();
  }
}
