/**
 * 503 answers with `Retry-After` are sent again, after the delay asked, changes included (a 503
 * keeps nothing), a bounded number of times and for bounded delays; anything else is thrown at
 * once; an event stream refused so waits as long before it reconnects. Against a real listening
 * server (node:http on 127.0.0.1) that refuses a given number of times before it answers, and a
 * real service refusing a change while its VMM is behind.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CoherencyApiError, CoherencyClient } from '../../src/client/index.js';
import { retryAfterMs } from '../../src/client/retry.js';
import { DEFAULT_POLICY } from '../../src/domain/index.js';
import { buildApp } from '../../src/http/app.js';
import { createRuntime } from '../../src/service/runtime.js';
import { MemoryStore } from '../../src/store/memory-store.js';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly body: string;
  readonly at: number;
}

const servers: Server[] = [];
const clients: CoherencyClient[] = [];
const apps: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const a of apps.splice(0)) await a.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A server that answers the first `refusals` requests 503 (with `retryAfter` when given), then 200 with `answer`. */
async function refusing(refusals: number, retryAfter: string | undefined, answer: unknown = { ok: true }): Promise<{ base: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', body, at: performance.now() });
      if (seen.length <= refusals) {
        res.writeHead(503, { 'content-type': 'application/problem+json', ...(retryAfter === undefined ? {} : { 'retry-after': retryAfter }) });
        res.end(JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, code: 'STORE_UNAVAILABLE', detail: 'the store cannot take changes' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function client(base: string, options: ConstructorParameters<typeof CoherencyClient>[1] = {}): CoherencyClient {
  const c = new CoherencyClient(base, options);
  clients.push(c);
  return c;
}

describe('Retry-After', () => {
  it('reads delay-seconds and HTTP dates', () => {
    expect(retryAfterMs('5')).toBe(5000);
    expect(retryAfterMs(' 0 ')).toBe(0);
    expect(retryAfterMs(new Date(Date.UTC(2030, 0, 1, 0, 0, 3)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(3000);
    expect(retryAfterMs(new Date(Date.UTC(2029, 0, 1)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(0);
    expect(retryAfterMs(undefined)).toBeUndefined();
    expect(retryAfterMs('soon')).toBeUndefined();
    expect(retryAfterMs('-1')).toBeUndefined();
  });
});

describe('CoherencyClient retries', () => {
  it('sends a read again after each 503 with Retry-After, waiting as asked, until it is answered', async () => {
    const { base, seen } = await refusing(2, '1', { id: 'vm1' });
    expect(await client(base).getVm('vm1')).toEqual({ id: 'vm1' });
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(['GET /v1/vms/vm1', 'GET /v1/vms/vm1', 'GET /v1/vms/vm1']);
    // Each retry waited out its Retry-After (1 s), less a little for timer granularity.
    expect((seen[1] as Seen).at - (seen[0] as Seen).at).toBeGreaterThanOrEqual(950);
    expect((seen[2] as Seen).at - (seen[1] as Seen).at).toBeGreaterThanOrEqual(950);
  });

  it('sends a change again, the same body: a 503 kept nothing', async () => {
    const { base, seen } = await refusing(2, '0', { flush: { required: false } });
    await client(base).pin('vm1', { iova: '0x0', hpa: '0x1000', length: '0x1000' });
    expect(seen).toHaveLength(3);
    expect(new Set(seen.map((s) => `${s.method} ${s.url} ${s.body}`))).toEqual(new Set(['POST /v1/vms/vm1/pins {"iova":"0x0","hpa":"0x1000","length":"0x1000"}']));
  });

  it('gives up after maxAttempts requests in all and throws the last refusal, with its code and Retry-After', async () => {
    const { base, seen } = await refusing(10, '0');
    const err = await client(base, { retry: { maxAttempts: 4 } }).getPolicy().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CoherencyApiError);
    expect(err).toMatchObject({ status: 503, code: 'STORE_UNAVAILABLE', retryAfterMs: 0 });
    expect(seen).toHaveLength(4);
  });

  it('throws at once a 503 asking for longer than maxDelayMs, one without Retry-After, and maxAttempts 1 never retries', async () => {
    const long = await refusing(1, '30');
    await expect(client(long.base).health()).rejects.toMatchObject({ status: 503, retryAfterMs: 30_000 });
    expect(long.seen).toHaveLength(1);
    const bare = await refusing(1, undefined);
    await expect(client(bare.base).health()).rejects.toMatchObject({ status: 503, code: 'STORE_UNAVAILABLE', retryAfterMs: undefined });
    expect(bare.seen).toHaveLength(1);
    const off = await refusing(1, '0');
    await expect(client(off.base, { retry: { maxAttempts: 1 } }).health()).rejects.toMatchObject({ status: 503 });
    expect(off.seen).toHaveLength(1);
  });

  it('rejects retry options it cannot honour when made', () => {
    expect(() => new CoherencyClient('http://127.0.0.1:1', { retry: { maxAttempts: 0 } })).toThrow(/retry.maxAttempts must be an integer of at least 1/);
    expect(() => new CoherencyClient('http://127.0.0.1:1', { retry: { maxDelayMs: -1 } })).toThrow(/retry.maxDelayMs/);
  });

  it('a change the service refused while its VMM was behind (503 OVERLOADED, Retry-After: 1) is kept once, when retried after the VMM caught up', async () => {
    // At most one flush job of a VM waiting for its acknowledgement: a second flushing pin is refused.
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: [], store: new MemoryStore(), threads: 1, maxUnackedJobs: 1 });
    await runtime.start();
    const app = await buildApp({ runtime });
    apps.push(app);
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const vmm = client(base);
    await vmm.putVm('vm-r', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await vmm.putDomain('vm-r', 'd0', { enforceCacheCoherency: false });
    const first = await vmm.pin('vm-r', { iova: '0x0', hpa: '0x100000000', length: '0x1000' });
    expect(first.flush.jobId).toBeDefined();
    await expect(client(base, { retry: { maxAttempts: 1 } }).pin('vm-r', { iova: '0x1000', hpa: '0x100001000', length: '0x1000' })).rejects.toMatchObject({ status: 503, code: 'OVERLOADED', retryAfterMs: 1000 });
    // Refused, then retried a second later: meanwhile the VMM acknowledges its first flush.
    const second = vmm.pin('vm-r', { iova: '0x1000', hpa: '0x100001000', length: '0x1000' });
    await new Promise((r) => setTimeout(r, 200));
    await vmm.ack(first.flush.jobId as string);
    expect((await second).flush.required).toBe(true);
    expect((await vmm.listPins('vm-r')).items.map((p) => [p.iova, p.length])).toEqual([['0x0', '0x1000'], ['0x1000', '0x1000']]);
    expect((await vmm.listAudit({ vmId: 'vm-r' })).items.map((r) => r.action)).toEqual(['put-vm', 'put-domain', 'pin', 'pin']);
  });

  it("events() waits out a 503's Retry-After before it reconnects, skips kinds it does not know and resumes after their ids", async () => {
    const seen: { at: number; lastEventId: string | undefined }[] = [];
    const server = createServer((req, res) => {
      seen.push({ at: performance.now(), lastEventId: req.headers['last-event-id'] as string | undefined });
      if (seen.length === 1) {
        res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '1' });
        res.end(JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, code: 'NOT_READY', detail: 'restoring' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // A kind from a newer service, then the stream ends; the next connection gets a reset.
      if (seen.length === 2) res.end(': events of VM v\n\nid: e.1\nevent: future-kind\ndata: {"x":1}\n\n');
      else res.write('id: e.2\nevent: reset\ndata: {"vmId":"v","reason":"re-read"}\n\n');
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const c = client(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const stop = new AbortController();
    let first: unknown;
    for await (const event of c.events('v', { signal: stop.signal, retryMs: 10 })) {
      first = event;
      stop.abort();
    }
    expect(first).toEqual({ id: 'e.2', type: 'reset', data: { vmId: 'v', reason: 're-read' } });
    expect(seen.map((s) => s.lastEventId)).toEqual([undefined, undefined, 'e.1']);
    expect((seen[1] as { at: number }).at - (seen[0] as { at: number }).at).toBeGreaterThanOrEqual(950);
  });
});
