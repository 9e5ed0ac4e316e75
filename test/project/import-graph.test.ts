/**
 * The source is a layered graph. No file reaches itself through its imports (a circle makes the
 * order modules load in decide what they see, and welds layers into one), and no folder of src/
 * imports one further out than itself: the core knows nothing of what uses it. Every static
 * import and re-export counts, `import type` included; ESLint (eslint.config.js) guards which
 * layer may name which, this test the shape of the whole.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

/**
 * Each folder of src/ (and each top-level file) by rank, from the core outwards. A file may import
 * from its own folder and from lower ranks; never from a higher rank, nor from another folder of
 * its own rank: store, jobs and sim know the core and nothing of each other, and the HTTP layer
 * and the client both speak the contract without knowing one another. The contract describes the
 * API from the core's constants and the simulator's reference traces; worker-file.ts locates
 * worker scripts for the layers that run some, and knows nothing of ours.
 */
const RANK: Readonly<Record<string, number>> = {
  domain: 0,
  'worker-file.ts': 0,
  store: 1,
  jobs: 1,
  sim: 1,
  contract: 2,
  service: 3,
  http: 4,
  client: 4,
  'config.ts': 5,
  'server.ts': 6,
  'index.ts': 6
};

interface Edge {
  readonly from: string;
  readonly to: string;
  /** `import type` / `export type`: erased from the emitted JavaScript. */
  readonly typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The file a relative specifier names: `x.js` is `x.ts`, a folder (or `dir/index.js`) its index.ts. */
function resolveSpecifier(from: string, spec: string): string | null {
  const base = resolve(from, '..', spec);
  const candidates = spec.endsWith('.js') ? [base.slice(0, -3) + '.ts'] : [base, base + '.ts', join(base, 'index.ts')];
  for (const candidate of candidates) {
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // Not this one: try the next form.
    }
  }
  return null;
}

/** Every relative static import and re-export of `file`, resolved. */
function importsOf(file: string): { spec: string; to: string | null; typeOnly: boolean }[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: { spec: string; to: string | null; typeOnly: boolean }[] = [];
  for (const statement of source.statements) {
    let specifier: ts.Expression | undefined;
    let typeOnly = false;
    if (ts.isImportDeclaration(statement)) {
      specifier = statement.moduleSpecifier;
      typeOnly = statement.importClause?.isTypeOnly === true;
    } else if (ts.isExportDeclaration(statement)) {
      specifier = statement.moduleSpecifier;
      typeOnly = statement.isTypeOnly;
    }
    if (specifier === undefined || !ts.isStringLiteral(specifier) || !specifier.text.startsWith('.')) continue;
    const spec = specifier.text;
    // Data files (the default quirk list) import nothing.
    if (spec.endsWith('.json')) continue;
    out.push({ spec, to: resolveSpecifier(file, spec), typeOnly });
  }
  return out;
}

const name = (file: string): string => relative(SRC, file).split(sep).join('/');
const unit = (file: string): string => name(file).split('/')[0] as string;

const files = sourceFiles(SRC).sort();
const unresolved: string[] = [];
const edges: Edge[] = [];
for (const file of files) {
  for (const i of importsOf(file)) {
    if (i.to === null) unresolved.push(`${name(file)} imports ${i.spec}, which names no file`);
    else if (i.to.startsWith(SRC + sep)) edges.push({ from: file, to: i.to, typeOnly: i.typeOnly });
  }
}

/** Every circle in `graph`, as paths `a.ts -> b.ts -> a.ts` (one per import that closes one). */
function cycles(graph: readonly Edge[]): string[] {
  const next = new Map<string, string[]>();
  for (const e of graph) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const found: string[] = [];
  const done = new Set<string>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const visit = (file: string): void => {
    stack.push(file);
    onStack.add(file);
    for (const to of next.get(file) ?? []) {
      if (onStack.has(to)) found.push([...stack.slice(stack.indexOf(to)), to].map(name).join(' -> '));
      else if (!done.has(to)) visit(to);
    }
    stack.pop();
    onStack.delete(file);
    done.add(file);
  };
  for (const file of next.keys()) if (!done.has(file)) visit(file);
  return found;
}

/** The imports of `graph` that point outwards, or across to another folder of the same rank. */
function upward(graph: readonly Edge[]): string[] {
  return graph
    .filter((e) => unit(e.from) !== unit(e.to) && (RANK[unit(e.from)] ?? -1) <= (RANK[unit(e.to)] ?? -1))
    .map((e) => `${name(e.from)} -> ${name(e.to)}${e.typeOnly ? ' (type only)' : ''}`);
}

describe('import graph of src/', () => {
  it('resolves every relative import to a file', () => {
    expect(unresolved).toEqual([]);
    // The walk sees the code: the core and the layers around it all import something.
    expect(edges.length).toBeGreaterThan(100);
  });

  it('has no circle', () => {
    const found = cycles(edges);
    expect(found, `import circles:\n${found.join('\n')}`).toEqual([]);
  });

  it('has no import from a folder to one further out, nor between folders of one rank', () => {
    for (const file of files) expect(RANK[unit(file)], `${name(file)}: src/${unit(file)} has no rank in this test`).toBeDefined();
    const found = upward(edges);
    expect(found, `imports against the layering:\n${found.join('\n')}`).toEqual([]);
  });

  it('would report a circle and an import against the layering', () => {
    // The checks above pass on an empty graph too: they must fail on a bad one.
    const at = (file: string): string => join(SRC, file);
    const bad: Edge[] = [
      { from: at('domain/a.ts'), to: at('domain/b.ts'), typeOnly: false },
      { from: at('domain/b.ts'), to: at('domain/a.ts'), typeOnly: true },
      { from: at('domain/b.ts'), to: at('http/app.ts'), typeOnly: false },
      { from: at('store/s.ts'), to: at('jobs/j.ts'), typeOnly: true },
      { from: at('http/app.ts'), to: at('domain/c.ts'), typeOnly: false }
    ];
    expect(cycles(bad)).toEqual(['domain/a.ts -> domain/b.ts -> domain/a.ts']);
    expect(upward(bad)).toEqual(['domain/b.ts -> http/app.ts', 'store/s.ts -> jobs/j.ts (type only)']);
  });
});
