/**
 * The event-stream walkthrough (docs/events.md) says its output is real (scripts/readme-events.ts):
 * its shell blocks, set-up included, print what it shows when run with bash, curl and jq against a
 * fresh server, and the `curl -N` transcript is what that server streams meanwhile. The README's
 * VMM loop is test/e2e/vmm-loop.ts, which an end-to-end test runs.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BLOCKS, block, EVENTS_DOC, loop, LOOP_MARKER, README, TRANSCRIPT_MARKER, walkthrough } from '../../scripts/readme-events.js';
import { commandLines, parseShell, shellBlock } from '../../scripts/readme-shell.js';

const doc = readFileSync(EVENTS_DOC, 'utf8');
let run: Awaited<ReturnType<typeof walkthrough>>;

beforeAll(async () => {
  run = await walkthrough();
}, 60_000);

describe('docs/events.md', () => {
  it('each shell block prints what it shows, on a fresh server (run `npm run docs` after changing it)', () => {
    for (const { marker } of BLOCKS) expect(shellBlock(doc, marker), marker).toBe(run.blocks.get(marker));
  });

  it('the curl -N transcript is what the server streams meanwhile (run `npm run docs` after changing it)', () => {
    expect(block(doc, TRANSCRIPT_MARKER)).toBe(run.transcript);
  });

  it('sets up everything it uses, and adds its quirk without replacing the shipped list', () => {
    const lines = BLOCKS.flatMap(({ marker }) => commandLines(parseShell(shellBlock(doc, marker))));
    for (const path of ['PUT $svc/v1/vms/vmq ', 'PUT $svc/v1/vms/vmq/domains/d0', 'PUT $svc/v1/vms/vmq/devices/0000:01:00.0', 'POST $svc/v1/vms/vmq/pins']) {
      expect(lines.some((l) => l.includes(path)), path).toBe(true);
    }
    expect(lines.some((l) => l.includes('-X POST $svc/v1/quirks'))).toBe(true);
    expect(lines.filter((l) => l.includes('-X PUT $svc/v1/quirks'))).toEqual([]);
  });
});

describe('docs/rules.md, adding a quirk', () => {
  it('shows the POST the events walkthrough runs (same route, same body)', () => {
    const rules = readFileSync(new URL('../../docs/rules.md', import.meta.url), 'utf8');
    const shown = shellBlock(rules, '## Quirks').replace(/\\\n\s*/g, '');
    const ran = commandLines(parseShell(shellBlock(doc, '<!-- events operator -->'))).join('\n');
    const request = (text: string): [string | undefined, string | undefined] => [/-X POST \S+(\/v1\/quirks) /.exec(text)?.[1], /-d '([^']+)'/.exec(text)?.[1]];
    expect(request(shown)).toEqual(request(ran));
    expect(request(shown)[1]).toBeDefined();
  });
});

describe("README's VMM loop", () => {
  it('is the one the end-to-end test runs (run `npm run docs`)', () => {
    expect(block(readFileSync(README, 'utf8'), LOOP_MARKER)).toBe(loop());
  });
});
