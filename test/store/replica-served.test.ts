/**
 * A replica applies what it serves (real PostgreSQL, two replicas following each other by
 * notification only: their safety poll is a minute). A change through replica A to a VM that
 * replica B was never asked about costs B no query; B's first request about it (a decision, a
 * read, an event stream) catches up on it first and answers from A's latest state; B then
 * follows the VM, and stops following it once it has not been asked about for the window.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, parseDomainId, parsePciAddress, parseQuirkFile, parseVmId } from '../../src/domain/index.js';
import { buildApp } from '../../src/http/app.js';
import { SERVE_WINDOW_MS } from '../../src/service/commit/served.js';
import { createRuntime, type Runtime } from '../../src/service/runtime.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { movedBy, noticeOf } from '../../src/store/postgres/change-listener.js';
import { dropSchemas, PG_URL, twoReplicas, until } from '../helpers/postgres.js';

const schemas: string[] = [];
const apps: FastifyInstance[] = [];
afterAll(async () => {
  for (const a of apps) await a.close();
  await dropSchemas(schemas);
});

interface Replica {
  readonly runtime: Runtime;
  readonly app: FastifyInstance;
  /** Queries of what other replicas stored (changes and events) this replica made. */
  readonly reads: { since: number; events: number };
  /** Moves this replica's clock on (ms). */
  advance(ms: number): void;
}

/** A replica whose reads of the others' changes and events are counted, with a clock of its own. */
async function replica(schema: string): Promise<Replica> {
  const store = new PostgresStore({ connectionString: PG_URL, schema });
  const reads = { since: 0, events: 0 };
  const since = store.since.bind(store);
  const eventsAfter = store.eventsAfter.bind(store);
  store.since = (...args) => {
    reads.since++;
    return since(...args);
  };
  store.eventsAfter = (...args) => {
    reads.events++;
    return eventsAfter(...args);
  };
  let offset = 0;
  const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile({ quirks: [] }), store, threads: 1, clock: () => Date.now() + offset });
  await runtime.start();
  runtime.service.follow(60_000);
  const app = await buildApp({ runtime });
  apps.push(app);
  return { runtime, app, reads, advance: (ms) => (offset += ms) };
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300));
const vmId = parseVmId('vms1');
const d0 = parseDomainId('d0');
const NIC = parsePciAddress('0000:01:00.0');

/** The VM through `a`: a non-coherent domain and two pages pinned. Returns the last revision. */
async function made(a: Replica): Promise<number> {
  await a.runtime.service.apply({ type: 'put-vm', vmId, arch: 'x86_64', policy: {} });
  await a.runtime.service.apply({ type: 'put-domain', vmId, domainId: d0, enforceCacheCoherency: false });
  await a.runtime.service.apply({ type: 'pin', vmId, ranges: [{ iova: 0, pages: 1, hpa: 0x1000 }] });
  return (await a.runtime.service.apply({ type: 'pin', vmId, ranges: [{ iova: 4, pages: 2, hpa: 0x2000 }] })).revision as number;
}

const query = { op: 'map', ranges: [{ iova: '0x0', length: '0x1000' }, { iova: '0x10000', length: '0x1000' }] };

describe('a replica applies what it serves (real PostgreSQL)', () => {
  it('a change through A to a VM B was never asked about costs B no query; B\'s first decision and reads answer from A\'s latest state', async () => {
    const [a, b] = await twoReplicas('served_first', schemas, replica);
    const before = { ...b.reads };
    const revision = await made(a);
    await settle();
    // Notified of four changes of a VM it does not serve: B read nothing, and holds nothing of it.
    expect(b.reads).toEqual(before);
    expect(b.runtime.service.state.vms.has(vmId)).toBe(false);

    // The decision route without minRevision: B catches up on the VM first (one query).
    const onA = await a.app.inject({ method: 'POST', url: `/v1/vms/${vmId}/decisions/flush`, payload: query });
    const onB = await b.app.inject({ method: 'POST', url: `/v1/vms/${vmId}/decisions/flush`, payload: query });
    expect(onA.statusCode).toBe(200);
    expect(onB.statusCode).toBe(200);
    expect(onB.json()).toEqual(onA.json());
    expect(onB.json()).not.toHaveProperty('failClosed');
    expect(b.reads.since).toBe(before.since + 1);
    // Served from now on: the next decision is answered from memory.
    await b.app.inject({ method: 'POST', url: `/v1/vms/${vmId}/decisions/flush`, payload: query });
    expect(b.reads.since).toBe(before.since + 1);
    const vmOnB = await b.app.inject({ method: 'GET', url: `/v1/vms/${vmId}` });
    expect(vmOnB.json()).toMatchObject({ id: vmId, revision });
    const pins = await b.app.inject({ method: 'GET', url: `/v1/vms/${vmId}/pins` });
    expect(pins.json<{ items: unknown[] }>().items).toHaveLength(2);

    // B follows it now: A's next change reaches B without a request.
    const next = (await a.runtime.service.apply({ type: 'unpin', vmId, ranges: [{ iova: 0, pages: 1 }] })).revision as number;
    await until("A's unpin on B", () => (b.runtime.service.state.vms.get(vmId)?.revision === next ? true : undefined));
  });

  it('a read or a dry run about a VM B does not serve answers from A\'s latest state; a listing catches up on every VM', async () => {
    const [a, b] = await twoReplicas('served_reads', schemas, replica);
    const other = parseVmId('vms2');
    await a.runtime.service.apply({ type: 'put-vm', vmId: other, arch: 'x86_64', policy: {} });
    const revision = await made(a);
    await settle();
    expect(b.runtime.service.state.vms.has(vmId)).toBe(false);
    const pins = await b.app.inject({ method: 'GET', url: `/v1/vms/${vmId}/pins` });
    expect(pins.statusCode).toBe(200);
    expect(pins.json<{ items: unknown[] }>().items).toHaveLength(2);
    expect(b.runtime.service.revisionOf(vmId)).toBe(revision);
    // The dry run of a DEVCTL write about a VM never asked about (here after A made it): as A answers it.
    const third = parseVmId('vms3');
    await a.runtime.service.apply({ type: 'put-vm', vmId: third, arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    await a.runtime.service.apply({ type: 'put-domain', vmId: third, domainId: d0, enforceCacheCoherency: false });
    await a.runtime.service.apply({ type: 'pin', vmId: third, ranges: [{ iova: 0, pages: 1, hpa: 0x1000 }] });
    await a.runtime.service.apply({ type: 'put-device', vmId: third, device: { bdf: NIC, domainId: d0, vendorId: 0x10ee, deviceId: 0x903f, function: 'pf', physfn: null, nosnoop: 'disabled' } });
    await settle();
    const write = { type: 'devctl' as const, vmId: third, bdf: NIC, write: { nosnoopEnable: true }, dryRun: true };
    const dryB = await b.runtime.service.apply(write);
    const dryA = await a.runtime.service.apply(write);
    expect(dryB.failClosed).toBeUndefined();
    expect(dryB.decision).toEqual(dryA.decision);
    expect(dryB.decision.flush.required).toBe(true);
    // A listing of every VM: all three, as A holds them.
    const list = await b.app.inject({ method: 'GET', url: '/v1/vms' });
    expect(list.json<{ items: { id: string; revision: number }[] }>().items.map((v) => v.id)).toEqual([vmId, other, third]);
  });

  it("a subscriber on B of a VM B was never asked about gets the VM (not 404) and A's changes as events", async () => {
    const [a, b] = await twoReplicas('served_events', schemas, replica);
    await made(a);
    await settle();
    await b.app.listen({ port: 0, host: '127.0.0.1' });
    const address = b.app.server.address() as { port: number };
    const abort = new AbortController();
    const res = await fetch(`http://127.0.0.1:${address.port}/v1/vms/${vmId}/events`, { signal: abort.signal });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    const read = (async () => {
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        text += decoder.decode(value);
      }
    })();
    try {
      await settle();
      const changed = (await a.runtime.service.apply({ type: 'pin', vmId, ranges: [{ iova: 16, pages: 1, hpa: 0x3000 }] }, 'vmm-a')).revision as number;
      await until('the decision on B', () => (text.includes(`"revision":${changed}`) ? true : undefined));
      expect(text).toContain('event: decision');
      expect(text).toContain('"actor":"vmm-a"');
    } finally {
      abort.abort();
      await read;
    }
  });

  it('B stops following a VM it has not been asked about for the window, and catches up on it again when asked', async () => {
    const [a, b] = await twoReplicas('served_window', schemas, replica);
    await made(a);
    const vm = await b.app.inject({ method: 'GET', url: `/v1/vms/${vmId}` });
    expect(vm.statusCode).toBe(200);
    const followed = (await a.runtime.service.apply({ type: 'pin', vmId, ranges: [{ iova: 16, pages: 1, hpa: 0x3000 }] })).revision as number;
    await until("A's pin on B", () => (b.runtime.service.state.vms.get(vmId)?.revision === followed ? true : undefined));

    // The window passes without a request about the VM: B's next round lets it go.
    b.advance(SERVE_WINDOW_MS + 1000);
    const last = (await a.runtime.service.apply({ type: 'pin', vmId, ranges: [{ iova: 20, pages: 1, hpa: 0x4000 }] })).revision as number;
    await settle();
    const before = { ...b.reads };
    const unfollowed = (await a.runtime.service.apply({ type: 'pin', vmId, ranges: [{ iova: 24, pages: 1, hpa: 0x5000 }] })).revision as number;
    await settle();
    expect(b.reads).toEqual(before);
    expect(b.runtime.service.state.vms.get(vmId)?.revision ?? 0).toBeLessThan(unfollowed);
    expect(unfollowed).toBeGreaterThan(last);

    // Asked again: caught up first, then followed.
    const again = await b.app.inject({ method: 'GET', url: `/v1/vms/${vmId}` });
    expect(again.json()).toMatchObject({ revision: unfollowed });
    expect(b.reads.since).toBe(before.since + 1);
  });
});

describe('notifications name the VMs changed', () => {
  it('a short list is named; a long one, or the quirk list, is every VM; an earlier version\'s payload is every VM', () => {
    expect(noticeOf('o', ['a', 'b', 'a'])).toBe('o a b');
    expect(movedBy('o a b', 'p')).toEqual(['a', 'b']);
    expect(movedBy('o a b', 'o')).toBeUndefined();
    expect(movedBy(noticeOf('o', ['a', '']), 'p')).toBeNull();
    const many = Array.from({ length: 1000 }, (_, i) => `vm-with-a-long-name-${i}`);
    expect(noticeOf('o', many)).toBe('o *');
    expect(movedBy('o *', 'p')).toBeNull();
    expect(movedBy('o', 'p')).toBeNull();
  });
});
