/**
 * Every route through inject(), and the 4xx answers: problem+json with a stable code.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { build, gpuVm, json, LogSink } from '../helpers/app.js';

let app: FastifyInstance;

beforeEach(async () => {
  app = await build();
});

afterEach(async () => {
  await app.close();
});

async function call(method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: unknown) {
  const res = await app.inject({ method, url, ...(payload === undefined ? {} : { headers: json, payload: payload as object }) });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>(), headers: res.headers };
}

function expectProblem(res: { status: number; body: Record<string, unknown>; headers: Record<string, unknown> }, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, code, type: expect.stringMatching(/^urn:problem:coherency:/) as unknown, title: expect.any(String) as unknown, detail: expect.any(String) as unknown });
}

describe('VMs', () => {
  it('PUT creates (201) then replaces the policy (200); GET shows the whole VM; DELETE tears down', async () => {
    const created = await call('PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    expect(created.status).toBe(201);
    expect(created.body['vm']).toMatchObject({ id: 'vm1', arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow', flushMethod: 'clflushopt', wbinvdAbove: null } });
    expect((await call('PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { wbinvdAbove: '0x40000000' } })).status).toBe(200);
    const vm = await call('GET', '/v1/vms/vm1');
    expect(vm.body).toMatchObject({ policy: { mode: 'trap', wbinvdAbove: '0x40000000' }, pinned: { ranges: 0, bytes: '0x0' }, openFlushJobs: [], kvmNoncoherentDma: false });
    expect((await call('DELETE', '/v1/vms/vm1')).status).toBe(200);
    expectProblem(await call('GET', '/v1/vms/vm1'), 404, 'UNKNOWN_VM');
  });

  it('lists VMs in pages with a cursor', async () => {
    for (const id of ['a', 'b', 'c', 'd', 'e']) await call('PUT', `/v1/vms/${id}`, { arch: 'aarch64' });
    const first = await call('GET', '/v1/vms?limit=2');
    expect((first.body['items'] as { id: string }[]).map((v) => v.id)).toEqual(['a', 'b']);
    const cursor = first.body['nextCursor'] as string;
    const second = await call('GET', `/v1/vms?limit=2&cursor=${cursor}`);
    expect((second.body['items'] as { id: string }[]).map((v) => v.id)).toEqual(['c', 'd']);
    const last = await call('GET', `/v1/vms?limit=2&cursor=${second.body['nextCursor'] as string}`);
    expect((last.body['items'] as { id: string }[]).map((v) => v.id)).toEqual(['e']);
    expect(last.body['nextCursor']).toBeUndefined();
    expectProblem(await call('GET', '/v1/vms?cursor=%%%'), 400, 'INVALID_CURSOR');
    expectProblem(await call('GET', '/v1/vms?limit=0'), 400, 'VALIDATION_FAILED');
  });

  it('rejects bad ids, architectures, policies and arch changes', async () => {
    expectProblem(await call('PUT', '/v1/vms/-bad', { arch: 'x86_64' }), 400, 'INVALID_ID');
    expectProblem(await call('PUT', '/v1/vms/vm1', { arch: 'riscv' }), 400, 'VALIDATION_FAILED');
    expectProblem(await call('PUT', '/v1/vms/vm1', { arch: 'aarch64', policy: { flushMethod: 'clflush' } }), 400, 'INVALID_POLICY');
    await call('PUT', '/v1/vms/vm1', { arch: 'x86_64' });
    expectProblem(await call('PUT', '/v1/vms/vm1', { arch: 'aarch64' }), 409, 'ARCH_CHANGE');
  });
});

describe('domains and devices', () => {
  it('PUT/DELETE domains, 409 while devices are attached', async () => {
    await gpuVm(app);
    expectProblem(await call('DELETE', '/v1/vms/vm1/domains/d0'), 409, 'DOMAIN_HAS_DEVICES');
    expect((await call('DELETE', '/v1/vms/vm1/devices/0000:00:02.0')).status).toBe(200);
    expect((await call('DELETE', '/v1/vms/vm1/domains/d0')).status).toBe(200);
    expectProblem(await call('DELETE', '/v1/vms/vm1/domains/d0'), 404, 'UNKNOWN_DOMAIN');
  });

  it('device reset answers R1: config restored by default, the DEVCTL value to write when not', async () => {
    await gpuVm(app, 'trap');
    const restored = await call('POST', '/v1/vms/vm1/devices/0000:00:02.0/reset');
    expect(restored.status).toBe(200);
    expect(restored.body).toMatchObject({ flush: { required: false }, reasons: [{ rule: 'R1' }] });
    expect(restored.body['hardwareValue']).toBeUndefined();
    const res = await call('POST', '/v1/vms/vm1/devices/0000:00:02.0/reset', { restoresConfig: false });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ decision: 'allow', hardwareValue: '0x2810', guestValue: '0x2810' });
    expect((res.body['reasons'] as { rule: string }[])[0]?.rule).toBe('R1');
    expectProblem(await call('POST', '/v1/vms/vm1/devices/0000:00:02.0/reset', { restoresConfig: 'no' }), 400, 'VALIDATION_FAILED');
    expectProblem(await call('POST', '/v1/vms/vm1/devices/0000:00:09.0/reset'), 404, 'UNKNOWN_DEVICE');
    expectProblem(await call('POST', '/v1/vms/vm1/devices/00:09.0/reset'), 400, 'INVALID_PCI_ADDRESS');
  });

  it('devctl takes a value or nosnoopEnable, and dryRun changes nothing', async () => {
    await gpuVm(app, 'virtualize-zero');
    const dry = await call('POST', '/v1/vms/vm1/devices/0000:00:02.0/devctl', { value: '0x2810', dryRun: true });
    expect(dry.body).toMatchObject({ decision: 'allow', dryRun: true });
    const revision = (await call('GET', '/v1/vms/vm1')).body['revision'];
    expect(dry.body['revision']).toBe(revision);
    const clear = await call('POST', '/v1/vms/vm1/devices/0000:00:02.0/devctl', { nosnoopEnable: false });
    expect(clear.body).toMatchObject({ decision: 'allow', hardwareValue: '0x2010', reasons: [{ rule: 'W6' }, { rule: 'W6' }] });
    // The clear counts once the VMM reports the hardware reads it.
    const device = ((await call('GET', '/v1/vms/vm1')).body['devices'] as Record<string, unknown>[])[0];
    expect(device).toMatchObject({ nosnoop: 'enabled', pendingNosnoop: 'disabled' });
    expectProblem(await call('POST', '/v1/vms/vm1/devices/0000:00:02.0/devctl', {}), 400, 'INVALID_DEVICE');
    expectProblem(await call('POST', '/v1/vms/vm1/devices/0000:00:02.0/devctl', { value: '0x12345' }), 400, 'VALIDATION_FAILED');
  });

  it('rejects a device in an unknown domain', async () => {
    await call('PUT', '/v1/vms/vm1', { arch: 'x86_64' });
    expectProblem(await call('PUT', '/v1/vms/vm1/devices/0000:01:00.0', { domainId: 'nope', vendorId: '0x1', deviceId: '0x2', nosnoop: 'disabled' }), 404, 'UNKNOWN_DOMAIN');
  });
});

describe('pins, unpins and decisions', () => {
  it('pins one range, lists it, unpins it, with hex in and out', async () => {
    await gpuVm(app);
    const pin = await call('POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x100000000', length: 0x2000, memType: 'WB' });
    expect(pin.body).toMatchObject({ flush: { required: true, bytes: '0x2000', ranges: [{ hpa: '0x100000000', length: '0x2000' }] }, reasons: [{ rule: 'F1' }] });
    const list = await call('GET', '/v1/vms/vm1/pins');
    expect(list.body).toEqual({ items: [{ iova: '0x0', length: '0x2000', hpa: '0x100000000', memType: 'WB', mmio: false, flushOnUnpin: true, domains: null }] });
    const unpin = await call('POST', '/v1/vms/vm1/unpins', { iova: '0x0', length: '0x2000' });
    expect(unpin.body).toMatchObject({ flush: { bytes: '0x2000' }, reasons: [{ rule: 'F3' }] });
  });

  it('keeps 64-bit IOVAs exact', async () => {
    await gpuVm(app);
    await call('POST', '/v1/vms/vm1/pins', { iova: '0xfffffffffffff000', hpa: '0x1000', length: '0x1000' });
    const list = await call('GET', '/v1/vms/vm1/pins');
    expect((list.body['items'] as { iova: string }[])[0]?.iova).toBe('0xfffffffffffff000');
  });

  it('pages pins with a cursor', async () => {
    await gpuVm(app);
    const ranges = Array.from({ length: 25 }, (_, i) => ({ iova: `0x${(i * 0x10000).toString(16)}`, hpa: `0x${(i * 0x1000).toString(16)}`, length: '0x1000' }));
    await call('POST', '/v1/vms/vm1/pins', { ranges });
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await call('GET', `/v1/vms/vm1/pins?limit=10${cursor === undefined ? '' : `&cursor=${cursor}`}`);
      seen.push(...(res.body['items'] as { iova: string }[]).map((r) => r.iova));
      cursor = res.body['nextCursor'] as string | undefined;
    } while (cursor !== undefined);
    expect(seen).toEqual(ranges.map((r) => r.iova));
  });

  it('batches up to the limit; one more is 413', async () => {
    await gpuVm(app);
    const ranges = Array.from({ length: 10_001 }, (_, i) => ({ iova: i * 4096, hpa: i * 4096, length: 4096 }));
    expectProblem(await call('POST', '/v1/vms/vm1/pins', { ranges }), 413, 'BATCH_TOO_LARGE');
    const ok = await call('POST', '/v1/vms/vm1/pins', { ranges: ranges.slice(0, 10_000) });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ flush: { required: true, bytes: '0x2710000', ranges: [{ hpa: '0x0', length: '0x2710000' }] } });
    expectProblem(await call('POST', '/v1/vms/vm1/unpins', { ranges: ranges.map((r) => ({ iova: r.iova, length: r.length })) }), 413, 'BATCH_TOO_LARGE');
  });

  it('answers malformed JSON, wrong types, unaligned and non-hex addresses, overlaps and bisecting unpins with the right 4xx', async () => {
    await gpuVm(app);
    const raw = await app.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: json, payload: '{"iova": "0x0",' });
    expect(raw.statusCode).toBe(400);
    expect(raw.json()).toMatchObject({ code: 'MALFORMED_JSON' });
    const wrong = await call('POST', '/v1/vms/vm1/pins', { iova: true, hpa: '0x0', length: '0x1000' });
    expectProblem(wrong, 400, 'VALIDATION_FAILED');
    expect(wrong.body['errors']).toContainEqual({ path: 'body.iova', message: expect.any(String) as unknown });
    expectProblem(await call('POST', '/v1/vms/vm1/pins', { iova: '0x1234', hpa: '0x0', length: '0x1000' }), 400, 'UNALIGNED');
    expectProblem(await call('POST', '/v1/vms/vm1/pins', { iova: '12', hpa: '0x0', length: '0x1000' }), 400, 'INVALID_HEX');
    expectProblem(await call('POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x0', length: '0x0' }), 400, 'INVALID_LENGTH');
    expectProblem(await call('POST', '/v1/vms/nope/pins', { iova: '0x0', hpa: '0x0', length: '0x1000' }), 404, 'UNKNOWN_VM');
    await call('POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x0', length: '0x4000' });
    const overlap = await call('POST', '/v1/vms/vm1/pins', { iova: '0x2000', hpa: '0x0', length: '0x4000' });
    expectProblem(overlap, 409, 'PIN_OVERLAP');
    expect(overlap.body['details']).toMatchObject({ conflict: { iova: '0x0', length: '0x4000' } });
    expectProblem(await call('POST', '/v1/vms/vm1/unpins', { iova: '0x1000', length: '0x1000' }), 409, 'UNPIN_BISECTS');
    expectProblem(await call('POST', '/v1/vms/vm1/unpins', { iova: '0x100000', length: '0x1000' }), 404, 'UNKNOWN_RANGE');
    const text = await app.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: { 'content-type': 'text/plain' }, payload: 'x' });
    expect(text.statusCode).toBe(415);
  });

  it('decisions/flush is read-only and answers per range', async () => {
    await gpuVm(app);
    // The pin's flush job finished first, so that the VM read below stays still by itself.
    await call('POST', '/v1/vms/vm1/pins?wait=true', { iova: '0x0', hpa: '0x10000', length: '0x2000' });
    const before = (await call('GET', '/v1/vms/vm1')).body;
    const map = await call('POST', '/v1/vms/vm1/decisions/flush', { op: 'map', ranges: [{ iova: '0x100000', length: '0x1000', hpa: '0x900000' }] });
    expect(map.body).toMatchObject({ op: 'map', flush: { required: true, bytes: '0x1000' }, results: [{ iova: '0x100000', required: true, rule: 'F1' }] });
    const unmap = await call('POST', '/v1/vms/vm1/decisions/flush', { op: 'unmap', ranges: [{ iova: '0x0', length: '0x2000' }] });
    expect(unmap.body).toMatchObject({ flush: { required: true, when: 'after-unmap', ranges: [{ hpa: '0x10000', length: '0x2000' }] }, results: [{ rule: 'F3', required: true }] });
    // As the unpin would: a range cut in two is refused.
    expectProblem(await call('POST', '/v1/vms/vm1/decisions/flush', { op: 'unmap', ranges: [{ iova: '0x1000', length: '0x1000' }] }), 409, 'UNPIN_BISECTS');
    expect((await call('GET', '/v1/vms/vm1')).body).toEqual(before);
  });
});

describe('quirks, policy, flush jobs, health, errors', () => {
  it('GET/PUT quirks; a new ignores-nosnoop-enable quirk replays exposed VMs', async () => {
    const quirks = await call('GET', '/v1/quirks');
    expect((quirks.body['quirks'] as { deviceId: string; flags: string[] }[]).some((q) => q.deviceId === '0x9a40' && q.flags.includes('needs-nosnoop'))).toBe(true);
    await call('PUT', '/v1/vms/vm1', { arch: 'x86_64' });
    await call('PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
    await call('PUT', '/v1/vms/vm1/devices/0000:01:00.0', { domainId: 'd0', vendorId: '0x15b3', deviceId: '0x1017', nosnoop: 'disabled' });
    await call('POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x0', length: '0x1000' });
    const put = await call('PUT', '/v1/quirks', { quirks: [{ vendorId: '0x15b3', deviceId: '0x1017', flags: ['ignores-nosnoop-enable'] }] });
    expect(put.status).toBe(200);
    expect(put.body['vms']).toMatchObject([{ vmId: 'vm1', flush: { bytes: '0x1000' }, reasons: [{ rule: 'F2' }] }]);
    const after = await call('GET', '/v1/quirks');
    expect(after.body['quirks']).toEqual([{ vendorId: '0x15b3', deviceId: '0x1017', deviceMask: '0xffff', flags: ['ignores-nosnoop-enable'] }]);
    expect(after.body['configured']).toMatchObject({ inForce: false });
    expectProblem(await call('PUT', '/v1/quirks', { quirks: [{ vendorId: '0x15b3', deviceId: '0x1017', flags: [] }] }), 400, 'VALIDATION_FAILED');
  });

  it('GET /v1/policy shows the defaults', async () => {
    expect((await call('GET', '/v1/policy')).body).toMatchObject({ defaults: { mode: 'trap', onEnable: 'allow-needs-nosnoop', exemptNeedsNoSnoop: true }, batchLimit: 10_000 });
  });

  it('flush jobs: a VM without flushes has none; unknown ids and VMs are 404', async () => {
    await call('PUT', '/v1/vms/vm1', { arch: 'x86_64' });
    expect((await call('GET', '/v1/vms/vm1/flush-jobs')).body).toEqual({ items: [] });
    expectProblem(await call('GET', '/v1/flush-jobs/j1'), 404, 'UNKNOWN_FLUSH_JOB');
    expectProblem(await call('GET', '/v1/vms/nope/flush-jobs'), 404, 'UNKNOWN_VM');
  });

  it('healthz and readyz', async () => {
    expect((await call('GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await call('GET', '/readyz')).body).toEqual({ status: 'ready', checks: { state: true, store: true } });
  });

  it('unknown routes are problem+json 404', async () => {
    expectProblem(await call('GET', '/v1/nothing'), 404, 'ROUTE_NOT_FOUND');
  });

  it('hides internal errors: 500 without stack or message', async () => {
    const failing = await build();
    try {
      failing.policy.apply = () => {
        throw new Error('secret internal detail');
      };
      const res = await failing.inject({ method: 'PUT', url: '/v1/vms/vm1', headers: json, payload: { arch: 'x86_64' } });
      expect(res.statusCode).toBe(500);
      expect(res.json()).toMatchObject({ code: 'INTERNAL', status: 500 });
      expect(res.body).not.toMatch(/secret|at .*\.ts/);
    } finally {
      await failing.close();
    }
  });
});

describe('request ids and decision logs', () => {
  it('honours and echoes x-request-id, and logs one structured line per decision (a pin\'s at debug)', async () => {
    const sink = new LogSink();
    const logged = await build({ logger: { level: 'debug', stream: sink } });
    try {
      await gpuVm(logged);
      const res = await logged.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: { ...json, 'x-request-id': 'vmm-42' }, payload: { iova: '0x0', hpa: '0x0', length: '0x2000' } });
      expect(res.headers['x-request-id']).toBe('vmm-42');
      const generated = await logged.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'bad id with spaces' } });
      expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      const line = sink.lines.find((l) => l['msg'] === 'decision' && l['reqId'] === 'vmm-42');
      expect(line).toMatchObject({ decision: 'pin', vmId: 'vm1', rules: ['F1'], flushRequired: true, flushBytes: '0x2000', flushRanges: 1, kvmNoncoherentDma: true });
      for (const l of sink.lines.filter((x) => x['reqId'] === 'vmm-42')) expect(l['reqId']).toBe('vmm-42');
    } finally {
      await logged.close();
    }
  });

  it('writes one line per request at debug: the access line, which is the decision line where a route decided; at info, none for the hot routes', async () => {
    const calls: [string, string, string, object | undefined][] = [
      ['a-pin', 'POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x0', length: '0x2000' }],
      ['a-query', 'POST', '/v1/vms/vm1/decisions/flush', { op: 'unmap', ranges: [{ iova: '0x0', length: '0x2000' }] }],
      ['a-domain', 'PUT', '/v1/vms/vm1/domains/d1', { enforceCacheCoherency: true }],
      ['a-read', 'GET', '/v1/vms/vm1', undefined],
      ['a-miss', 'GET', '/v1/vms/nope', undefined]
    ];
    for (const level of ['debug', 'info'] as const) {
      const sink = new LogSink();
      const logged = await build({ logger: { level, stream: sink } });
      try {
        await gpuVm(logged);
        for (const [id, method, url, payload] of calls) {
          await logged.inject({ method: method as 'GET', url, headers: { ...json, 'x-request-id': id }, ...(payload === undefined ? {} : { payload }) });
        }
        for (const [id, method, url] of calls) {
          const lines = sink.lines.filter((l) => l['reqId'] === id);
          const hot = id === 'a-pin' || id === 'a-query';
          if (level === 'info' && hot) {
            expect(lines, id).toEqual([]);
            continue;
          }
          expect(lines, id).toHaveLength(1);
          expect(lines[0], id).toMatchObject({ level: hot ? 20 : 30, method, url, statusCode: id === 'a-miss' ? 404 : id === 'a-domain' ? 201 : 200 });
          expect(typeof lines[0]?.['responseTime'], id).toBe('number');
        }
        if (level === 'debug') {
          expect(sink.lines.find((l) => l['reqId'] === 'a-pin')).toMatchObject({ msg: 'decision', decision: 'pin', rules: ['F1'], flushRanges: 1, revision: 4 });
          expect(sink.lines.find((l) => l['reqId'] === 'a-query')).toMatchObject({ msg: 'request completed' });
        }
        expect(sink.lines.find((l) => l['reqId'] === 'a-domain')).toMatchObject({ level: 30, msg: 'decision', decision: 'put-domain', vmId: 'vm1' });
      } finally {
        await logged.close();
      }
    }
  });

  it('never logs a credential given in the query string', async () => {
    const sink = new LogSink();
    const logged = await build({ logger: { level: 'info', stream: sink } });
    try {
      await logged.inject({ method: 'GET', url: '/v1/vms?ACCESS_TOKEN=s3cret-two&limit=5&token=s3cret-one&x=1', headers: { 'x-request-id': 'q-token' } });
      const text = JSON.stringify(sink.lines);
      expect(text).not.toContain('s3cret');
      expect(sink.lines.find((l) => l['reqId'] === 'q-token')).toMatchObject({ url: '/v1/vms?ACCESS_TOKEN=[redacted]&limit=5&token=[redacted]&x=1' });
    } finally {
      await logged.close();
    }
  });
});
