/**
 * docs/simulations.md shows what runs: its simulation table is what `coherency-sim desktop-gpu`
 * prints (the CLI run as a user runs it, its table compared line for line with the page's), and
 * its commands on a trace file run, with bash, on the page's own sample trace: the CLI with its
 * options, and curl with jq against a listening server.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { defaultQuirksFile, parseQuirkFile } from '../../src/domain/index.js';
import { buildApp } from '../../src/http/app.js';
import { createRuntime } from '../../src/service/runtime.js';

const run = promisify(execFile);

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

describe('the commands of docs/simulations.md', () => {
  const page = readFileSync(join(root, 'docs/simulations.md'), 'utf8');
  const trace = /```jsonl\n([\s\S]*?)```/.exec(page)?.[1] ?? '';
  const section = page.slice(page.indexOf('Run one from the command line or over HTTP:'));
  /** The page's command lines, continuation lines joined. */
  const commands = (/```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '').replace(/\\\n\s*/g, '').split('\n').filter((l) => l !== '');
  const references = [...page.matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((m) => m[1]);

  it('show a sample trace and the commands for it', () => {
    expect(trace.split('\n').filter((l) => l !== '').length).toBeGreaterThan(5);
    expect(commands.filter((c) => c.includes('my-trace.jsonl')).length).toBeGreaterThanOrEqual(2);
  });

  it('name only reference traces the page lists', () => {
    for (const c of commands) for (const m of c.matchAll(/"reference":"([^"]+)"|coherency-sim ([a-z0-9-]+)(?= |$)/g)) expect(references, c).toContain(m[1] ?? m[2]);
    expect(references).toHaveLength(4);
  });

  it('run on the sample trace: the CLI with its options, and curl against a listening server', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coherency-sim-doc-'));
    const app = await buildApp({ runtime: createRuntime({ defaults: loadConfig({}).defaultPolicy, quirks: parseQuirkFile(defaultQuirksFile), simThreads: 0 }) });
    try {
      writeFileSync(join(dir, 'my-trace.jsonl'), trace);
      const origin = await app.listen({ host: '127.0.0.1', port: 0 });
      const onTrace = commands.filter((c) => c.includes('my-trace.jsonl') && !c.startsWith('npx coherency-sim desktop-gpu'));
      for (const command of onTrace) {
        // The sources' CLI, as `npx coherency-sim` runs the built one; the page's server is this one.
        const line = command.replace('npx coherency-sim', `node ${join(root, 'bin/coherency-sim.js')}`).replaceAll('my-trace.', `${dir}/my-trace.`).replace('localhost:8080', origin);
        const { stdout } = await run('bash', ['--noprofile', '--norc', '-c', line], { cwd: root, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
        const result = JSON.parse(stdout) as { trace: { name: string; events: number } };
        expect(result.trace, command).toMatchObject({ name: 'mine', events: 9 });
      }
      expect(onTrace).toHaveLength(2);
      expect(readFileSync(join(dir, 'my-trace.svg'), 'utf8')).toMatch(/^<svg/);
    } finally {
      await app.close();
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
