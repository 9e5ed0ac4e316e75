/**
 * The event-stream walkthrough (docs/events.md) and the README's VMM loop, generated. The
 * walkthrough's shell blocks (its set-up, the operator's quirk change, the VMM's acknowledgement,
 * the clean-up) are run with bash, curl and jq against a listening server while a stream of the
 * VM's events is read; what the stream shows is written as `curl -N` shows it (the start epoch in
 * event ids, job ids and times as placeholders). The VMM loop is test/e2e/vmm-loop.ts, which an
 * end-to-end test runs. `npm run docs` rewrites them all; a test checks the files hold exactly them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../src/config.js';
import { defaultQuirksFile, parseQuirkFile } from '../src/domain/index.js';
import { buildApp } from '../src/http/app.js';
import { createRuntime } from '../src/service/runtime.js';
import { renderShell, walk, withOutputs, withShellBlock, type ShellScript } from './readme-shell.js';

export const README = new URL('../README.md', import.meta.url);
export const EVENTS_DOC = new URL('../docs/events.md', import.meta.url);
const LOOP = new URL('../test/e2e/vmm-loop.ts', import.meta.url);
export const TRANSCRIPT_MARKER = '<!-- events transcript -->';
export const LOOP_MARKER = '<!-- vmm loop -->';

const JSON_HEADER = "-H 'content-type: application/json'";
/** What a set-up line prints: its status, so a set-up that fails shows it. */
const STATUS = "-o /dev/null -w '%{http_code}\\n'";

/** The walkthrough's shell blocks, each after its marker in docs/events.md, in the order they run. */
export const BLOCKS: readonly { readonly marker: string; readonly script: ShellScript }[] = [
  {
    marker: '<!-- events setup -->',
    script: [
      { notes: ['Where the service listens.'], commands: [`svc=http://${loadConfig({}).host}:${String(loadConfig({}).port)}`] },
      {
        notes: ['A VM whose policy denies trapped enables, a non-coherent domain, an accelerator in it', 'with No Snoop off, and 2 MiB pinned (no flush: nothing in d0 may no-snoop):'],
        commands: [
          `curl -s ${STATUS} -X PUT $svc/v1/vms/vmq ${JSON_HEADER} -d '{"arch":"x86_64","policy":{"mode":"trap","onEnable":"deny"}}'`,
          `curl -s ${STATUS} -X PUT $svc/v1/vms/vmq/domains/d0 ${JSON_HEADER} -d '{"enforceCacheCoherency":false}'`,
          `curl -s ${STATUS} -X PUT $svc/v1/vms/vmq/devices/0000:01:00.0 ${JSON_HEADER} -d '{"domainId":"d0","vendorId":"0x1d0f","deviceId":"0x1234","function":"pf","nosnoop":"disabled"}'`,
          `curl -s ${STATUS} -X POST $svc/v1/vms/vmq/pins ${JSON_HEADER} -d '{"iova":"0x0","hpa":"0x40000000","length":"0x200000"}'`
        ]
      }
    ]
  },
  {
    marker: '<!-- events operator -->',
    script: [
      {
        notes: ['The operator adds one quirk: the device ignores its Enable No Snoop bit. The 23 shipped', 'entries stay (24 in force); d0 becomes exposed, so the 2 MiB pinned must be replayed:'],
        commands: [
          `curl -s -X POST $svc/v1/quirks ${JSON_HEADER} -d '{"quirks":[{"vendorId":"0x1d0f","deviceId":"0x1234","flags":["ignores-nosnoop-enable"]}]}' | jq -c '{inForce: (.quirks | length), vms: [.vms[] | {vmId, flush: (.flush | {required, bytes, cause, jobId})}]}'`
        ]
      }
    ]
  },
  {
    marker: '<!-- events vmm -->',
    script: [
      {
        notes: ['The VMM, told by its stream, flushes the job\'s ranges and acknowledges it:'],
        commands: [
          "job=$(curl -s $svc/v1/vms/vmq/flush-jobs | jq -r '.items[] | select(.state == \"pending\") | .id')",
          `curl -s -X POST $svc/v1/flush-jobs/$job/ack ${JSON_HEADER} -d '{"durationNs":5200}' | jq -c '{id, cause, state}'`
        ]
      }
    ]
  },
  {
    marker: '<!-- events cleanup -->',
    script: [
      {
        notes: ['Tear the VM down: its replayed range is flushed once more after the unmap; acknowledge that too.'],
        commands: [
          'job=$(curl -s -X DELETE $svc/v1/vms/vmq | jq -r .flush.jobId)',
          "curl -s -X POST $svc/v1/flush-jobs/$job/ack | jq -c '{id, cause, state}'"
        ]
      }
    ]
  }
];

/** The blocks of docs/events.md (by marker) and the `curl -N` transcript, from one run on a fresh server. */
export async function walkthrough(): Promise<{ blocks: Map<string, string>; transcript: string }> {
  const app = await buildApp({ runtime: createRuntime({ defaults: loadConfig({}).defaultPolicy, quirks: parseQuirkFile(defaultQuirksFile) }) });
  try {
    const origin = await app.listen({ host: '127.0.0.1', port: 0 });
    const blocks = new Map<string, string>();
    /** Runs one block (with the set-up's `svc=` line first, as in the reader's shell) and keeps it with its outputs. */
    const runBlock = async (index: number): Promise<void> => {
      const { marker, script } = BLOCKS[index] as (typeof BLOCKS)[number];
      const lines = script.flatMap((g) => g.commands);
      const outputs = index === 0 ? await walk(lines, origin) : (await walk(['svc=http://127.0.0.1:8080', ...lines], origin)).slice(1);
      blocks.set(marker, renderShell(withOutputs(script, outputs)));
    };
    await runBlock(0);
    // What `curl -N $svc/v1/vms/vmq/events` shows meanwhile; no stream waits longer than 30 s.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error('the event stream did not show what the walkthrough expects within 30 s')), 30_000);
    let text = '';
    try {
      const res = await fetch(`${origin}/v1/vms/vmq/events`, { signal: controller.signal });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      const until = async (part: string): Promise<void> => {
        while (!text.includes(part)) text += decoder.decode((await reader.read()).value, { stream: true });
      };
      await until('\n\n');
      await runBlock(1);
      // The job is acknowledged once the stream has shown it pending, so both its events show.
      await until('"state":"pending"');
      await until('\n\n');
      await runBlock(2);
      await until('"state":"acknowledged"');
      await until('\n\n');
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
    await runBlock(3);
    const transcript = text
      .replace(/^id: \d+\./gm, 'id: <start>.')
      .replace(/fj-[0-9a-f-]{36}/g, 'fj-…')
      .replace(/fb-[0-9a-f-]{36}/g, 'fb-…')
      .replace(/"(createdAt|startedAt|finishedAt|acknowledgedAt)":"[^"]+"/g, '"$1":"…"')
      .replace(/"requestId":"[^"]+"/g, '"requestId":"…"');
    return { blocks, transcript };
  } finally {
    await app.close();
  }
}

/** The fenced block after `marker` in `text`, fences excluded. */
export function block(text: string, marker: string): string {
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`no ${marker}`);
  const start = text.indexOf('\n', text.indexOf('```', at)) + 1;
  return text.slice(start, text.indexOf('```', start));
}

/** The VMM loop as the README shows it: the source without its import line. */
export function loop(): string {
  const source = readFileSync(LOOP, 'utf8');
  return source.slice(source.indexOf('\n\n') + 2);
}

/** `text` with `marker`'s fenced block replaced by `body`. */
export function withBlock(text: string, marker: string, body: string): string {
  const at = text.indexOf(marker);
  const start = text.indexOf('\n', text.indexOf('```', at)) + 1;
  return text.slice(0, start) + body + text.slice(text.indexOf('```', start));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { blocks, transcript } = await walkthrough();
  const doc = readFileSync(EVENTS_DOC, 'utf8');
  let nextDoc = withBlock(doc, TRANSCRIPT_MARKER, transcript);
  for (const [marker, body] of blocks) nextDoc = withShellBlock(nextDoc, marker, body);
  const readme = readFileSync(README, 'utf8');
  const nextReadme = withBlock(readme, LOOP_MARKER, loop());
  if (process.argv.includes('--write')) {
    for (const [url, before, after] of [[EVENTS_DOC, doc, nextDoc], [README, readme, nextReadme]] as const) {
      if (after === before) console.log(`${url.pathname} is up to date`);
      else {
        writeFileSync(url, after);
        console.log(`wrote ${url.pathname}`);
      }
    }
  } else {
    for (const body of blocks.values()) console.log(body);
    console.log(transcript);
  }
}
