/**
 * The README's event-stream section says its output is real (scripts/readme-events.ts): the
 * `curl -N` transcript is what a server streams for that scenario now, and the VMM loop shown is
 * test/e2e/vmm-loop.ts, which an end-to-end test runs.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { block, loop, LOOP_MARKER, README, transcript, TRANSCRIPT_MARKER } from '../../scripts/readme-events.js';

describe('README event stream', () => {
  it('the curl -N transcript is what the server streams (run `npm run docs` after changing it)', async () => {
    expect(block(readFileSync(README, 'utf8'), TRANSCRIPT_MARKER)).toBe(await transcript());
  });

  it('the VMM loop shown is the one the end-to-end test runs (run `npm run docs`)', () => {
    expect(block(readFileSync(README, 'utf8'), LOOP_MARKER)).toBe(loop());
  });
});
