/**
 * The README's curl transcript ("### A GPU VM's life with curl"), generated: each step is run
 * against the real app in-process and its answer projected the way the step's jq filter would.
 * `npm run docs` rewrites the block in README.md; without --write it prints the block. A test
 * checks that README.md holds exactly this block, so the documented answers cannot drift.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../src/config.js';
import { defaultQuirksFile, parseQuirkFile } from '../src/domain/index.js';
import { buildApp } from '../src/http/app.js';
import { createRuntime } from '../src/service/runtime.js';

export const README_PATH = new URL('../README.md', import.meta.url);

const HEADING = "### A GPU VM's life with curl";

/** Flush job ids are random UUIDs; the transcript shows them as this. */
export const JOB_ID_PLACEHOLDER = 'fj-…';

/**
 * The sentence introducing the block. It must contain no '. ' or '.\n' before its end: that is
 * how the next run finds where it stops and the hand-written prose starts.
 */
export const README_INTRO =
  'Started with `npm start`; the output below is real (`npm run docs` regenerates it and a test\n' +
  `checks it), except flush job ids: they are random UUIDs, shown here as \`${JOB_ID_PLACEHOLDER}\`.`;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** jq's `.key`: null on null, the field or null on an object, an error on anything else. */
function field(value: Json, key: string): Json {
  if (value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`jq: cannot index ${Array.isArray(value) ? 'array' : typeof value} with "${key}"`);
  return Object.hasOwn(value, key) ? (value[key] ?? null) : null;
}

/** jq's `.key[]`: the elements of an array (or the values of an object) under that key. */
function each(value: Json, key: string): Json[] {
  const inner = field(value, key);
  if (Array.isArray(inner)) return inner;
  if (inner !== null && typeof inner === 'object') return Object.values(inner);
  throw new Error(`jq: cannot iterate over ${inner === null ? 'null' : typeof inner} (.${key}[])`);
}

/** jq's `{a, b}` shorthand: those fields, in that order. */
function pick(value: Json, ...keys: string[]): { [key: string]: Json } {
  return Object.fromEntries(keys.map((key) => [key, field(value, key)]));
}

/**
 * Each jq filter the transcript uses, as the JS it stands for. None of them may show a request id
 * or a timestamp: the transcript would then change on every run.
 */
const FILTERS = {
  '.': (answer: Json): Json => answer,
  '{revision, policy: .vm.policy}': (answer: Json): Json => ({ revision: field(answer, 'revision'), policy: field(field(answer, 'vm'), 'policy') }),
  '{domains: [.domains[] | {id, coherent, exposed}], devices: [.devices[] | {bdf, nosnoop, quirks}], pinned, kvmNoncoherentDma}': (answer: Json): Json => ({
    domains: each(answer, 'domains').map((domain) => pick(domain, 'id', 'coherent', 'exposed')),
    devices: each(answer, 'devices').map((device) => pick(device, 'bdf', 'nosnoop', 'quirks')),
    pinned: field(answer, 'pinned'),
    kvmNoncoherentDma: field(answer, 'kvmNoncoherentDma')
  }),
  '{status, code, detail}': (answer: Json): Json => pick(answer, 'status', 'code', 'detail')
} as const;

interface Step {
  readonly method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  readonly path: string;
  readonly body?: Json;
  readonly jq: keyof typeof FILTERS;
  /** The status the step must answer, so a scenario that breaks fails here instead of documenting an error. */
  readonly status: number;
}

/** The README's prose walks through these steps in this order. */
const STEPS: readonly Step[] = [
  { method: 'PUT', path: '/v1/vms/vm1', body: { arch: 'x86_64', policy: { mode: 'trap' } }, jq: '{revision, policy: .vm.policy}', status: 201 },
  { method: 'PUT', path: '/v1/vms/vm1/domains/d0', body: { enforceCacheCoherency: false }, jq: '.', status: 201 },
  {
    method: 'PUT',
    path: '/v1/vms/vm1/devices/0000:00:02.0',
    body: { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'disabled' },
    jq: '.',
    status: 201
  },
  { method: 'POST', path: '/v1/vms/vm1/pins', body: { iova: '0x0', hpa: '0x100000000', length: '0x200000000' }, jq: '.', status: 200 },
  { method: 'POST', path: '/v1/vms/vm1/devices/0000:00:02.0/devctl', body: { nosnoopEnable: true }, jq: '.', status: 200 },
  {
    method: 'GET',
    path: '/v1/vms/vm1',
    jq: '{domains: [.domains[] | {id, coherent, exposed}], devices: [.devices[] | {bdf, nosnoop, quirks}], pinned, kvmNoncoherentDma}',
    status: 200
  },
  { method: 'POST', path: '/v1/vms/vm1/pins', body: { iova: '0x1000', hpa: '0x0', length: '0x1000' }, jq: '{status, code, detail}', status: 409 },
  { method: 'POST', path: '/v1/vms/vm1/unpins', body: { iova: '0x0', length: '0x200000000' }, jq: '.', status: 200 },
  { method: 'DELETE', path: '/v1/vms/vm1', jq: '.', status: 200 }
];

function curlLine(step: Step, origin: string, payload: string | undefined): string {
  // The payload and filter go inside single quotes, which they must not contain themselves.
  if (payload?.includes("'") === true || step.jq.includes("'")) throw new Error(`step ${step.method} ${step.path} cannot be single-quoted`);
  const method = step.method === 'GET' ? '' : ` -X ${step.method}`;
  const data = payload === undefined ? '' : ` -H 'content-type: application/json' -d '${payload}'`;
  const filter = step.jq === '.' ? '.' : `'${step.jq}'`;
  return `$ curl -s${method} ${origin}${step.path}${data} | jq -c ${filter}`;
}

const JOB_ID = /fj-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const TIMESTAMP = /\d{4}-\d\d-\d\dT\d\d:\d\d/;

/** The fenced block, fences included, as README.md holds it. */
export async function renderTranscript(): Promise<string> {
  // The server's own defaults (an empty environment, not the caller's), so the block is what a
  // plain `npm start` answers; the in-memory store answers the same as the default SQLite one.
  const config = loadConfig({});
  const runtime = createRuntime({
    defaults: config.defaultPolicy,
    quirks: parseQuirkFile(defaultQuirksFile),
    windowMs: config.flushWindowMs,
    maxPending: config.maxPendingJobs
  });
  let app: Awaited<ReturnType<typeof buildApp>>;
  try {
    // No event-loop delay limit: it only turns answers into 503s when this process is busy.
    app = await buildApp({ runtime, batchLimit: config.batchLimit, bodyLimit: config.bodyLimit, rateLimit: config.rateLimit });
  } catch (err) {
    await runtime.close();
    throw err;
  }
  const origin = `http://${config.host}:${config.port}`;
  const entries: string[] = [];
  try {
    for (const step of STEPS) {
      const payload = step.body === undefined ? undefined : JSON.stringify(step.body);
      const res = await app.inject({
        method: step.method,
        url: step.path,
        ...(payload === undefined ? {} : { headers: { 'content-type': 'application/json' }, payload })
      });
      if (res.statusCode !== step.status) throw new Error(`${step.method} ${step.path}: expected ${step.status}, got ${res.statusCode} ${res.body}`);
      const answer = JSON.stringify(FILTERS[step.jq](res.json<Json>())).replace(JOB_ID, JOB_ID_PLACEHOLDER);
      // Anything random or timed left in an answer would make the block differ on every run.
      if (UUID.test(answer) || TIMESTAMP.test(answer)) throw new Error(`${step.method} ${step.path}: the answer shows an id or a time that changes per run: ${answer}`);
      entries.push(`${curlLine(step, origin, payload)}\n${answer}`);
    }
  } finally {
    await app.close();
  }
  return '```\n' + entries.join('\n\n') + '\n```\n';
}

interface Spans {
  /** The introducing sentence, with the space or newline after it. */
  readonly intro: readonly [number, number];
  /** The fenced block, fences and the closing fence's newline included. */
  readonly block: readonly [number, number];
}

function locate(readme: string): Spans {
  const heading = readme.indexOf(`\n${HEADING}\n`);
  if (heading < 0) throw new Error(`README.md has no heading "${HEADING}"`);
  let start = heading + HEADING.length + 2;
  while (readme[start] === '\n') start++;
  const sentenceEnd = /\.(?:[ \n]|$)/g;
  sentenceEnd.lastIndex = start;
  const end = sentenceEnd.exec(readme);
  const sectionEnd = readme.indexOf('\n#', start);
  const open = readme.indexOf('\n```\n', start) + 1;
  const close = open > 0 ? readme.indexOf('\n```\n', open + 3) : -1;
  if (end === null || open === 0 || close < 0 || end.index > open || (sectionEnd >= 0 && close > sectionEnd)) {
    throw new Error(`README.md: expected a sentence and then a fenced block under "${HEADING}"`);
  }
  return { intro: [start, end.index + end[0].length], block: [open, close + 5] };
}

/** The fenced block README.md holds now. */
export function readmeTranscript(readme: string): string {
  const { block } = locate(readme);
  return readme.slice(block[0], block[1]);
}

/** README.md with this block and the introducing sentence; all other prose is left as it is. */
export function withTranscript(readme: string, transcript: string): string {
  const { intro, block } = locate(readme);
  // The sentence ends its own line, so the hand-written prose after it keeps its line breaks.
  return readme.slice(0, intro[0]) + README_INTRO + '\n' + readme.slice(intro[1], block[0]) + transcript + readme.slice(block[1]);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const transcript = await renderTranscript();
  if (process.argv.includes('--write')) {
    const readme = readFileSync(README_PATH, 'utf8');
    const updated = withTranscript(readme, transcript);
    if (updated === readme) console.log(`${README_PATH.pathname} is up to date`);
    else {
      writeFileSync(README_PATH, updated);
      console.log(`wrote the transcript to ${README_PATH.pathname}`);
    }
  } else process.stdout.write(transcript);
}
