/**
 * docs/cost-model.md's figures are the model's: each method's cycles, fences and clock are
 * DEFAULT_COST_MODEL's, and the 8 GiB figure it compares with the kernel cover letter is what
 * planFlush prices for 8 GiB with clflushopt.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_COST_MODEL, planFlush } from '../../src/domain/index.js';

const page = readFileSync(join(import.meta.dirname, '../../docs/cost-model.md'), 'utf8');

/** The "modelled cost" and "source" cells of a method's row. */
function row(method: string): { cost: string; source: string } {
  const line = page.split('\n').find((l) => l.includes(`\`${method}\``) && l.startsWith('| x86') !== (method === 'dc-civac'));
  const cells = (line ?? '').split(' | ');
  return { cost: cells[1] ?? '', source: cells[2] ?? '' };
}

/** A number as the page writes it: `1,262`, `9.0`. */
const num = (text: string | undefined): number => Number((text ?? 'NaN').replaceAll(',', ''));

describe('docs/cost-model.md', () => {
  const m = DEFAULT_COST_MODEL;

  it("quotes the model's constants", () => {
    const clflushopt = row('clflushopt').cost;
    expect(num(/^([\d.]+) cycles per 64-byte line/.exec(clflushopt)?.[1])).toBe(m.clflushoptCyclesPerLine);
    expect(num(/\+ (\d+) cycles per fence, two fences/.exec(clflushopt)?.[1])).toBe(m.fenceCycles);
    expect(num(/; ([\d.]+) GHz$/.exec(clflushopt)?.[1])).toBe(m.clockGhz.x86_64);
    expect(num(/^(\d+) cycles per line/.exec(row('clflush').cost)?.[1])).toBe(m.clflushCyclesPerLine);
    expect(num(/^(\d+) M cycles per call/.exec(row('wbinvd').cost)?.[1]) * 1e6).toBe(m.wbinvdCycles);
    const civac = row('dc-civac').cost;
    expect(num(/^(\d+) cycles per line/.exec(civac)?.[1])).toBe(m.dcCivacCyclesPerLine);
    expect(num(/\+ (\d+) cycles per DSB/.exec(civac)?.[1])).toBe(m.dsbCycles);
    expect(num(/; ([\d.]+) GHz$/.exec(civac)?.[1])).toBe(m.clockGhz.aarch64);
  });

  it('prices 8 GiB of clflushopt as it says, within the percentage it claims of the published figure', () => {
    const source = row('clflushopt').source;
    const pages = (8 * 2 ** 30) / 4096;
    const receipt = planFlush(new Float64Array([0, pages]), 'x86_64', { flushMethod: 'clflushopt', wbinvdAbovePages: null }, 262_144);
    const quoted = num(/\(([\d,]+) M cycles\)/.exec(source)?.[1]);
    expect(Math.round(receipt.modeledCycles / 1e6)).toBe(quoted);
    const published = num(/\+(\d+) M cycles/.exec(source)?.[1]);
    const within = num(/within (\d+)%/.exec(source)?.[1]);
    expect(Math.abs(quoted - published) / published).toBeLessThan(within / 100);
    expect(Math.round(receipt.lines / 1e6)).toBe(num(/\((\d+) M lines/.exec(source)?.[1]));
  });
});
