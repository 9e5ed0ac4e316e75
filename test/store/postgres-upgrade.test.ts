/**
 * Upgrading a PostgreSQL schema written by the previous release (its 14 migrations: one global
 * sequence in `meta`, events positioned by `n`, a position-based events floor) to changes
 * serialised per VM (real PostgreSQL). The state comes back as decided, new changes get
 * sequence numbers above every old one, and a replica reading events is not told they are gone.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, parseDomainId, parseQuirkFile, parseVmId } from '../../src/domain/index.js';
import { createRuntime, type Runtime } from '../../src/service/runtime.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { MIGRATIONS, PostgresStore } from '../../src/store/postgres-store.js';
import { dropSchemas, freshSchema, PG_URL } from '../helpers/postgres.js';

/** Migrations the previous release ran. */
const PREVIOUS = 14;
const schemas: string[] = [];
const runtimes: Runtime[] = [];
afterAll(async () => {
  for (const r of runtimes) await r.close();
  await dropSchemas(schemas);
});

const vmId = parseVmId('old');

describe('upgrading a PostgreSQL schema of the previous release', () => {
  it('keeps the decided state, numbers new changes above the old ones, and reads on without a reset', async () => {
    // The decided state of a few changes, as the previous release stored it (effects under a global sequence).
    const quirks = parseQuirkFile({ quirks: [] });
    const memory = new MemoryStore();
    const source = createRuntime({ defaults: DEFAULT_POLICY, quirks, store: memory, threads: 1 });
    await source.start();
    await source.service.apply({ type: 'put-vm', vmId, arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await source.service.apply({ type: 'put-domain', vmId, domainId: parseDomainId('d0'), enforceCacheCoherency: false });
    await source.service.apply({ type: 'pin', vmId, ranges: [{ iova: 0, pages: 16, hpa: 0x1000 }] });
    const last = await source.service.apply({ type: 'pin', vmId, ranges: [{ iova: 64, pages: 4, hpa: 0x9000 }] });
    const decided = await memory.load();
    const expected = source.service.pins(vmId, 0, 100);
    await source.close();

    const schema = freshSchema('upgrade');
    schemas.push(schema);
    const t = (table: string): string => `"${schema}".${table}`;
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      await c.query(`CREATE SCHEMA "${schema}"`);
      await c.query(`CREATE TABLE ${t('schema_version')} (version INTEGER NOT NULL)`);
      await c.query(`INSERT INTO ${t('schema_version')} (version) VALUES ($1)`, [PREVIOUS]);
      for (const migration of MIGRATIONS.slice(0, PREVIOUS)) await c.query(migration(t));
      for (const e of decided.effects) {
        await c.query(`INSERT INTO ${t('effects')} (seq, vm, record, ops) VALUES ($1, $2, $3, $4)`, [e.seq, e.vmId, e.record, e.ops === null ? null : Buffer.from(e.ops.buffer, e.ops.byteOffset, e.ops.byteLength)]);
      }
      await c.query(`INSERT INTO ${t('meta')} (key, value) VALUES ('seq', $1), ('floor', '0'), ('events_floor', '900000'), ('quirks', $2)`, [String(decided.seq), JSON.stringify({ quirks: [] })]);
      await c.query(`INSERT INTO ${t('events')} (n, origin, vm, body) VALUES (900001, 'previous', 'old', '{}')`);
    } finally {
      await c.end();
    }

    const replica = async (): Promise<Runtime> => {
      const r = createRuntime({ defaults: DEFAULT_POLICY, quirks, store: new PostgresStore({ connectionString: PG_URL, schema }), threads: 1 });
      runtimes.push(r);
      await r.start();
      return r;
    };
    const a = await replica();
    expect(a.service.pins(vmId, 0, 100)).toEqual(expected);
    expect(a.service.revisionOf(vmId)).toBe(last.revision);

    const b = await replica();
    const resets: unknown[] = [];
    b.service.events.subscribe(vmId, undefined, (e) => {
      if (e.type === 'reset') resets.push(e);
    });
    b.service.follow(60_000);
    await new Promise((r) => setTimeout(r, 200));
    const next = await a.service.apply({ type: 'pin', vmId, ranges: [{ iova: 128, pages: 1, hpa: 0x20000 }] });
    expect(next.revision).toBeGreaterThan(last.revision as number);
    await b.service.catchUp(next.revision as number, vmId);
    expect(b.service.pins(vmId, 0, 100)).toHaveLength(expected.length + 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(resets).toEqual([]);
  });
});
