/**
 * The committed OpenAPI document passes third-party linters as they come: Redocly's recommended
 * rules (redocly.yaml; two listed exceptions with their reasons in .redocly.lint-ignore.yaml) and
 * Spectral's spectral:oas (.spectral.yaml; one rule off, with its reason), with no error and no
 * warning.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const bin = (name: string): string => `${root}node_modules/.bin/${name}`;

describe('openapi/openapi.json under third-party linters', () => {
  it("Redocly's recommended rules: no error, no warning", async () => {
    const { stdout, stderr } = await run(bin('redocly'), ['lint', 'openapi/openapi.json', '--format=json'], { cwd: root, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } });
    const report = JSON.parse(stdout) as { totals: { errors: number; warnings: number; ignored: number }; problems: { ruleId: string; message: string }[] };
    expect(report.problems.map((p) => `${p.ruleId}: ${p.message}`), stderr).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0, ignored: 2 });
  }, 60_000);

  it("Spectral's spectral:oas: no error, no warning", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coherency-spectral-'));
    const out = join(dir, 'report.json');
    let problems: { code: string; message: string; path: string[] }[];
    try {
      // Exits 1 when it finds anything (down to hints): the report says what.
      await run(bin('spectral'), ['lint', 'openapi/openapi.json', '--ruleset', '.spectral.yaml', '--format', 'json', '--output', out, '--fail-severity', 'hint'], { cwd: root }).catch(() => undefined);
      problems = JSON.parse(readFileSync(out, 'utf8')) as typeof problems;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(problems.map((p) => `${p.code}: ${p.message} (${p.path.join('.')})`)).toEqual([]);
  }, 60_000);
});
