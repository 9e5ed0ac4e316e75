/**
 * POST /v1/quirks on two replicas sharing one PostgreSQL (real): the entries are merged into the
 * list in force inside the store's transaction (the quirk list's exclusive lock), after what the
 * other replica stored, so POSTs sent through both at once all keep their entries, and both
 * replicas (and one started afterwards) end with every one. A POST through one replica decides
 * for a VM the other made.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, defaultQuirksFile, parseQuirkFile, quirkToWire } from '../../src/domain/index.js';
import { buildApp } from '../../src/http/app.js';
import { createRuntime } from '../../src/service/runtime.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { dropSchemas, PG_URL, twoReplicas } from '../helpers/postgres.js';
import { json, quirkVm } from '../helpers/app.js';

const SHIPPED = parseQuirkFile(defaultQuirksFile).map(quirkToWire);

const schemas: string[] = [];
const apps: FastifyInstance[] = [];
afterAll(async () => {
  for (const a of apps) await a.close();
  await dropSchemas(schemas);
});

/** A replica serving HTTP (inject), following the other by notification (its safety poll once a minute). */
async function replica(schema: string): Promise<FastifyInstance> {
  const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), store: new PostgresStore({ connectionString: PG_URL, schema }), threads: 1 });
  await runtime.start();
  runtime.service.follow(60_000);
  const app = await buildApp({ runtime });
  apps.push(app);
  return app;
}

type Wire = { vendorId: string; deviceId: string; deviceMask: string; flags: string[] };
interface Answer {
  status: number;
  body: { quirks?: Wire[]; vms?: Record<string, unknown>[]; revision?: number } & Record<string, unknown>;
}

async function call(app: FastifyInstance, method: 'GET' | 'PUT' | 'POST', url: string, payload?: unknown): Promise<Answer> {
  const res = await app.inject({ method, url, ...(payload === undefined ? {} : { headers: json, payload: payload as object }) });
  return { status: res.statusCode, body: res.json() };
}

/** The list replica `app` holds, once it holds `count` entries (it hears of the other's changes by notification). */
async function listOf(app: FastifyInstance, count: number): Promise<Wire[]> {
  let quirks: Wire[] = [];
  for (let i = 0; i < 500 && quirks.length !== count; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 10));
    quirks = (await call(app, 'GET', '/v1/quirks')).body.quirks ?? [];
  }
  return quirks;
}

const entry = (device: number): Wire => ({ vendorId: '0x1d0f', deviceId: `0x${device.toString(16).padStart(4, '0')}`, deviceMask: '0xffff', flags: ['needs-nosnoop'] });

describe('POST /v1/quirks across replicas (real PostgreSQL)', () => {
  it('POSTs sent through both replicas at once all keep their entries, and both replicas end with every one', async () => {
    const [a, b] = await twoReplicas('quirks', schemas, replica);
    const entries = Array.from({ length: 12 }, (_, i) => entry(0x200 + i));
    // Interleaved: even entries through A, odd ones through B, all in flight together.
    const answers = await Promise.all(entries.map((q, i) => call(i % 2 === 0 ? a : b, 'POST', '/v1/quirks', { quirks: [q] })));
    expect(answers.map((r) => r.status)).toEqual(entries.map(() => 200));
    for (const [i, r] of answers.entries()) expect(r.body.quirks).toContainEqual(entries[i]);
    // One change after another, each merged into the list the one before put in force.
    const revisions = answers.map((r) => r.body.revision ?? 0);
    expect(new Set(revisions).size).toBe(entries.length);
    const last = answers[revisions.indexOf(Math.max(...revisions))];
    expect(last?.body.quirks).toHaveLength(SHIPPED.length + entries.length);
    expect(last?.body.quirks?.slice(0, SHIPPED.length)).toEqual(SHIPPED);
    expect(last?.body.quirks?.slice(SHIPPED.length)).toEqual(expect.arrayContaining(entries));

    const count = SHIPPED.length + entries.length;
    expect(await listOf(a, count)).toEqual(last?.body.quirks);
    expect(await listOf(b, count)).toEqual(last?.body.quirks);
    // The store keeps the list each merge put in force (its effect), not only what it asked for:
    // a replica started afterwards (or one that only applies effects) restores every entry.
    const c = await replica(schemas[schemas.length - 1] as string);
    expect(await listOf(c, count)).toEqual(last?.body.quirks);
  });

  it('a POST through one replica answers the replay of a VM made through the other', async () => {
    const [a, b] = await twoReplicas('quirkvm', schemas, replica);
    await quirkVm(a);
    const posted = await call(b, 'POST', '/v1/quirks', { quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'] }] });
    expect(posted.status).toBe(200);
    expect(posted.body.vms).toEqual([
      expect.objectContaining({
        vmId: 'vmq',
        flush: expect.objectContaining({ required: true, cause: 'replay', bytes: '0x200000', ranges: [{ hpa: '0x40000000', length: '0x200000' }], jobId: expect.stringMatching(/^fj-/) as unknown }) as unknown
      })
    ]);
    // A, read at the change's revision, holds the VM exposed and the job B promised.
    const vm = await call(a, 'GET', `/v1/vms/vmq?minRevision=${String(posted.body.revision)}`);
    expect(vm.body).toMatchObject({ domains: [{ id: 'd0', exposed: true }], openFlushJobs: [(posted.body.vms?.[0]?.['flush'] as { jobId: string }).jobId] });
  });
});
