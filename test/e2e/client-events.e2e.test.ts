/**
 * The typed client's event stream against real listening servers: a VMM loop that hears of a
 * flush someone else caused, performs and acknowledges it; and a stream that resumes by itself
 * when its server goes away and another takes its place (which no longer holds the events: reset).
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { CoherencyClient, type VmEventMessage } from '../../src/client/index.js';
import { build } from '../helpers/app.js';
import { recordingVmm } from './recording-vmm.js';

const apps: FastifyInstance[] = [];
const clients: CoherencyClient[] = [];
afterEach(async () => {
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
