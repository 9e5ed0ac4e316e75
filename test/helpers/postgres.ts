/**
 * A fresh PostgreSQL schema per test run, on the service every machine has (127.0.0.1:5432,
 * database `test`, trust auth). Dropped afterwards.
 */
import pg from 'pg';

export const PG_URL = process.env['TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

export function freshSchema(label: string): string {
  return `t_${label}_${process.pid}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6).toString(36)}`.toLowerCase();
}

export async function dropSchemas(schemas: readonly string[]): Promise<void> {
  if (schemas.length === 0) return;
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** Waits (at most 5 s) until `find` gives something, and gives it. */
export async function until<T>(what: string, find: () => T | undefined): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const found = find();
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Two replicas on a fresh schema (kept in `schemas`, to drop afterwards), both listening before
 * the test starts: their first round sets where they follow from.
 */
export async function twoReplicas<T>(label: string, schemas: string[], replica: (schema: string) => Promise<T>): Promise<[T, T]> {
  const schema = freshSchema(label);
  schemas.push(schema);
  const a = await replica(schema);
  const b = await replica(schema);
  await new Promise((r) => setTimeout(r, 300));
  return [a, b];
}
