/**
 * The typed client's event stream against real listening servers: every kind of event, each
 * narrowed by its `type` to its typed data; a VMM loop that hears of a flush someone else caused,
 * performs and acknowledges it; and a stream that resumes by itself when its server goes away and
 * another takes its place (which no longer holds the events: reset).
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { CoherencyClient, type DecisionEventData, type DroppedEventData, type FlushJobState, type ResetEventData, type VmEventMessage } from '../../src/client/index.js';
import { build } from '../helpers/app.js';
import { recordingVmm } from './recording-vmm.js';

const apps: FastifyInstance[] = [];
const clients: CoherencyClient[] = [];
/** Streams still open when a test fails: a client closes only once its requests end. */
const streams: AbortController[] = [];
afterEach(async () => {
  for (const s of streams.splice(0)) s.abort();
  for (const c of clients.splice(0)) await c.close();
  for (const a of apps.splice(0)) await a.close();
});

/** A server on `port`, with VM vmq made (through inject) before it listens when `withVm`. */
async function serve(port = 0, withVm = false): Promise<{ base: string; port: number }> {
  const app = await build();
  apps.push(app);
  if (withVm) {
    for (const [method, url, payload] of [
      ['PUT', '/v1/vms/vmq', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'deny' } }],
      ['PUT', '/v1/vms/vmq/domains/d0', { enforceCacheCoherency: false }]
    ] as const) {
      expect((await app.inject({ method, url, payload })).statusCode).toBeLessThan(300);
    }
  }
  const base = await app.listen({ host: '127.0.0.1', port });
  return { base, port: Number(new URL(base).port) };
}

async function vmq(client: CoherencyClient): Promise<void> {
  await client.putVm('vmq', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'deny' } });
  await client.putDomain('vmq', 'd0', { enforceCacheCoherency: false });
  await client.putDevice('vmq', '0000:01:00.0', { domainId: 'd0', vendorId: '0x1d0f', deviceId: '0x1234', function: 'pf', nosnoop: 'disabled' });
  await client.pin('vmq', { iova: '0x0', hpa: '0x40000000', length: '0x200000' });
}

/** A line per event, each field read as its kind's type has it (tsc checks these reads). */
function summary(event: VmEventMessage): string {
  switch (event.type) {
    case 'decision':
      expectTypeOf(event.data).toEqualTypeOf<DecisionEventData>();
      return `decision ${event.data.command} by ${event.data.actor}: ${event.data.flush.required ? event.data.flush.bytes : 'no flush'}`;
    case 'policy':
      return `policy by ${event.data.actor}: kvmNoncoherentDma ${String(event.data.kvmNoncoherentDma)}`;
    case 'deleted':
      return `deleted ${event.data.vmId}: ${event.data.reasons.map((r) => r.rule).join(',')}`;
    case 'flush-job':
      expectTypeOf(event.data).toEqualTypeOf<FlushJobState>();
      return `flush-job ${event.data.cause} ${event.data.state} ${event.data.requestedBytes}`;
    case 'reset':
      expectTypeOf(event.data).toEqualTypeOf<ResetEventData>();
      return `reset ${event.data.vmId}`;
    case 'dropped':
      expectTypeOf(event.data).toEqualTypeOf<DroppedEventData>();
      expectTypeOf(event.id).toEqualTypeOf<undefined>();
      return `dropped ${event.data.vmId}`;
  }
}

describe('CoherencyClient.events, typed by kind', () => {
  it('reads reset, policy, decision, flush-job and deleted events from a real server, each narrowed by type', async () => {
    const { base } = await serve();
    const client = new CoherencyClient(base);
    clients.push(client);
    await client.putVm('vmk', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await client.putDomain('vmk', 'd0', { enforceCacheCoherency: false });
    const stop = new AbortController();
    streams.push(stop);
    const seen: VmEventMessage[] = [];
    const until = async (line: string): Promise<void> => {
      for (let i = 0; i < 500 && !seen.map(summary).includes(line); i++) await new Promise((r) => setTimeout(r, 10));
    };
    // An id from an earlier start of the service: the stream begins with a reset.
    const loop = (async () => {
      for await (const event of client.events('vmk', { signal: stop.signal, lastEventId: 'earlier-start.7' })) seen.push(event);
    })();
    await until('reset vmk');
    await client.putVm('vmk', { arch: 'x86_64', policy: { mode: 'pessimistic', onEnable: 'deny' } });
    const pinned = await client.pin('vmk', { iova: '0x0', hpa: '0x40000000', length: '0x200000' });
    await client.ack(pinned.flush.jobId as string);
    await client.unpin('vmk', { iova: '0x0', length: '0x200000' });
    await until('flush-job unpin done 0x200000');
    await client.deleteVm('vmk');
    await until('flush-job teardown pending 0x200000');
    stop.abort();
    await loop;
    expect(seen.map(summary)).toEqual([
      'reset vmk',
      'policy by anonymous: kvmNoncoherentDma false',
      'decision pin by anonymous: 0x200000',
      'flush-job pin pending 0x200000',
      'flush-job pin acknowledged 0x200000',
      'decision unpin by anonymous: 0x200000',
      'flush-job unpin pending 0x200000',
      'flush-job unpin done 0x200000',
      'deleted vmk: F5',
      'flush-job teardown pending 0x200000'
    ]);
    expect(seen.filter((e) => e.id === undefined)).toEqual([]);
  });

  it('reads a dropped event (no id) when it falls too far behind, then resumes by itself', async () => {
    const app = await build({ eventMaxBehindBytes: 64 * 1024 });
    apps.push(app);
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const client = new CoherencyClient(base);
    clients.push(client);
    await client.putVm('big', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await client.putDomain('big', 'd0', { enforceCacheCoherency: false });
    const stop = new AbortController();
    streams.push(stop);
    const events = client.events('big', { signal: stop.signal, lastEventId: 'earlier-start.1', retryMs: 50 })[Symbol.asyncIterator]();
    expect(summary((await events.next()).value as VmEventMessage)).toBe('reset big');
    // Not read while 30 decisions of 10,000 flushed ranges each (about 0.5 MB apiece) are sent.
    for (let b = 0; b < 30; b++) {
      const ranges = Array.from({ length: 10_000 }, (_, i) => ({ iova: `0x${((b * 10_000 + i) * 0x2000).toString(16)}`, hpa: `0x${((b * 10_000 + i) * 0x2000).toString(16)}`, length: '0x1000' }));
      await client.pin('big', { ranges });
    }
    const read: VmEventMessage[] = [];
    for (let i = 0; i < 200 && !read.some((e) => e.type === 'dropped'); i++) read.push((await events.next()).value as VmEventMessage);
    const dropped = read.find((e) => e.type === 'dropped');
    expect(dropped).toMatchObject({ type: 'dropped', data: { vmId: 'big', reason: expect.stringMatching(/^the subscriber fell \d+ bytes behind; reconnect with Last-Event-ID to resume$/) as unknown } });
    expect(dropped?.id).toBeUndefined();
    // It reconnects from the last id it read, one of the first events: a VM's log holds at most
    // 65,536 listed ranges, so the events after it are gone and the new stream says so.
    expect(summary((await events.next()).value as VmEventMessage)).toBe('reset big');
    stop.abort();
    await events.return(undefined);
  }, 60_000);
});

describe('CoherencyClient.events', () => {
  it('a VMM loop: hears of the replay an operator caused, flushes, acknowledges; the job ends acknowledged', async () => {
    const { base } = await serve();
    const vmm = new CoherencyClient(base);
    const operator = new CoherencyClient(base);
    clients.push(vmm, operator);
    await vmq(vmm);
    const stop = new AbortController();
    const seen: VmEventMessage[] = [];
    const loop = (async () => {
      for await (const event of vmm.events('vmq', { signal: stop.signal })) {
        seen.push(event);
        if (event.type === 'flush-job' && event.data.state === 'pending') await vmm.ack(event.data.id, { durationNs: 500 });
        if (event.type === 'flush-job' && event.data.state === 'acknowledged') break;
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    await operator.putQuirks({ quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'] }] });
    await loop;
    stop.abort();
    expect(seen.map((e) => `${e.type}:${e.type === 'flush-job' ? e.data.state : e.type === 'decision' ? e.data.command : ''}`)).toEqual(['decision:put-quirks', 'flush-job:pending', 'flush-job:acknowledged']);
    expect((await vmm.getVm('vmq')).openFlushJobs).toEqual([]);
  });

  it('resumes by itself after its server went away; the new one no longer holds the events: reset', async () => {
    const first = await serve();
    const client = new CoherencyClient(first.base);
    clients.push(client);
    await vmq(client);
    const stop = new AbortController();
    const seen: VmEventMessage[] = [];
    const loop = (async () => {
      for await (const event of client.events('vmq', { signal: stop.signal, retryMs: 50 })) {
        seen.push(event);
        if (event.type === 'reset') break;
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    await client.unpin('vmq', { iova: '0x0', length: '0x200000' });
    for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen[0]).toMatchObject({ type: 'decision', data: { command: 'unpin' } });
    await (apps.shift() as FastifyInstance).close();
    // The VM exists before the new server listens: the stream's retry finds it.
    await serve(first.port, true);
    await loop;
    stop.abort();
    expect(seen.map((e) => e.type)).toEqual(['decision', 'reset']);
  });

  it("the README's VMM loop performs and acknowledges a flush an operator caused", async () => {
    const { base } = await serve();
    const vmm = new CoherencyClient(base);
    clients.push(vmm);
    await vmq(vmm);
    const { flushed, stop } = recordingVmm(vmm, 'vmq');
    await new Promise((r) => setTimeout(r, 100));
    const answer = await vmm.putQuirks({ quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'] }] });
    const jobId = answer.vms[0]?.flush.jobId as string;
    for (let i = 0; i < 200 && (await vmm.getFlushJob(jobId) as { state: string }).state !== 'acknowledged'; i++) await new Promise((r) => setTimeout(r, 10));
    await stop();
    expect(flushed).toEqual([[{ hpa: '0x40000000', length: '0x200000' }]]);
    expect(await vmm.getFlushJob(jobId)).toMatchObject({ state: 'acknowledged' });
  });
});
