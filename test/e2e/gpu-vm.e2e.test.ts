/**
 * A GPU VM's life over a real listening server, driven by the typed client, under each policy:
 * create, attach a non-coherent domain and an Intel iGPU, pin 8 GiB, the guest enables No Snoop
 * (trapped), unpin, pin again, tear down. Flush bytes and rule ids are asserted at every step.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoherencyApiError, CoherencyClient, type DecisionAnswer } from '../../src/client/index.js';
import { buildApp } from '../../src/http/app.js';

let app: FastifyInstance;
let client: CoherencyClient;

beforeAll(async () => {
  app = await buildApp();
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  client = new CoherencyClient(address);
});

afterAll(async () => {
  await client.close();
  await app.close();
});

const GiB8 = '0x200000000';
const GiB1 = '0x40000000';
const IGPU = '0000:00:02.0';

function rules(d: { reasons: { rule: string }[] }): string[] {
  return d.reasons.map((r) => r.rule);
}

function flushed(d: DecisionAnswer): string | null {
  return d.flush.required ? d.flush.bytes : null;
}

interface Expect {
  policy: { mode: 'pessimistic' | 'trap' | 'virtualize-zero'; exemptNeedsNoSnoop?: boolean };
  pin: string | null;
  enable: { decision: 'allow' | 'deny'; rules: string[]; flush: string | null };
  exposedAfterEnable: boolean;
  unpin: string | null;
  teardown: string | null;
}

const lives: Record<string, Expect> = {
  pessimistic: {
    policy: { mode: 'pessimistic' },
    pin: GiB8,
    enable: { decision: 'allow', rules: ['W5'], flush: null },
    exposedAfterEnable: true,
    unpin: GiB8,
    teardown: GiB1
  },
  trap: {
    policy: { mode: 'trap' },
    pin: null,
    enable: { decision: 'allow', rules: ['W4', 'F2'], flush: GiB8 },
    exposedAfterEnable: true,
    unpin: GiB8,
    teardown: GiB1
  },
  'virtualize-zero (iGPU exempt)': {
    policy: { mode: 'virtualize-zero' },
    pin: null,
    enable: { decision: 'allow', rules: ['W3', 'F2'], flush: GiB8 },
    exposedAfterEnable: true,
    unpin: GiB8,
    teardown: GiB1
  },
  'virtualize-zero (no exemption)': {
    policy: { mode: 'virtualize-zero', exemptNeedsNoSnoop: false },
    pin: null,
    enable: { decision: 'deny', rules: ['W3'], flush: null },
    exposedAfterEnable: false,
    unpin: null,
    teardown: null
  }
};

describe('GPU VM life over HTTP', () => {
  for (const [name, e] of Object.entries(lives)) {
    it(`${name}: flush bytes and rules at every step`, async () => {
      const vmId = `gpu-${name.replace(/[^a-z]+/g, '-')}`.replace(/-+$/, '');

      const created = await client.putVm(vmId, { arch: 'x86_64', policy: e.policy });
      expect(created.vm.policy.mode).toBe(e.policy.mode);
      expect(flushed(created)).toBeNull();

      const domain = await client.putDomain(vmId, 'd0', { enforceCacheCoherency: false, iommu: 'vtd-igfx' });
      expect(domain.kvmNoncoherentDma).toBe(false);

      const attach = await client.putDevice(vmId, IGPU, { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'disabled' });
      expect(rules(attach)).toEqual(['K1']);
      expect(attach.kvmNoncoherentDma).toBe(true);

      const pin = await client.pin(vmId, { iova: '0x0', hpa: '0x100000000', length: GiB8 });
      expect(flushed(pin)).toBe(e.pin);
      expect(rules(pin)).toEqual(['F1']);
      if (e.pin !== null) expect(pin.flush.ranges).toEqual([{ hpa: '0x100000000', length: GiB8 }]);

      const enable = await client.devctl(vmId, IGPU, { nosnoopEnable: true });
      expect(enable.decision).toBe(e.enable.decision);
      expect(rules(enable)).toEqual(e.enable.rules);
      expect(flushed(enable)).toBe(e.enable.flush);
      expect(enable.hardwareValue).toBe(e.enable.decision === 'allow' ? '0x2810' : '0x2010');

      const vm = await client.getVm(vmId);
      expect(vm.domains[0]?.exposed).toBe(e.exposedAfterEnable);
      expect(vm.devices[0]?.quirks).toEqual(['needs-nosnoop']);
      expect(vm.pinned).toEqual({ ranges: 1, bytes: GiB8, flushOnUnpinBytes: e.unpin ?? '0x0' });
      // The VMM performs the flushes it was answered and acknowledges them: nothing stays open.
      for (const jobId of [pin.flush.jobId, enable.flush.jobId]) {
        if (jobId !== undefined) expect(await client.ack(jobId, { durationNs: 1000 })).toMatchObject({ id: jobId, state: 'acknowledged' });
      }
      expect((await client.getVm(vmId)).openFlushJobs).toEqual([]);

      const unpin = await client.unpin(vmId, { iova: '0x0', length: GiB8 });
      expect(flushed(unpin)).toBe(e.unpin);
      expect(rules(unpin)).toEqual(['F3']);

      const again = await client.pin(vmId, { iova: '0x0', hpa: '0x100000000', length: GiB1 });
      // Flushed and acknowledged too: the teardown below then covers only what is still pinned
      // (it would also cover a flush left outstanding).
      for (const jobId of [unpin.flush.jobId, again.flush.jobId]) if (jobId !== undefined) await client.ack(jobId);
      const teardown = await client.deleteVm(vmId);
      expect(flushed(teardown)).toBe(e.teardown);
      expect(rules(teardown)).toEqual(['F5', 'F3']);

      await expect(client.getVm(vmId)).rejects.toMatchObject({ status: 404, code: 'UNKNOWN_VM' });
    });
  }

  it('turns problem+json answers into CoherencyApiError with the stable code', async () => {
    await client.putVm('errors', { arch: 'x86_64' });
    await client.putDomain('errors', 'd0', { enforceCacheCoherency: true });
    await client.pin('errors', { iova: '0x0', hpa: '0x0', length: '0x2000' });
    const overlap = await client.pin('errors', { iova: '0x1000', hpa: '0x0', length: '0x1000' }).catch((err: unknown) => err);
    expect(overlap).toBeInstanceOf(CoherencyApiError);
    expect(overlap).toMatchObject({ status: 409, code: 'PIN_OVERLAP' });
    await expect(client.unpin('errors', { iova: '0x1000', length: '0x1000' })).rejects.toMatchObject({ status: 409, code: 'UNPIN_BISECTS' });
    await expect(client.pin('errors', { iova: '0x123', hpa: '0x0', length: '0x1000' })).rejects.toMatchObject({ status: 400, code: 'UNALIGNED' });
    await expect(client.health()).resolves.toEqual({ status: 'ok' });
    await client.deleteVm('errors');
  });
});

describe('what-if simulation through the client', () => {
  it('replays a reference trace under every mode and reads the result back', async () => {
    const result = await client.simulate({ reference: 'desktop-gpu' });
    expect(result.modes.map((m) => m.mode)).toEqual(['pessimistic', 'trap', 'virtualize-zero']);
    expect(result.summary.safe).toBe(true);
    expect(result.trace).toMatchObject({ name: 'desktop-gpu', events: 44_953 });
    expect(await client.getSimulation(result.id)).toEqual(result);
    await expect(client.simulate({ trace: '{"t":"vm"}' })).rejects.toMatchObject({ status: 400, code: 'INVALID_TRACE' });
  });
});
