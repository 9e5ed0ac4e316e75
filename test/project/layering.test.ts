/**
 * The decision core stays pure: ESLint refuses I/O and framework imports under src/domain, and
 * no file there imports one today.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

const FORBIDDEN = ['fastify', 'pino', 'undici', 'piscina', 'better-sqlite3', 'pg', 'node:fs', 'fs', 'node:fs/promises'];

describe('layering', () => {
  it('lint rejects fastify, pino, undici, piscina, storage and node:fs imports in src/domain', async () => {
    // The probe is not a file of the TypeScript project, so lint it without type information;
    // the import rule does not need any.
    const eslint = new ESLint({ overrideConfig: [tseslint.configs.disableTypeChecked] });
    const code = FORBIDDEN.map((m, i) => `import * as m${i} from '${m}';`).join('\n') + `\nexport const all = [${FORBIDDEN.map((_m, i) => `m${i}`).join(', ')}];\n`;
    const [result] = await eslint.lintText(code, { filePath: 'src/domain/probe.ts' });
    const restricted = (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports');
    expect(restricted).toHaveLength(FORBIDDEN.length);
    // The same code is fine outside the core.
    const config = (await eslint.calculateConfigForFile('src/http/probe.ts')) as { rules?: Record<string, unknown> };
    expect(config.rules?.['no-restricted-imports']).toBeUndefined();
  });

  it('lint keeps each outer layer to its own: http to the service, store, jobs and sim to the core', async () => {
    const eslint = new ESLint({ overrideConfig: [tseslint.configs.disableTypeChecked] });
    const cases: [string, string, boolean][] = [
      ['src/http/probe.ts', '../store/state-store.js', true],
      ['src/http/probe.ts', '../jobs/flush-jobs.js', true],
      ['src/http/probe.ts', '../service/policy-service.js', false],
      ['src/service/probe.ts', '../http/app.js', true],
      ['src/service/probe.ts', '../store/state-store.js', false],
      ['src/store/probe.ts', '../service/policy-service.js', true],
      ['src/store/probe.ts', '../jobs/flush-jobs.js', true],
      ['src/jobs/probe.ts', '../store/state-store.js', true],
      ['src/sim/probe.ts', '../jobs/flush-jobs.js', true],
      ['src/sim/probe.ts', '../domain/index.js', false],
      ['src/contract/probe.ts', '../http/app.js', true],
      ['src/contract/probe.ts', '../service/policy-service.js', true],
      ['src/contract/probe.ts', '../domain/index.js', false],
      ['src/sim/probe.ts', '../contract/vm.js', false]
    ];
    for (const [file, spec, refused] of cases) {
      const [result] = await eslint.lintText(`import { x } from '${spec}';\nexport const y = x;\n`, { filePath: file });
      const hits = (result?.messages ?? []).filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports');
      expect(hits.length > 0, `${file} importing ${spec}`).toBe(refused);
    }
    // A type may cross where it describes what a layer hands on.
    const [typed] = await eslint.lintText(`import type { X } from '../store/state-store.js';\nexport type Y = X;\n`, { filePath: 'src/http/probe.ts' });
    expect((typed?.messages ?? []).filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports')).toEqual([]);
  });

  it('no file in src/domain imports anything but the core itself and zod', () => {
    const dir = join(import.meta.dirname, '../../src/domain');
    const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    expect(files.some((f) => f.includes('/'))).toBe(true);
    for (const file of files) {
      const text = readFileSync(join(dir, file), 'utf8');
      const depth = file.split('/').length - 1;
      for (const m of text.matchAll(/from '([^']+)'/g)) {
        const spec = m[1] ?? '';
        // Within the core: a sibling, or (from a folder inside it) a module of the core above.
        const inCore = spec.startsWith('./') || (depth > 0 && spec.startsWith('../') && !spec.startsWith('../'.repeat(depth + 1)));
        expect(inCore || spec === 'zod', `${file} imports ${spec}`).toBe(true);
      }
    }
  });
});
