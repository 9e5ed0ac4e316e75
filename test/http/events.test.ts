/**
 * GET /v1/vms/{vmId}/events against a real listening server: a flush caused by someone else
 * reaches the VM's VMM on its stream, the VMM acknowledges it, Last-Event-ID resumes without
 * loss, an id no longer held answers `reset`, idle streams get heartbeats, a token scoped to
 * other VMs cannot subscribe, and every kind of event is what the OpenAPI document says it is.
 */
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { TokenTable } from '../../src/http/auth.js';
import { build } from '../helpers/app.js';
import { documentedEventData, eventStreamMedia, problemsOf } from '../helpers/openapi-document.js';

interface SseEvent {
  id: string;
  event: string;
  data: Record<string, unknown> & { flush?: { jobId?: string; cause?: string; after?: string[] }; state?: string; id?: string };
}

/** An open event stream: events as they come, and comment lines counted. */
class Stream {
  readonly events: SseEvent[] = [];
  comments = 0;
  readonly #controller = new AbortController();
  readonly status: Promise<number>;
  #buffer = '';

  constructor(url: string, headers: Record<string, string> = {}) {
    this.status = fetch(url, { headers, signal: this.#controller.signal }).then((res) => {
      void this.#read(res);
      return res.status;
    });
  }

  async #read(res: Response): Promise<void> {
    if (res.body === null) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) {
        this.#buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let at: number;
        while ((at = this.#buffer.indexOf('\n\n')) >= 0) {
          const frame = this.#buffer.slice(0, at);
          this.#buffer = this.#buffer.slice(at + 2);
          if (frame.startsWith(':')) {
            this.comments++;
            continue;
          }
          const fields = Object.fromEntries(frame.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]));
          this.events.push({ id: fields['id'] ?? '', event: fields['event'] ?? '', data: JSON.parse(fields['data'] ?? '{}') as SseEvent['data'] });
        }
      }
    } catch {
      // aborted
    }
  }

  /** Waits (at most 5 s) until `predicate` holds for an event, and returns it. */
  async next(predicate: (e: SseEvent) => boolean): Promise<SseEvent> {
    for (let i = 0; i < 500; i++) {
      const found = this.events.find(predicate);
      if (found !== undefined) return found;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`no such event; got ${JSON.stringify(this.events.map((e) => [e.event, e.data.state ?? e.data['command']]))}`);
  }

  close(): void {
    this.#controller.abort();
  }
}

let app: FastifyInstance | undefined;
const streams: Stream[] = [];
afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  await app?.close();
  app = undefined;
});

async function serve(options: Parameters<typeof build>[0] = {}): Promise<{ a: FastifyInstance; base: string }> {
  const a = await build(options);
  app = a;
  const base = await a.listen({ host: '127.0.0.1', port: 0 });
  return { a, base };
}

async function call(base: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(base + path, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  });
  const text = await res.text();
  if (res.status >= 300 && res.status !== 403) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

function open(url: string, headers?: Record<string, string>): Stream {
  const s = new Stream(url, headers);
  streams.push(s);
  return s;
}

/** vmq: trap with onEnable deny, a non-coherent domain, a device with the bit clear, a 2 MiB pin (no flush). */
async function quirkVm(base: string): Promise<void> {
  await call(base, 'PUT', '/v1/vms/vmq', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'deny' } });
  await call(base, 'PUT', '/v1/vms/vmq/domains/d0', { enforceCacheCoherency: false });
  await call(base, 'PUT', '/v1/vms/vmq/devices/0000:01:00.0', { domainId: 'd0', vendorId: '0x1d0f', deviceId: '0x1234', function: 'pf', nosnoop: 'disabled' });
  await call(base, 'POST', '/v1/vms/vmq/pins', { iova: '0x0', hpa: '0x40000000', length: '0x200000' });
}

describe('VM event streams', () => {
  it("an operator's quirk change reaches the VM's VMM as a decision and a pending job; its ack follows", async () => {
    const { base } = await serve();
    await quirkVm(base);
    const stream = open(`${base}/v1/vms/vmq/events`);
    expect(await stream.status).toBe(200);
    await call(base, 'PUT', '/v1/quirks', { quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'] }] });
    const decision = await stream.next((e) => e.event === 'decision');
    expect(decision.data).toMatchObject({ vmId: 'vmq', command: 'put-quirks', actor: 'anonymous', flush: { required: true, cause: 'replay', when: 'before-map', bytes: '0x200000', ranges: [{ hpa: '0x40000000', length: '0x200000' }] } });
    const jobId = decision.data.flush?.jobId as string;
    expect(jobId).toMatch(/^fj-/);
    const pending = await stream.next((e) => e.event === 'flush-job' && e.data.state === 'pending');
    expect(pending.data).toMatchObject({ id: jobId, vmId: 'vmq', cause: 'replay', state: 'pending' });
    await call(base, 'POST', `/v1/flush-jobs/${jobId}/ack`, {});
    expect((await stream.next((e) => e.event === 'flush-job' && e.data.state === 'acknowledged')).data.id).toBe(jobId);
    // Event ids grow in the order the events were sent.
    const ids = stream.events.map((e) => Number(e.id.split('.')[1]));
    expect([...ids].sort((x, y) => x - y)).toEqual(ids);
  });

  it('Last-Event-ID resumes without loss or repeat; policy and deleted events; an id no longer held answers reset', async () => {
    const { base } = await serve();
    await quirkVm(base);
    const first = open(`${base}/v1/vms/vmq/events`);
    expect(await first.status).toBe(200);
    await call(base, 'POST', '/v1/vms/vmq/pins', { iova: '0x400000', hpa: '0x80000000', length: '0x1000' });
    const seen = await first.next((e) => e.event === 'decision' && e.data['command'] === 'pin');
    first.close();
    // Missed while away: an unpin and a policy change.
    await call(base, 'POST', '/v1/vms/vmq/unpins', { iova: '0x400000', length: '0x1000' });
    await call(base, 'PUT', '/v1/vms/vmq', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    const again = open(`${base}/v1/vms/vmq/events`, { 'last-event-id': seen.id });
    expect(await again.status).toBe(200);
    const policy = await again.next((e) => e.event === 'policy');
    expect(policy.data).toMatchObject({ vmId: 'vmq', actor: 'anonymous' });
    await again.next((e) => e.event === 'flush-job' && e.data.state === 'pending');
    // The pessimistic policy replays the 2 MiB pin: its job follows the decision naming it.
    expect(again.events.map((e) => `${e.event}:${(e.data['command'] as string | undefined) ?? e.data.state ?? ''}`)).toEqual(['decision:unpin', 'policy:', 'flush-job:pending']);
    expect(again.events[2]?.data.id).toBe(policy.data.flush?.jobId);
    // The deletion reaches the open stream.
    await call(base, 'DELETE', '/v1/vms/vmq');
    expect((await again.next((e) => e.event === 'deleted')).data).toMatchObject({ vmId: 'vmq' });
    // An id from an earlier start of the service, or one the VM's log no longer holds: reset.
    await quirkVm(base);
    const stale = open(`${base}/v1/vms/vmq/events`, { 'last-event-id': '1.1' });
    expect(await stale.status).toBe(200);
    expect((await stale.next(() => true)).event).toBe('reset');
    expect(await open(`${base}/v1/vms/nope/events`).status).toBe(404);
  });

  it('every kind of event validates against the schema the OpenAPI document gives its data (dropped: below)', async () => {
    const { base } = await serve();
    await quirkVm(base);
    const stream = open(`${base}/v1/vms/vmq/events`);
    expect(await stream.status).toBe(200);
    // A quirk change with its replay job, pending then acknowledged (no body: it is optional).
    await call(base, 'PUT', '/v1/quirks', { quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'] }] });
    const replay = await stream.next((e) => e.event === 'flush-job' && e.data.state === 'pending');
    await call(base, 'POST', `/v1/flush-jobs/${replay.data.id as string}/ack`);
    await stream.next((e) => e.event === 'flush-job' && e.data.state === 'acknowledged');
    // A trapped enable (the DEVCTL outcome rides on the decision), a reset (no body), a pin, an unpin.
    await call(base, 'POST', '/v1/vms/vmq/devices/0000:01:00.0/devctl', { nosnoopEnable: true });
    await call(base, 'POST', '/v1/vms/vmq/devices/0000:01:00.0/reset');
    await call(base, 'POST', '/v1/vms/vmq/pins', { iova: '0x400000', hpa: '0x80000000', length: '0x1000' });
    await call(base, 'POST', '/v1/vms/vmq/unpins', { iova: '0x400000', length: '0x1000' });
    // A policy that replays what is pinned, then the teardown.
    await call(base, 'PUT', '/v1/vms/vmq', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await call(base, 'DELETE', '/v1/vms/vmq');
    await stream.next((e) => e.event === 'deleted');
    // The VM made again (its stream stays open: its domain and device reach it), then a resume
    // from an id the service never gave.
    await quirkVm(base);
    const stale = open(`${base}/v1/vms/vmq/events`, { 'last-event-id': '1.1' });
    expect(await stale.status).toBe(200);
    await stale.next((e) => e.event === 'reset');

    const events = [...stream.events, ...stale.events];
    expect(new Set(events.map((e) => e.event))).toEqual(new Set(['decision', 'policy', 'deleted', 'flush-job', 'reset']));
    expect(new Set(events.map((e) => e.data['command']).filter((c) => c !== undefined))).toEqual(new Set(['put-quirks', 'devctl', 'reset-device', 'pin', 'unpin', 'put-domain', 'put-device']));
    for (const e of events) {
      expect(problemsOf(documentedEventData(e.event), e.data), `${e.event} ${JSON.stringify(e.data)}`).toEqual([]);
      // The media type's schema (what generators type each event's data as) takes it too.
      expect(problemsOf(eventStreamMedia().schema, e.data), e.event).toEqual([]);
    }
    // The schemas do check: a decision's data without its flush, or with a field it never has, is refused.
    const decision = events.find((e) => e.event === 'decision')?.data ?? {};
    expect(problemsOf(documentedEventData('decision'), { ...decision, flush: undefined })).not.toEqual([]);
    expect(problemsOf(documentedEventData('decision'), { ...decision, extra: 1 })).not.toEqual([]);
  });

  it('an idle stream gets heartbeats', async () => {
    const { base } = await serve({ eventHeartbeatMs: 30 });
    await quirkVm(base);
    const stream = open(`${base}/v1/vms/vmq/events`);
    expect(await stream.status).toBe(200);
    for (let i = 0; i < 100 && stream.comments < 3; i++) await new Promise((r) => setTimeout(r, 20));
    expect(stream.comments).toBeGreaterThanOrEqual(3);
    expect(stream.events).toEqual([]);
  });

  it('a token scoped to vm-a* cannot subscribe to vm-b; one scoped to vm-b can', async () => {
    const A = 'vmm-a-token-0123456789';
    const B = 'vmm-b-token-0123456789';
    const { base } = await serve({
      tokens: new TokenTable([
        { id: 'a', token: A, scopes: ['vmm'], vms: ['vm-a*'] },
        { id: 'b', token: B, scopes: ['vmm'], vms: ['vm-b*'] }
      ])
    });
    await call(base, 'PUT', '/v1/vms/vm-b1', { arch: 'x86_64', policy: { mode: 'pessimistic' } }, B);
    expect(await open(`${base}/v1/vms/vm-b1/events`, { authorization: `Bearer ${A}` }).status).toBe(403);
    expect(await open(`${base}/v1/vms/vm-b1/events`).status).toBe(401);
    expect(await open(`${base}/v1/vms/vm-b1/events`, { authorization: `Bearer ${B}` }).status).toBe(200);
  });

  it('a client may hold a bounded number of streams; one more is 429 TOO_MANY_STREAMS until one closes', async () => {
    const { base } = await serve({ eventStreamsPerClient: 2 });
    await quirkVm(base);
    const one = open(`${base}/v1/vms/vmq/events`);
    const two = open(`${base}/v1/vms/vmq/events`);
    expect([await one.status, await two.status]).toEqual([200, 200]);
    const three = await fetch(`${base}/v1/vms/vmq/events`);
    expect(three.status).toBe(429);
    expect(((await three.json()) as { code: string }).code).toBe('TOO_MANY_STREAMS');
    one.close();
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const again = open(`${base}/v1/vms/vmq/events`);
      status = await again.status;
      if (status !== 200) again.close();
    }
    expect(status).toBe(200);
  });

  it('a subscriber that stops reading is dropped with a reason once too far behind, and the stream ends', async () => {
    const { base } = await serve({ eventMaxBehindBytes: 64 * 1024 });
    await call(base, 'PUT', '/v1/vms/big', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await call(base, 'PUT', '/v1/vms/big/domains/d0', { enforceCacheCoherency: false });
    const url = new URL(base);
    const socket = connect(Number(url.port), url.hostname);
    await new Promise((r) => socket.once('connect', r));
    socket.write(`GET /v1/vms/big/events HTTP/1.1\r\nhost: ${url.host}\r\naccept: text/event-stream\r\n\r\n`);
    socket.pause();
    // Pins of 10,000 flushed pages: each decision event lists 10,000 ranges (about 0.5 MB).
    for (let b = 0; b < 30; b++) {
      const ranges = Array.from({ length: 10_000 }, (_, i) => ({ iova: `0x${((b * 10_000 + i) * 0x2000).toString(16)}`, hpa: `0x${((b * 10_000 + i) * 0x2000).toString(16)}`, length: '0x1000' }));
      await call(base, 'POST', '/v1/vms/big/pins', { ranges });
    }
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      text += d;
    });
    socket.resume();
    // The response ends (its last chunk) while the connection itself may stay open for reuse.
    for (let i = 0; i < 500 && !text.endsWith('\r\n0\r\n\r\n'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(text.endsWith('\r\n0\r\n\r\n')).toBe(true);
    expect(text).toMatch(/event: dropped\ndata: \{"vmId":"big","reason":"the subscriber fell \d+ bytes behind; reconnect with Last-Event-ID to resume"\}/);
    // As the OpenAPI document describes a dropped event's data.
    const dropped = JSON.parse(/event: dropped\ndata: (.*)\n/.exec(text)?.[1] ?? 'null') as unknown;
    expect(problemsOf(documentedEventData('dropped'), dropped)).toEqual([]);
    socket.destroy();
  });
});
