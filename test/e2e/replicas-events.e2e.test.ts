/**
 * Two real server processes on one PostgreSQL: a VMM following its VM on replica B with the
 * README's loop (typed client, Server-Sent Events) performs and acknowledges, through B, the
 * replay an operator caused through replica A; A then reports the job acknowledged.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { CoherencyClient } from '../../src/client/index.js';
import { dropSchemas, freshSchema, PG_URL } from '../helpers/postgres.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { recordingVmm } from './recording-vmm.js';

const schema = freshSchema('e2e_replicas');
const servers: ServerProcess[] = [];
const clients: CoherencyClient[] = [];
afterAll(async () => {
  for (const c of clients) await c.close();
  for (const s of servers) await s.kill('SIGTERM');
  await dropSchemas([schema]);
});

describe('events across two replica processes', () => {
  it('a VMM on replica B performs and acknowledges the replay an operator caused on replica A', async () => {
    const env = { STORE: 'postgres', STORE_URL: PG_URL, STORE_SCHEMA: schema };
    servers.push(await startServer(env));
    servers.push(await startServer(env));
    const [a, b] = servers as [ServerProcess, ServerProcess];
    const operator = new CoherencyClient(a.url);
    const vmm = new CoherencyClient(b.url);
    clients.push(operator, vmm);
    await operator.putVm('vmq', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'deny' } });
    await operator.putDomain('vmq', 'd0', { enforceCacheCoherency: false });
    await operator.putDevice('vmq', '0000:01:00.0', { domainId: 'd0', vendorId: '0x1d0f', deviceId: '0x1234', function: 'pf', nosnoop: 'disabled' });
    await operator.pin('vmq', { iova: '0x0', hpa: '0x40000000', length: '0x200000' });

    const { flushed, stop } = recordingVmm(vmm, 'vmq');
    await new Promise((r) => setTimeout(r, 300));
    const answer = await operator.putQuirks({ quirks: [{ vendorId: '0x1d0f', deviceId: '0x1234', flags: ['ignores-nosnoop-enable'] }] });
    const jobId = answer.vms[0]?.flush.jobId as string;
    expect(jobId).toMatch(/^fj-/);
    let state = '';
    for (let i = 0; i < 500 && state !== 'acknowledged'; i++) {
      await new Promise((r) => setTimeout(r, 10));
      state = String(((await operator.getFlushJob(jobId)) as { state?: string }).state);
    }
    await stop();
    expect(state).toBe('acknowledged');
    expect(flushed).toHaveLength(1);
    expect((await operator.getVm('vmq')).openFlushJobs).toEqual([]);
    expect((await vmm.getVm('vmq')).openFlushJobs).toEqual([]);
  });
});
