/**
 * The README's event-stream section, generated: the `curl -N` transcript is what a server
 * streams for its scenario (the start epoch in event ids, job ids and times written as
 * placeholders), and the VMM loop is test/e2e/vmm-loop.ts (which an end-to-end test runs).
 * `npm run docs` rewrites both blocks; a test checks README.md holds exactly them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../src/config.js';
import { defaultQuirksFile, parseQuirkFile } from '../src/domain/index.js';
import { buildApp } from '../src/http/app.js';
import { createRuntime } from '../src/service/runtime.js';

export const README = new URL('../README.md', import.meta.url);
const LOOP = new URL('../test/e2e/vmm-loop.ts', import.meta.url);
export const TRANSCRIPT_MARKER = '<!-- events transcript -->';
export const LOOP_MARKER = '<!-- vmm loop -->';

/** The fenced block after `marker` in the README. */
export function block(readme: string, marker: string): string {
  const at = readme.indexOf(marker);
  if (at < 0) throw new Error(`README.md has no ${marker}`);
  const start = readme.indexOf('\n', readme.indexOf('```', at)) + 1;
  return readme.slice(start, readme.indexOf('```', start));
}

/** What `curl -N .../v1/vms/vmq/events` shows while an operator marks the device and the VMM acknowledges. */
export async function transcript(): Promise<string> {
  const a = await buildApp({ runtime: createRuntime({ defaults: loadConfig({}).defaultPolicy, quirks: parseQuirkFile(defaultQuirksFile) }) });
  try {
    return await run(a);
  } finally {
    await a.close();
  }
}

async function run(a: Awaited<ReturnType<typeof buildApp>>): Promise<string> {
  const base = await a.listen({ host: '127.0.0.1', port: 0 });
  const send = async (method: string, path: string, body?: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(base + path, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  };
  await send('PUT', '/v1/vms/vmq', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'deny' } });
  await send('PUT', '/v1/vms/vmq/domains/d0', { enforceCacheCoherency: false });
  await send('PUT', '/v1/vms/vmq/devices/0000:01:00.0', { domainId: 'd0', vendorId: '0x1d0f', deviceId: '0x1234', function: 'pf', nosnoop: 'disabled' });
  await send('POST', '/v1/vms/vmq/pins', { iova: '0x0', hpa: '0x40000000', length: '0x200000' });
  const controller = new AbortController();
  const res = await fetch(`${base}/v1/vms/vmq/events`, { signal: controller.signal });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  const until = async (part: string): Promise<void> => {
    while (!text.includes(part)) text += decoder.decode((await reader.read()).value, { stream: true });
  };
  await until('\n\n');
  const quirks = await send('PUT', '/v1/quirks', { quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'] }] });
  const jobId = ((quirks['vms'] as { flush: { jobId: string } }[])[0] as { flush: { jobId: string } }).flush.jobId;
  await until('"state":"pending"');
  await until('\n\n');
  await send('POST', `/v1/flush-jobs/${jobId}/ack`, { durationNs: 5200 });
  await until('"state":"acknowledged"');
  await until('\n\n');
  controller.abort();
  return text
    .replace(/^id: \d+\./gm, 'id: <start>.')
    .replace(/fj-[0-9a-f-]{36}/g, 'fj-…')
    .replace(/fb-[0-9a-f-]{36}/g, 'fb-…')
    .replace(/"(createdAt|startedAt|finishedAt|acknowledgedAt)":"[^"]+"/g, '"$1":"…"')
    .replace(/"requestId":"[^"]+"/g, '"requestId":"…"');
}


/** The VMM loop as the README shows it: the source without its import line. */
export function loop(): string {
  const source = readFileSync(LOOP, 'utf8');
  return source.slice(source.indexOf('\n\n') + 2);
}

/** `readme` with `marker`'s fenced block replaced by `body`. */
export function withBlock(readme: string, marker: string, body: string): string {
  const at = readme.indexOf(marker);
  const start = readme.indexOf('\n', readme.indexOf('```', at)) + 1;
  return readme.slice(0, start) + body + readme.slice(readme.indexOf('```', start));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const readme = readFileSync(README, 'utf8');
  const next = withBlock(withBlock(readme, TRANSCRIPT_MARKER, await transcript()), LOOP_MARKER, loop());
  if (process.argv.includes('--write')) {
    writeFileSync(README, next);
    console.log(next === readme ? `${README.pathname} is up to date` : `wrote ${README.pathname}`);
  } else {
    console.log(block(next, TRANSCRIPT_MARKER));
  }
}
