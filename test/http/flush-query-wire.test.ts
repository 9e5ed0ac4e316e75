/**
 * The decisions/flush shortcuts (src/http/flush-query-wire.ts) must be invisible: a body taken
 * as plain is one zod accepts unchanged, and the hand-written answer is byte for byte what the
 * zod serializer writes, for hits, misses, F4, C1 and fail-closed answers.
 */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { serializerCompiler } from 'fastify-type-provider-zod';
import { afterEach, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { DecisionBuilder, DEFAULT_POLICY, formatPages, MEM_TYPES, parsePageAddress, parsePageLength, RULE_IDS, type FlushCause } from '../../src/domain/index.js';
import { echoOf, FlushQueryReply, hexOf, isEmptyQuery, isPlainFlushQuery, isPlainVmParams, parseFlushQueryBytes, serializeFlushQueryReply } from '../../src/http/flush-query-wire.js';
import { FreshQuery, VmParams } from '../../src/contract/common.js';
import { FlushQueryAnswer, FlushQueryBody } from '../../src/contract/pin.js';
import { createRuntime } from '../../src/service/runtime.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { build, json } from '../helpers/app.js';

const zodSerialize = serializerCompiler({ schema: FlushQueryAnswer, method: 'POST', url: '/v1/vms/:vmId/decisions/flush' });

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function ask(a: FastifyInstance, vm: string, body: object): Promise<{ status: number; text: string }> {
  const res = await a.inject({ method: 'POST', url: `/v1/vms/${vm}/decisions/flush`, headers: json, payload: body });
  return { status: res.statusCode, text: res.body };
}

async function put(a: FastifyInstance, method: 'PUT' | 'POST', url: string, payload: object): Promise<void> {
  const res = await a.inject({ method, url, headers: json, payload });
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
}

describe('decisions/flush answers', () => {
  it('are exactly what the zod serializer writes: hits, misses, F2, F3, F4, C1, F1 with and without hpa', async () => {
    const a = await build();
    app = a;
    await put(a, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    await put(a, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
    await put(a, 'PUT', '/v1/vms/vm1/domains/c0', { enforceCacheCoherency: true });
    await put(a, 'PUT', '/v1/vms/vm1/devices/0000:00:02.0', { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'enabled' });
    await put(a, 'POST', '/v1/vms/vm1/pins', {
      ranges: [
        { iova: '0x0', hpa: '0x100000', length: '0x2000' },
        { iova: '0x4000', hpa: '0x300000', length: '0x1000', memType: 'UC', mmio: true },
        { iova: '0x8000', hpa: '0x200000', length: '0x1000', domains: ['c0'] }
      ]
    });
    // Each op as its change would answer it: map previews pins (and replays of pinned ranges),
    // unmap previews unpins of whole pinned ranges.
    const asked = {
      map: [
        { iova: '0x0', length: '0x2000' },
        { iova: '0x1000', length: 4096 },
        { iova: '0x4000', length: '0x1000' },
        { iova: '0x8000', length: '0x1000' },
        { iova: '0x10000', length: '0x1000', hpa: '0x900000' },
        { iova: '0x20000', length: '0x1000', hpa: '0xa00000', memType: 'WC', mmio: true },
        { iova: '0x30000', length: '0x1000', domains: ['c0'] },
        { iova: '0x40000', length: '0x1000' }
      ],
      unmap: [
        { iova: '0x0', length: '0x2000' },
        { iova: '0x4000', length: '0x1000' },
        { iova: '0x0', length: '0x10000' }
      ]
    };
    const rules = new Set<string>();
    for (const op of ['map', 'unmap'] as const) {
      const res = await ask(a, 'vm1', { op, ranges: asked[op] });
      expect(res.status).toBe(200);
      const parsed = JSON.parse(res.text) as z.output<typeof FlushQueryAnswer>;
      expect(res.text).toBe(zodSerialize(parsed));
      for (const r of parsed.results) rules.add(r.rule);
    }
    expect([...rules].sort()).toEqual(['C1', 'F1', 'F2', 'F3', 'F4']);
    const miss = await ask(a, 'vm1', { op: 'unmap', ranges: [{ iova: '0x40000', length: '0x1000' }] });
    expect(miss.status).toBe(404);
    expect(JSON.parse(miss.text)).toMatchObject({ code: 'UNKNOWN_RANGE' });
  });

  it('fail closed is written the same way too', async () => {
    // A runtime whose store was never loaded: every decision fails closed.
    const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: [], store: new MemoryStore(), threads: 1 });
    const a = await build({ runtime });
    app = a;
    const res = await ask(a, 'vm1', { op: 'map', ranges: [{ iova: '0x0', length: '0x1000', hpa: '0x5000' }, { iova: '0x3000', length: '0x2000' }] });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toMatchObject({ failClosed: 'STORE_UNAVAILABLE', flush: { required: true } });
    expect(res.text).toBe(zodSerialize(JSON.parse(res.text)));
  });

  const pageNumber = fc.oneof(fc.nat({ max: 0xfff }), fc.nat({ max: 2 ** 31 }), fc.integer({ min: 0, max: 2 ** 52 - 1 }));
  const cause = fc.constantFrom<FlushCause>('pin', 'unpin', 'replay', 'teardown');
  /** Decisions as the domain builds them: flush ranges coalesced (many, to list them lazily), reasons with any text. */
  const decision = fc
    .record({
      flushes: fc.array(fc.tuple(pageNumber, fc.integer({ min: 1, max: 2 ** 20 })), { maxLength: 100 }),
      cause,
      unlisted: fc.boolean(),
      reasons: fc.array(fc.tuple(fc.constantFrom(...RULE_IDS), fc.string({ unit: 'binary' })), { maxLength: 4 }),
      kvm: fc.boolean()
    })
    .map(({ flushes, cause: c, unlisted, reasons, kvm }) => {
      const out = new DecisionBuilder();
      for (const [hpa, pages] of flushes) out.flush(hpa, pages, c);
      if (unlisted) out.unlisted(c);
      for (const [rule, message] of reasons) out.reason(rule, message);
      return out.build(kvm);
    });
  const reply = fc
    .record(
      {
        op: fc.constantFrom('map' as const, 'unmap' as const),
        decision,
        after: fc.array(fc.string({ unit: 'binary', maxLength: 12 }), { maxLength: 3 }),
        results: fc.array(fc.record({ iova: pageNumber, pages: fc.integer({ min: 1, max: 2 ** 40 }), required: fc.boolean(), rule: fc.constantFrom(...RULE_IDS) }), { maxLength: 30 }),
        failClosed: fc.constant('STORE_UNAVAILABLE' as const)
      },
      { requiredKeys: ['op', 'decision', 'results'] }
    )
    .map(
      (r) =>
        new FlushQueryReply(
          r.op,
          r.decision,
          r.after,
          echoOf(
            r.results.map((x) => formatPages(x.iova)),
            r.results.map((x) => formatPages(x.pages))
          ),
          Uint8Array.from(r.results, (x) => (x.required ? 1 : 0)),
          r.results.map((x) => x.rule),
          r.failClosed
        )
    );

  it('serializeFlushQueryReply writes exactly the zod serializer\'s bytes for generated decisions', () => {
    fc.assert(
      fc.property(reply, (a) => {
        expect(serializeFlushQueryReply(a).toString('utf8')).toBe(zodSerialize(a));
      }),
      { numRuns: 500 }
    );
  });

  it('lists at most 10,000 flush ranges, as the schema serializer does', () => {
    const out = new DecisionBuilder();
    for (let i = 0; i < 10_050; i++) out.flush(i * 3, 1, 'unpin');
    const a = new FlushQueryReply('unmap', out.build(false), undefined, echoOf([], []), new Uint8Array(0), []);
    const text = serializeFlushQueryReply(a).toString('utf8');
    expect(text).toBe(zodSerialize(a));
    expect(JSON.parse(text)).toMatchObject({ flush: { rangeCount: 10_050, rangesTruncated: true } });
  });
});

describe('decisions/flush bodies', () => {
  const hexIn = fc.oneof(
    fc.nat({ max: 2 ** 40 }).map((n) => `0x${(n * 4096).toString(16)}`),
    fc.string({ maxLength: 24 }),
    fc.nat({ max: 2 ** 40 }).map((n) => n * 4096),
    fc.oneof(fc.double(), fc.integer({ min: -10, max: 10 }), fc.constant(2 ** 60), fc.constant(null), fc.constant(true))
  );
  const range = fc.dictionary(
    fc.constantFrom('iova', 'length', 'hpa', 'memType', 'mmio', 'domains', 'extra'),
    fc.oneof(hexIn, fc.constantFrom<unknown>(...MEM_TYPES, 'XX', false, true), fc.array(fc.oneof(fc.string({ maxLength: 70 }), fc.integer()), { maxLength: 3 })),
    { minKeys: 1, maxKeys: 6 }
  );
  const body = fc.oneof(
    fc.record({ op: fc.constantFrom<unknown>('map', 'unmap', 'MAP', 1), ranges: fc.array(range, { maxLength: 4 }) }),
    fc.record({ op: fc.constantFrom<unknown>('map', 'unmap'), ranges: fc.array(range, { maxLength: 4 }), extra: fc.constant(1) }),
    fc.record({ op: fc.constantFrom<unknown>('map', 'unmap'), ranges: fc.array(fc.record({ iova: hexIn, length: hexIn }), { minLength: 1, maxLength: 4 }) }),
    fc.constantFrom<unknown>(null, [], 'x', 1, { ranges: [] })
  );

  it('a body taken as plain is one zod accepts and returns unchanged', () => {
    let plain = 0;
    fc.assert(
      fc.property(body, (b) => {
        if (!isPlainFlushQuery(b)) return;
        plain++;
        const parsed = FlushQueryBody.safeParse(b);
        expect(parsed.success).toBe(true);
        expect(parsed.data).toEqual(b);
      }),
      { numRuns: 3000 }
    );
    // The generator must exercise the shortcut, not only the fallback.
    expect(plain).toBeGreaterThan(100);
  });

  it('the usual bodies are plain', () => {
    expect(isPlainFlushQuery({ op: 'map', ranges: [{ iova: '0x0', length: '0x1000' }] })).toBe(true);
    expect(isPlainFlushQuery({ op: 'unmap', ranges: [{ iova: 0, length: 4096, hpa: '0x1000', memType: 'UC', mmio: true, domains: ['d0'] }] })).toBe(true);
    expect(isPlainFlushQuery({ op: 'map', ranges: [] })).toBe(false);
    expect(isPlainFlushQuery({ op: 'map', ranges: [{ iova: '0x0' }] })).toBe(false);
  });

  it('other bodies still get zod\'s 400 problem', async () => {
    const a = await build();
    app = a;
    for (const b of [{ op: 'map', ranges: [] }, { op: 'map', ranges: [{ iova: '0x0', length: '0x1000', extra: 1 }] }, { op: 'x', ranges: [{ iova: '0x0', length: '0x1000' }] }, { op: 'map', ranges: [{ iova: 'x'.repeat(21), length: '0x1000' }] }]) {
      const res = await a.inject({ method: 'POST', url: '/v1/vms/vm1/decisions/flush', headers: json, payload: b });
      expect(res.statusCode).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json()).toMatchObject({ code: 'VALIDATION_FAILED' });
    }
  });
});

describe('decisions/flush path parameters and query string', () => {
  it('taken as plain only when zod accepts them unchanged', () => {
    const value = fc.oneof(fc.string({ maxLength: 70 }), fc.integer(), fc.constant(undefined));
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom('vmId', 'minRevision', 'x'), value, { maxKeys: 3 }), (params) => {
        if (isPlainVmParams(params)) expect(VmParams.parse(params)).toEqual(params);
        if (isEmptyQuery(params)) expect(FreshQuery.parse(params)).toEqual({});
      }),
      { numRuns: 2000 }
    );
    expect(isPlainVmParams({ vmId: 'vm1' })).toBe(true);
    expect(isEmptyQuery(Object.create(null))).toBe(true);
    expect(isEmptyQuery({ minRevision: '3' })).toBe(false);
  });

  it('minRevision is still read, and a bad one still refused', async () => {
    const a = await build();
    app = a;
    await put(a, 'PUT', '/v1/vms/vm1', { arch: 'x86_64' });
    await put(a, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: true });
    const body = { op: 'map', ranges: [{ iova: '0x0', length: '0x1000' }] };
    const fresh = await a.inject({ method: 'POST', url: '/v1/vms/vm1/decisions/flush?minRevision=1', headers: json, payload: body });
    expect(fresh.statusCode).toBe(200);
    expect(fresh.json()).toMatchObject({ results: [{ rule: 'C1' }] });
    const bad = await a.inject({ method: 'POST', url: '/v1/vms/vm1/decisions/flush?minRevision=-1', headers: json, payload: body });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'VALIDATION_FAILED' });
    const long = await a.inject({ method: 'POST', url: `/v1/vms/${'v'.repeat(65)}/decisions/flush`, headers: json, payload: body });
    expect(long.statusCode).toBe(400);
  });
});

describe('hexOf', () => {
  it('is formatPages of what the caller sent, however the caller wrote it', () => {
    const digits = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), minLength: 0, maxLength: 13 });
    const given = fc.oneof(
      digits.map((d) => `0x${d}000`),
      digits.map((d) => `0X${d}000`),
      digits.map((d) => `0x00${d.slice(0, 11)}000`),
      fc.nat({ max: 2 ** 40 }).map((n) => n * 4096),
      fc.constantFrom('0x0', '0x000', '0xfffffffffffff000', '0x0ffffffffffff000')
    );
    fc.assert(
      fc.property(given, (g) => {
        const pages = parsePageAddress(g, 'iova');
        expect(hexOf(g, pages)).toBe(formatPages(pages));
      }),
      { numRuns: 5000 }
    );
  });
});

describe('parseFlushQueryBytes', () => {
  const address = fc.oneof(fc.nat({ max: 2 ** 40 }).map((n) => `0x${(n * 4096).toString(16)}`), fc.string({ maxLength: 24 }), fc.nat());
  const range = fc.oneof(
    fc.record({ iova: address, length: address }),
    fc.record({ iova: address, length: address, hpa: address }),
    fc.record({ length: address, iova: address })
  );
  const body = fc.record({ op: fc.constantFrom<unknown>('map', 'unmap', 'MAP', 1), ranges: fc.array(range, { maxLength: 5 }) });
  /** JSON texts near the shortcut's shape: compact, indented, and with characters inserted, removed or replaced. */
  const hexString = fc.nat({ max: 2 ** 40 }).map((n) => `0x${(n * 4096).toString(16)}`);
  const plainBody = fc.record({ op: fc.constantFrom('map', 'unmap'), ranges: fc.array(fc.record({ iova: hexString, length: hexString }), { minLength: 1, maxLength: 5 }) });
  const text = fc.oneof(
    plainBody.map((b) => JSON.stringify(b)),
    fc.tuple(plainBody.map((b) => JSON.stringify(b)), fc.nat(), fc.nat({ max: 3 }), fc.constantFrom('', '"', '\\', '\\"', '\\u0030', '\u0001', ' ', '}', ']', ',', '{', '0', 'x', 'é')).map(([t, at, drop, insert]) => {
      const k = at % (t.length + 1);
      return t.slice(0, k) + insert + t.slice(k + drop);
    }),
    body.map((b) => JSON.stringify(b)),
    body.map((b) => JSON.stringify(b, null, 1)),
    fc.tuple(body.map((b) => JSON.stringify(b)), fc.nat(), fc.nat({ max: 3 }), fc.constantFrom('', '"', '\\', '\\"', '\\u0030', '\u0001', ' ', '}', ']', ',', '{', '0', 'x')).map(([t, at, drop, insert]) => {
      const k = at % (t.length + 1);
      return t.slice(0, k) + insert + t.slice(k + drop);
    })
  );

  it('gives what JSON.parse gives, or leaves the text to it', () => {
    let read = 0;
    fc.assert(
      fc.property(text, (t) => {
        const plain = parseFlushQueryBytes(Buffer.from(t));
        if (plain === undefined) return;
        read++;
        const parsed = JSON.parse(t) as { op: string; ranges: { iova: string; length: string }[] };
        expect({ op: plain.op, ranges: plain.ranges }).toEqual(parsed);
        expect(isPlainFlushQuery(parsed)).toBe(true);
        // Its columns are the page numbers the route would parse from the same body.
        expect([...plain.iova]).toEqual(parsed.ranges.map((r) => parsePageAddress(r.iova, 'iova')));
        expect([...plain.pages]).toEqual(parsed.ranges.map((r) => parsePageLength(r.length, 'length')));
        // And it echoes each range as the answer writes it.
        expect(plain.ranges.flatMap((r) => [r.iova, r.length])).toEqual(parsed.ranges.flatMap((r) => [hexOf(r.iova, parsePageAddress(r.iova, 'iova')), hexOf(r.length, parsePageAddress(r.length, 'length'))]));
      }),
      { numRuns: 5000 }
    );
    expect(read).toBeGreaterThan(200);
  });

  it('reads the usual compact body', () => {
    const bytes = (t: string): Buffer => Buffer.from(t);
    const plain = parseFlushQueryBytes(bytes('{"op":"unmap","ranges":[{"iova":"0x0","length":"0x1000"},{"iova":"0x2000","length":"0x3000"}]}'));
    expect(plain?.op).toBe('unmap');
    expect([...(plain?.iova ?? [])]).toEqual([0, 2]);
    expect([...(plain?.pages ?? [])]).toEqual([1, 3]);
    expect(parseFlushQueryBytes(bytes('{"op":"map","ranges":[{"iova":"0x0","length":"0x1000"}]}\n'))).toBeUndefined();
    expect(parseFlushQueryBytes(bytes('{"op":"map","ranges":[{"iova":"0\\u0078","length":"0x1000"}]}'))).toBeUndefined();
    // Not canonical (upper case, a leading zero, unaligned, empty, too long): left to JSON.parse and zod.
    for (const iova of ['0X1000', '0xA000', '0x01000', '0x1001', '0x', '0x10000000000000000']) {
      expect(parseFlushQueryBytes(bytes(`{"op":"map","ranges":[{"iova":"${iova}","length":"0x1000"}]}`))).toBeUndefined();
    }
    expect(parseFlushQueryBytes(bytes('{"op":"map","ranges":[{"iova":"0x1000","length":"0x0"}]}'))).toBeUndefined();
  });

  it('other texts get the same answers as on a route with the default JSON parser', async () => {
    const a = await build();
    app = a;
    await put(a, 'PUT', '/v1/vms/vm1', { arch: 'x86_64' });
    await put(a, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: true });
    for (const payload of ['', '{', '{"op":"map","ranges":[{"iova":"0x0","length":"0x1000"}]', '{"op":"map","ranges":[{"iova":"0x\u0001","length":"0x1000"}]}', '{"__proto__":{"x":1},"op":"map","ranges":[{"iova":"0x0","length":"0x1000"}]}', '{"op":"map","constructor":{"prototype":{}},"ranges":[]}']) {
      const decision = await a.inject({ method: 'POST', url: '/v1/vms/vm1/decisions/flush', headers: json, payload });
      const pins = await a.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: json, payload });
      expect(decision.statusCode).toBe(400);
      expect({ status: decision.statusCode, code: decision.json<{ code: string }>().code }).toEqual({ status: pins.statusCode, code: pins.json<{ code: string }>().code });
    }
    const spaced = await a.inject({ method: 'POST', url: '/v1/vms/vm1/decisions/flush', headers: json, payload: '{ "op": "map", "ranges": [ { "iova": "0x0", "length": "0x1000" } ] }' });
    expect(spaced.statusCode).toBe(200);
    expect(spaced.json()).toMatchObject({ results: [{ iova: '0x0', rule: 'C1' }] });
    const charset = await a.inject({ method: 'POST', url: '/v1/vms/vm1/decisions/flush', headers: { 'content-type': 'application/json; charset=utf-8' }, payload: '{"op":"map","ranges":[{"iova":"0x0","length":"0x1000"}]}' });
    expect(charset.statusCode).toBe(200);
    const text = await a.inject({ method: 'POST', url: '/v1/vms/vm1/decisions/flush', headers: { 'content-type': 'text/plain' }, payload: '{"op":"map","ranges":[{"iova":"0x0","length":"0x1000"}]}' });
    expect(text.statusCode).toBe(415);
  });
});
