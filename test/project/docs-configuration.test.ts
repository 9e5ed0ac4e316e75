/**
 * docs/configuration.md lists every environment variable src/config.ts reads (its EnvSchema), no
 * other, each with the default the schema really gives it: both files are parsed, the schema
 * with the TypeScript compiler, so a variable added or a default changed without its row fails.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');

/** A default as written in the schema: a literal, or a product of literals (`8 * 1024 * 1024`). */
function evaluate(node: ts.Expression): string | number | boolean {
  if (ts.isNumericLiteral(node)) return Number(node.text);
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
  if (node.kind === ts.SyntaxKind.TrueKeyword) return true;
  if (node.kind === ts.SyntaxKind.FalseKeyword) return false;
  if (ts.isParenthesizedExpression(node)) return evaluate(node.expression);
  if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.AsteriskToken) return Number(evaluate(node.left)) * Number(evaluate(node.right));
  throw new Error(`cannot read the default ${node.getText()}: teach this test its form`);
}

/** The `.default(...)` argument of a schema expression such as `z.coerce.number().int().default(8080)`, if any. */
function defaultOf(node: ts.Expression): ts.Expression | undefined {
  let at: ts.Expression = node;
  while (ts.isCallExpression(at) && ts.isPropertyAccessExpression(at.expression)) {
    if (at.expression.name.text === 'default') return at.arguments[0];
    at = at.expression.expression;
  }
  return undefined;
}

/** Every variable of EnvSchema and its default (undefined: none). */
function schemaVariables(): Map<string, string | number | boolean | undefined> {
  const file = ts.createSourceFile('config.ts', readFileSync(join(root, 'src/config.ts'), 'utf8'), ts.ScriptTarget.Latest, true);
  const variables = new Map<string, string | number | boolean | undefined>();
  const visit = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && node.name.getText() === 'EnvSchema' && node.initializer !== undefined && ts.isCallExpression(node.initializer)) {
      const shape = node.initializer.arguments[0];
      if (shape === undefined || !ts.isObjectLiteralExpression(shape)) throw new Error('EnvSchema is not z.object({...})');
      for (const property of shape.properties) {
        if (!ts.isPropertyAssignment(property)) throw new Error(`EnvSchema: ${property.getText()} is not a plain property`);
        const value = defaultOf(property.initializer);
        variables.set(property.name.getText(), value === undefined ? undefined : evaluate(value));
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return variables;
}

/** The rows of the configuration table: variable -> default cell, as written. */
function documentedVariables(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of readFileSync(join(root, 'docs/configuration.md'), 'utf8').split('\n')) {
    const row = /^\| `([A-Z][A-Z0-9_]*)` \| (.*?) \| /.exec(line);
    if (row?.[1] !== undefined && row[2] !== undefined) rows.set(row[1], row[2]);
  }
  return rows;
}

describe('docs/configuration.md', () => {
  const schema = schemaVariables();
  const documented = documentedVariables();

  it('reads a schema of environment variables (the parse found them)', () => {
    expect(schema.get('PORT')).toBe(8080);
    expect(schema.get('HOST')).toBe('127.0.0.1');
  });

  it('lists every variable of src/config.ts, and no other', () => {
    expect([...documented.keys()].sort()).toEqual([...schema.keys()].sort());
  });

  it('gives each its true default; a variable without one shows what happens instead, not a value', () => {
    for (const [name, value] of schema) {
      const cell = documented.get(name);
      if (cell === undefined) continue;
      if (value === undefined) expect(cell, name).not.toMatch(/^`[^`]*`$/);
      else expect(cell, name).toBe(`\`${String(value)}\``);
    }
  });
});
