/**
 * docs/simulations.md's simulation table is what `coherency-sim desktop-gpu` prints: the CLI is run as a
 * user runs it and its table compared, line for line, with the page's.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;

/** The lines of a mode table: its header, its rule and one line per mode. */
function table(text: string): string[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^mode\s+flushed\s+vs pessimistic/.test(l));
  if (start < 0) throw new Error('no mode table');
  const rows: string[] = [];
  for (const line of lines.slice(start)) {
    if (line.trim() === '' || line.startsWith('```')) break;
    rows.push(line.trimEnd());
  }
  return rows;
}

describe('the simulation table of docs/simulations.md', () => {
  it('is what `coherency-sim desktop-gpu` prints', () => {
    const printed = execFileSync(process.execPath, [join(root, 'bin/coherency-sim.js'), 'desktop-gpu'], { cwd: root, encoding: 'utf8' });
    const page = readFileSync(join(root, 'docs/simulations.md'), 'utf8');
    const section = page.slice(page.indexOf('npx coherency-sim desktop-gpu'));
    expect(table(section)).toEqual(table(printed));
    expect(table(printed)).toHaveLength(5);
  }, 120_000);
});
