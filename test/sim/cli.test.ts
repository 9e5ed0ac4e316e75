/**
 * coherency-sim: the table, JSON and chart it prints for a trace file or a reference name, and
 * its exit codes. The last case runs the real bin through npx, as a user would.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/sim/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'coherency-sim-'));
const TRACE = [
  '{"t":"trace","version":1,"name":"one-pin"}',
  '{"t":"vm","vm":"vm1","arch":"x86_64"}',
  '{"t":"domain","vm":"vm1","domain":"d0","coherent":false}',
  '{"t":"device","vm":"vm1","bdf":"0000:00:05.0","domain":"d0","vendorId":"0x10ee","deviceId":"0x903f","nosnoop":"disabled"}',
  '{"t":"pin","vm":"vm1","iova":"0x0","hpa":"0x100000000","length":"0x200000"}',
  '{"t":"unpin","vm":"vm1","iova":"0x0","length":"0x200000"}'
].join('\n');

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(
    args,
    (s) => (out += s),
    (s) => (err += s)
  );
  return { code, out, err };
}

describe('coherency-sim', () => {
  it('prints a table of every mode for a trace file and writes the chart', async () => {
    const file = join(dir, 'one-pin.jsonl');
    writeFileSync(file, TRACE);
    const chart = join(dir, 'one-pin.svg');
    const { code, out } = await run([file, '--threads', '0', '--chart', chart]);
    expect(code).toBe(0);
    expect(out).toContain('trace one-pin: 5 events, 2 ranges');
    expect(out).toMatch(/pessimistic\s+4\.00 MiB\s+-\s+2\s/);
    expect(out).toMatch(/trap\s+0 B\s+100\.0% fewer\s+0\s/);
    expect(out).toMatch(/virtualize-zero\s+0 B/);
    expect(out).toContain('safe: no mode');
    expect(readFileSync(chart, 'utf8').match(/<rect class="bar"/g)).toHaveLength(3);
  });

  it('prints JSON for a reference trace and the modes asked', async () => {
    const { code, out } = await run(['server-1tib', '--json', '--modes', 'trap', '--threads', '0']);
    expect(code).toBe(0);
    const result = JSON.parse(out) as { modes: { mode: string; flush: { bytes: number } }[]; trace: { ranges: number } };
    expect(result.modes.map((m) => m.mode)).toEqual(['trap']);
    expect(result.trace.ranges).toBe(524_288);
    expect(result.modes[0]?.flush.bytes).toBe(2 * 2 ** 40);
  });

  it('exits 2 with the line for a bad trace, an unknown mode or a missing file', async () => {
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, `${TRACE}\n{"t":"pin","vm":"vm1"}\n`);
    const a = await run([bad, '--threads', '0']);
    expect(a.code).toBe(2);
    expect(a.err).toContain('trace line 7');
    const b = await run([bad, '--modes', 'yolo']);
    expect(b.code).toBe(2);
    expect(b.err).toContain('unknown mode yolo');
    const c = await run([join(dir, 'missing.jsonl')]);
    expect(c.code).toBe(2);
    expect(c.err).toContain('ENOENT');
    const d = await run([]);
    expect(d.code).toBe(2);
    expect(d.err).toContain('usage: coherency-sim');
  });

  it('runs as `npx coherency-sim` from the project, replaying in the worker pool', async () => {
    const file = join(dir, 'npx.jsonl');
    writeFileSync(file, TRACE);
    const { stdout } = await promisify(execFile)('npx', ['--no-install', 'coherency-sim', file], { cwd: join(import.meta.dirname, '../..'), timeout: 60_000 });
    expect(stdout).toMatch(/pessimistic\s+4\.00 MiB/);
  });
});
