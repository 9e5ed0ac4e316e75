/**
 * A restarted service says it is ready only once it has taken up the flush jobs its store holds:
 * a VMM that asks for a job named in an answer before the restart never gets a 404 from a
 * service that says it is ready.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, parseDomainId, parseQuirkFile, parseVmId } from '../../src/domain/index.js';
import { createRuntime } from '../../src/service/runtime.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { StateStore } from '../../src/store/state-store.js';

const vmId = parseVmId('vm1');

describe('restart', () => {
  it('is not ready until the stored flush jobs are taken up; then the job named before the restart is there', async () => {
    const kept = new MemoryStore();
    const quirks = parseQuirkFile({ quirks: [] });
    const before = createRuntime({ defaults: DEFAULT_POLICY, quirks, store: kept, threads: 1, windowMs: 60_000 });
    await before.start();
    await before.service.apply({ type: 'put-vm', vmId, arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await before.service.apply({ type: 'put-domain', vmId, domainId: parseDomainId('d0'), enforceCacheCoherency: false });
    const pin = await before.service.apply({ type: 'pin', vmId, ranges: [{ iova: 0, pages: 512, hpa: 0x40000 }] });
    const jobId = pin.jobId as string;
    expect(before.service.flushJob(jobId)?.state).toBe('queued');
    before.service.stop();

    // The same store, its flush jobs slow to load.
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = new Proxy(kept, {
      get(target, key) {
        if (key === 'loadJobs') return async () => (await gate, target.loadJobs());
        const value: unknown = Reflect.get(target, key);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      }
    }) as StateStore;
    const after = createRuntime({ defaults: DEFAULT_POLICY, quirks, store: slow, threads: 1, windowMs: 60_000 });
    const started = after.start();
    await new Promise((r) => setTimeout(r, 50));
    expect(after.service.ready.state).toBe(false);
    release();
    await started;
    expect(after.service.ready.state).toBe(true);
    expect(after.service.flushJob(jobId)?.id).toBe(jobId);
    await after.close();
    await before.close();
  });
});
