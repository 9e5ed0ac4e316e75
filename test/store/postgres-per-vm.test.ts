/**
 * PostgreSQL (real): changes are serialised per VM, not per store. A transaction holding one VM's
 * lock (as a replica's does while it decides) holds back changes to that VM and a change of the
 * quirk list, and nothing else; events are read in an order no late commit can slip behind; and
 * revisions stay tokens a client can pass to any replica.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, parseDomainId, parseQuirkFile, parseVmId, type Command } from '../../src/domain/index.js';
import { createRuntime, type Runtime } from '../../src/service/runtime.js';
import { advisoryLock, PostgresStore } from '../../src/store/postgres-store.js';
import { QUIRKS_EFFECT, type StoredChange } from '../../src/store/state-store.js';
import { dropSchemas, freshSchema, PG_URL } from '../helpers/postgres.js';

const schemas: string[] = [];
const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers) await close();
  await dropSchemas(schemas);
});

function open(label: string): { schema: string; store: PostgresStore } {
  const schema = freshSchema(label);
  schemas.push(schema);
  const store = new PostgresStore({ connectionString: PG_URL, schema });
  closers.push(() => store.close());
  return { schema, store };
}

async function client(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  closers.push(() => c.end());
  return c;
}

/** A change of `vm` (its record only) under sequence number `seq`. */
function change(seq: number, vm: string): StoredChange {
  const command: Command = { type: 'put-vm', vmId: parseVmId(vm === QUIRKS_EFFECT ? 'quirks' : vm), arch: 'x86_64' };
  return { seq, at: 1_700_000_000_000, command, effects: [{ vmId: vm, record: `{"vm":"${vm}"}`, ops: null }] };
}

/** Writes one change of each of `vms` (all: the quirk list) through `store`; resolves with its sequence number. */
function write(store: PostgresStore, vms: readonly string[] | 'all'): Promise<number> {
  let given = 0;
  const scope = vms === 'all' ? [QUIRKS_EFFECT] : vms;
  return store
    .write(vms, new Map(), 1, (_missed, seqs) => {
      given = seqs[0] as number;
      return [{ ...change(given, scope[0] as string), effects: scope.map((vm) => change(given, vm).effects[0] as StoredChange['effects'][number]) }];
    })
    .then(() => given);
}

/** Requests not granted yet for the schema's store lock and for VM `vm`'s lock. */
async function waiting(c: pg.Client, schema: string, vm: string): Promise<[number, number]> {
  const count = async ([classid, objid]: readonly [number, number]): Promise<number> => {
    const res = await c.query<{ n: string }>(`SELECT count(*)::text AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objsubid = 2 AND classid = $1 AND objid = $2`, [classid >>> 0, objid >>> 0]);
    return Number(res.rows[0]?.n);
  };
  return [await count(advisoryLock(schema)), await count(advisoryLock(schema, vm))];
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('PostgreSQL: changes serialised per VM (real PostgreSQL)', () => {
  it('while a transaction holds VM a, a change to VM b commits; changes to a and to the quirk list wait for it, then commit in order', async () => {
    const { schema, store } = open('pervm');
    await store.load();
    const holder = await client();
    await holder.query('BEGIN');
    await holder.query('SELECT pg_advisory_xact_lock_shared($1::int, $2::int)', [...advisoryLock(schema)]);
    await holder.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [...advisoryLock(schema, 'a')]);

    const done: string[] = [];
    const watcher = await client();
    const toA = write(store, ['a']).then((seq) => (done.push('a'), seq));
    await until('the change to a waiting', async () => (await waiting(watcher, schema, 'a'))[1] === 1);
    // b goes ahead while a waits for its lock.
    const toB = await write(store, ['b']);
    done.push('b');
    // The quirk change waits for the whole store (and, queued, holds back changes that ask after it).
    const quirks = write(store, 'all').then((seq) => (done.push('quirks'), seq));
    await until('the quirk change waiting', async () => (await waiting(watcher, schema, 'a'))[0] === 1);
    expect(done).toEqual(['b']);

    await holder.query('COMMIT');
    const [a, q] = await Promise.all([toA, quirks]);
    expect(done).toEqual(['b', 'a', 'quirks']);
    expect(toB).toBeLessThan(a);
    expect(a).toBeLessThan(q);
    const loaded = await store.load();
    expect(loaded.effects.map((e) => [e.seq, e.vmId])).toEqual([
      [toB, 'b'],
      [a, 'a'],
      [q, QUIRKS_EFFECT]
    ]);
    expect(loaded.seq).toBe(q);
  });

  it('an event committed late by a transaction that began first is not skipped by a reader already past later ones', async () => {
    const { schema, store: a } = open('events');
    const b = new PostgresStore({ connectionString: PG_URL, schema });
    closers.push(() => b.close());
    const start = await b.eventsAfter(null);
    const late = await client();
    await late.query('BEGIN');
    await late.query(`INSERT INTO "${schema}".events (origin, vm, body) VALUES ('elsewhere', 'x', '{"late":true}')`);
    await a.publish({ vmId: 'y', body: '{"early":true}' });
    // The early event is stored, but behind the late one's transaction: not read yet, held.
    const first = await b.eventsAfter(start.next);
    expect(first.events).toEqual([]);
    expect(first.held).toBe(true);
    await late.query('COMMIT');
    // Read on (other transactions on the server may hold events back a moment): both, late first.
    const read: string[] = [];
    let at = first.next;
    for (let i = 0; i < 500 && read.length < 2; i++) {
      const next = await b.eventsAfter(at);
      read.push(...next.events.map((e) => e.body));
      at = next.next;
      if (read.length < 2) await new Promise((r) => setTimeout(r, 10));
    }
    expect(read).toEqual(['{"late":true}', '{"early":true}']);
    expect((await b.eventsAfter(at)).events).toEqual([]);
  });
});

describe('flush job records from two replicas at once (real PostgreSQL)', () => {
  it('both keep and forget the same jobs in one statement per turn, in opposite orders, without failing', async () => {
    const { schema, store: a } = open('jobrows');
    const b = new PostgresStore({ connectionString: PG_URL, schema });
    closers.push(() => b.close());
    await a.load();
    const ids = Array.from({ length: 500 }, (_, i) => `fj-${i.toString().padStart(4, "0")}`);
    for (let round = 0; round < 20; round++) {
      const order = round % 2 === 0 ? ids : [...ids].reverse();
      const saves = (store: PostgresStore, list: readonly string[]) => list.map((id) => store.saveJob({ id, vmId: 'vm1', body: `{"round":${round}}`, pairs: null }));
      await Promise.all([...saves(a, order), ...saves(b, [...order].reverse()), a.forgetJobs([`gone-${round}`]), b.forgetJobs([`gone-${round}`])]);
    }
    const jobs = await a.loadJobs();
    expect(jobs.map((j) => j.id)).toEqual(ids);
    expect(new Set(jobs.map((j) => j.body))).toEqual(new Set(['{"round":19}']));
  });
});

describe('revisions across replicas (real PostgreSQL)', () => {
  async function replica(schema: string): Promise<Runtime> {
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile({ quirks: [] }), store: new PostgresStore({ connectionString: PG_URL, schema }), threads: 1 });
    closers.push(() => runtime.close());
    await runtime.start();
    return runtime;
  }

  it('are unique across replicas and increase per VM; minRevision from any answer reads the VM as fresh as that answer', async () => {
    const schema = freshSchema('revisions');
    schemas.push(schema);
    const [a, b] = [await replica(schema), await replica(schema)];
    const x = parseVmId('x');
    const y = parseVmId('y');
    const revisions: number[] = [];
    revisions.push((await a.service.apply({ type: 'put-vm', vmId: x, arch: 'x86_64' })).revision as number);
    revisions.push((await b.service.apply({ type: 'put-vm', vmId: y, arch: 'x86_64' })).revision as number);
    await a.service.apply({ type: 'put-domain', vmId: x, domainId: parseDomainId('d0'), enforceCacheCoherency: true });
    await b.service.apply({ type: 'put-domain', vmId: y, domainId: parseDomainId('d0'), enforceCacheCoherency: true });
    const onX = await b.service.apply({ type: 'pin', vmId: x, ranges: [{ iova: 0, pages: 4, hpa: 0x1000 }] });
    revisions.push(onX.revision as number);
    const onY = await a.service.apply({ type: 'pin', vmId: y, ranges: [{ iova: 8, pages: 2, hpa: 0x2000 }] });
    revisions.push(onY.revision as number);
    expect(new Set(revisions).size).toBe(4);
    // x's changes (made through A, then B) increase.
    expect(revisions[2]).toBeGreaterThan(revisions[0] as number);

    // A has not followed B (no follower here): asked with B's revision it reads x as B left it.
    expect(a.service.pins(x, 0, 10)).toEqual([]);
    await a.service.catchUp(onX.revision as number, x);
    expect(a.service.pins(x, 0, 10).map((p) => p.pages)).toEqual([4]);
    expect(a.service.revisionOf(x)).toBe(onX.revision);
    // A revision from another VM's answer, above every change of x, is answered at once.
    await b.service.catchUp(onY.revision as number, x);
    expect(b.service.revisionOf(x)).toBe(onX.revision);
    await b.service.catchUp(onY.revision as number, y);
    expect(b.service.pins(y, 0, 10).map((p) => p.pages)).toEqual([2]);
  });
});
