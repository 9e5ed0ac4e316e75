/**
 * docs/security.md's token file is one the server accepts, with the scopes the page names, and its
 * commands make a token and the `sha256:` line that authenticates it (run with bash).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCOPES, TokenTable } from '../../src/http/auth.js';

const page = readFileSync(join(import.meta.dirname, '../../docs/security.md'), 'utf8');

describe('docs/security.md', () => {
  it('shows a token file the server accepts, in the scopes it names', () => {
    const file = JSON.parse(/```json\n([\s\S]*?)```/.exec(page)?.[1] ?? '') as { scopes: string[] }[];
    expect(new TokenTable(file).size).toBe(file.length);
    expect(file.flatMap((e) => e.scopes).every((s) => (SCOPES as readonly string[]).includes(s))).toBe(true);
    for (const scope of SCOPES) expect(page).toContain(`\`${scope}\` (`);
  });

  it("makes a token and the file's line for it: the server authenticates that token by that line", () => {
    const lines = (/```sh\n([\s\S]*?)```/.exec(page)?.[1] ?? '').trim().split('\n');
    expect(lines).toHaveLength(2);
    // The same commands, printing the token too, so the test can present it.
    const [token, line] = execFileSync('bash', ['--noprofile', '--norc', '-c', `${lines[0] ?? ''}\necho "$token"\n${lines[1] ?? ''}`], { encoding: 'utf8' }).trim().split('\n');
    expect(line).toMatch(/^sha256:[0-9a-f]{64}$/);
    const table = new TokenTable([{ id: 'ops', token: line, scopes: ['admin'] }]);
    expect(table.authenticate(token ?? '')?.id).toBe('ops');
    expect(table.authenticate(`${token ?? ''}x`)).toBeUndefined();
  });
});
