/**
 * The README's walkthrough says its output is real and that it runs twice in a row: its commands,
 * taken from README.md, are run with bash, curl and jq against a real server, twice on the same
 * fresh server, and each run must print exactly what the README shows under each command.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandLines, parseShell, renderShell, SVC_LINE, walk } from '../../scripts/readme-shell.js';
import { COMMANDS, freshServer, README_PATH, readmeTranscript, withOutputs } from '../../scripts/readme-transcript.js';

const groups = parseShell(readmeTranscript(readFileSync(README_PATH, 'utf8')));
const shown = groups.flatMap((g) => g.commands.map((c) => c.output));

let server: Awaited<ReturnType<typeof freshServer>> | undefined;

beforeAll(async () => {
  server = await freshServer();
}, 60_000);

afterAll(async () => {
  await server?.close();
});

describe("README's walkthrough", () => {
  it('is the one scripts/readme-transcript.ts writes (run `npm run docs` after changing it)', () => {
    expect(commandLines(groups)).toEqual(COMMANDS);
    expect(renderShell(groups)).toBe(renderShell(withOutputs(shown)));
    // The reader points it at their server by changing its first line.
    expect(SVC_LINE.test(COMMANDS[0] ?? '')).toBe(true);
  });

  it('prints what README.md shows, twice in a row on one fresh server (it acknowledges its flushes and deletes its VM)', async () => {
    const lines = commandLines(groups);
    const origin = server?.url ?? '';
    const first = await walk(lines, origin);
    expect(first, 'the walkthrough in README.md is stale: run `npm run docs`').toEqual(shown);
    const second = await walk(lines, origin);
    expect(second, 'a second run of the walkthrough on the same server prints something else').toEqual(shown);
  }, 60_000);
});
