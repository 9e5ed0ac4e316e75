/**
 * The README's curl transcript says its output is real: it must be what the server answers now.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { README_PATH, readmeTranscript, renderTranscript, withTranscript } from '../../scripts/readme-transcript.js';

describe('README curl transcript', () => {
  it('README.md holds exactly the answers the server gives (run `npm run docs` after changing them)', async () => {
    const readme = readFileSync(README_PATH, 'utf8');
    const transcript = await renderTranscript();
    // The block alone first, for a readable diff; then its introducing sentence.
    expect(readmeTranscript(readme), 'the curl transcript in README.md is stale: run `npm run docs`').toBe(transcript);
    expect(withTranscript(readme, transcript) === readme, 'the sentence introducing the curl transcript in README.md is stale: run `npm run docs`').toBe(true);
  });

  it('renders the same block twice: nothing random or timed is shown', async () => {
    expect(await renderTranscript()).toBe(await renderTranscript());
  });
});
