/**
 * The compiled serializers of every answer that carries a decision, and the body shortcuts of the
 * pin and unpin routes (src/http/pin-wire.ts), must be invisible: a compiled serializer
 * writes exactly the zod serializer's bytes for any answer its schema admits, and a body taken as
 * plain is one zod accepts unchanged.
 */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { serializerCompiler } from 'fastify-type-provider-zod';
import { afterEach, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { DecisionBuilder, RULE_IDS, type FlushCause } from '../../src/domain/index.js';
import { compileSerializer, DECISION_ANSWERS } from '../../src/http/compiled-wire.js';
import { isPlainRangeBody, parseRangeBatchBytes } from '../../src/http/pin-wire.js';
import { DecisionReply, serializeDecisionReply } from '../../src/http/decision-bytes.js';
import { pinInput, rangeInput } from '../../src/http/wire.js';
import { VmDecision } from '../../src/http/routes/vms.js';
import { Decision, DevctlDecision, DeviceDecision } from '../../src/contract/decision.js';
import { PutQuirksAnswer } from '../../src/contract/quirk.js';
import { PinBody, UnpinBody } from '../../src/contract/pin.js';
import { build, json } from '../helpers/app.js';
import { hex, int, receipt, text } from '../helpers/wire-arbitraries.js';

const zodSerialize = serializerCompiler({ schema: Decision, method: 'POST', url: '/v1/vms/:vmId/pins' });
const compiled = compileSerializer(Decision);

const hex16 = fc.integer({ min: 0, max: 0xffff }).map((n) => `0x${n.toString(16).padStart(4, '0')}`);
const decision = fc.record(
  {
    flush: fc.record(
      {
        required: fc.boolean(),
        bytes: hex,
        ranges: fc.array(fc.record({ hpa: hex, length: hex }), { maxLength: 5 }),
        rangeCount: int,
        rangesTruncated: fc.boolean(),
        cause: fc.constantFrom('pin', 'unpin', 'replay', 'teardown'),
        when: fc.constantFrom('before-map', 'after-unmap'),
        jobId: text,
        after: fc.array(text, { maxLength: 3 }),
        receipt
      },
      { requiredKeys: ['required', 'bytes', 'ranges', 'rangeCount', 'rangesTruncated'] }
    ),
    reasons: fc.array(fc.record({ rule: fc.constantFrom(...RULE_IDS), message: text }), { maxLength: 4 }),
    kvmNoncoherentDma: fc.boolean(),
    revision: int,
    devices: fc.array(fc.record({ bdf: text, decision: fc.constantFrom('allow', 'deny'), hardwareValue: hex16, guestValue: hex16 }), { maxLength: 3 })
  },
  { requiredKeys: ['flush', 'reasons', 'kvmNoncoherentDma', 'revision'] }
);

const verdict = fc.constantFrom('allow', 'deny', 'ignore');
const deviceDecision = fc.tuple(decision, fc.record({ decision: verdict, hardwareValue: hex16, guestValue: hex16 }, { requiredKeys: [] })).map(([d, x]) => ({ ...d, ...x }));
const devctlDecision = fc
  .tuple(decision, fc.record({ decision: verdict, hardwareValue: hex16, guestValue: hex16, dryRun: fc.boolean(), failClosed: fc.constant('STORE_UNAVAILABLE') }, { requiredKeys: ['decision', 'hardwareValue', 'guestValue', 'dryRun'] }))
  .map(([d, x]) => ({ ...d, ...x }));

describe('the compiled serializers of decision answers', () => {
  for (const [name, schema, answers] of [
    ['DeviceDecision', DeviceDecision, deviceDecision],
    ['DevctlDecision', DevctlDecision, devctlDecision]
  ] as const) {
    it(`${name}: writes exactly what the zod serializer writes, for any answer the schema admits`, () => {
      const zod = serializerCompiler({ schema, method: 'POST', url: '/' });
      const fast = compileSerializer(schema);
      fc.assert(
        fc.property(answers, (d) => {
          expect(fast(d)).toBe(zod(d));
        }),
        { numRuns: 1000 }
      );
    });
  }
});

describe('the compiled Decision serializer', () => {
  it('writes exactly what the zod serializer writes, for any answer the schema admits', () => {
    fc.assert(
      fc.property(decision, (d) => {
        expect(compiled(d)).toBe(zodSerialize(d));
      }),
      { numRuns: 2000 }
    );
  });

  it('leaves out what the schema does not name, as zod does', () => {
    const d = { flush: { required: false, bytes: '0x0', ranges: [], rangeCount: 0, rangesTruncated: false, extra: 1 }, reasons: [], kvmNoncoherentDma: false, revision: 3, state: {} };
    expect(compiled(d)).toBe(zodSerialize(d));
    expect(compiled(d)).toBe('{"flush":{"required":false,"bytes":"0x0","ranges":[],"rangeCount":0,"rangesTruncated":false},"reasons":[],"kvmNoncoherentDma":false,"revision":3}');
  });
});

const address = fc.oneof(fc.string({ maxLength: 24 }), fc.integer({ min: -5, max: Number.MAX_SAFE_INTEGER }), fc.constant(null), fc.double());
const rangeLike = fc.dictionary(fc.constantFrom('iova', 'hpa', 'length', 'memType', 'mmio', 'domains', 'x'), address, { maxKeys: 4 });
const bodyLike = fc.oneof(rangeLike, fc.record({ ranges: fc.array(rangeLike, { maxLength: 3 }) }), fc.dictionary(fc.constantFrom('ranges', 'iova', 'x'), fc.array(rangeLike, { maxLength: 2 })));

describe('plain pin and unpin bodies', () => {
  it('are bodies zod accepts unchanged (pins with hpa, unpins without)', () => {
    fc.assert(
      fc.property(bodyLike, fc.boolean(), (body, hpa) => {
        if (!isPlainRangeBody(body, hpa)) return;
        const parsed = (hpa ? PinBody : UnpinBody).safeParse(body);
        expect(parsed.success).toBe(true);
        expect(parsed.data).toEqual(body);
      }),
      { numRuns: 5000 }
    );
  });

  it('are the commonest forms: one range, or a batch of them', () => {
    expect(isPlainRangeBody({ iova: '0x0', hpa: '0x1000', length: '0x1000' }, true)).toBe(true);
    expect(isPlainRangeBody({ ranges: [{ iova: 0, hpa: 4096, length: 4096 }] }, true)).toBe(true);
    expect(isPlainRangeBody({ iova: '0x0', length: '0x1000' }, false)).toBe(true);
    expect(isPlainRangeBody({ ranges: [{ iova: '0x0', length: '0x1000' }] }, false)).toBe(true);
    // Anything else is left to zod: a missing hpa, an empty batch, extra keys, a negative number.
    expect(isPlainRangeBody({ iova: '0x0', length: '0x1000' }, true)).toBe(false);
    expect(isPlainRangeBody({ ranges: [] }, false)).toBe(false);
    expect(isPlainRangeBody({ iova: '0x0', length: '0x1000', memType: 'WB' }, false)).toBe(false);
    expect(isPlainRangeBody({ iova: -1, length: '0x1000' }, false)).toBe(false);
  });
});

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('every route answering a decision', () => {
  it('answers the zod serializer bytes of its schema, through a session that touches each of them', async () => {
    const a = await build();
    app = a;
    const schemas = new Map<string, z.ZodType>([
      ['VmDecision', VmDecision],
      ['Decision', Decision],
      ['DeviceDecision', DeviceDecision],
      ['DevctlDecision', DevctlDecision],
      ['PutQuirksAnswer', PutQuirksAnswer]
    ]);
    expect([...schemas.keys()].sort()).toEqual([...DECISION_ANSWERS].sort());
    const dev = '/v1/vms/vm1/devices/0000:00:02.0';
    const steps: [string, string, unknown, string][] = [
      ['PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } }, 'VmDecision'],
      ['PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow', flushMethod: 'clflush' } }, 'VmDecision'],
      ['PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false }, 'Decision'],
      ['PUT', dev, { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'disabled' }, 'DeviceDecision'],
      ['POST', '/v1/vms/vm1/pins', { ranges: [{ iova: '0x0', hpa: '0x100000', length: '0x2000' }, { iova: '0x4000', hpa: '0x200000', length: '0x1000', memType: 'UC', mmio: true }] }, 'Decision'],
      ['POST', `${dev}/devctl?dryRun=true`, { nosnoopEnable: true }, 'DevctlDecision'],
      ['POST', `${dev}/devctl`, { nosnoopEnable: true, dryRun: true }, 'DevctlDecision'],
      ['POST', `${dev}/devctl`, { nosnoopEnable: true }, 'DevctlDecision'],
      ['POST', `${dev}/reset`, { restoresConfig: false }, 'DeviceDecision'],
      ['PUT', '/v1/quirks', { quirks: [{ vendorId: '0x8086', deviceId: '0x9a49', flags: ['needs-nosnoop'], note: 'a "quoted" note' }] }, 'PutQuirksAnswer'],
      ['POST', '/v1/vms/vm1/unpins', { iova: '0x0', length: '0x2000' }, 'Decision'],
      ['DELETE', dev, undefined, 'DeviceDecision'],
      ['DELETE', '/v1/vms/vm1/domains/d0', undefined, 'Decision'],
      ['DELETE', '/v1/vms/vm1', undefined, 'Decision']
    ];
    for (const [method, url, payload, name] of steps) {
      const res = await a.inject({ method: method as 'PUT', url, ...(payload === undefined ? {} : { headers: json, payload: payload as object }) });
      expect([200, 201], `${method} ${url}: ${res.body}`).toContain(res.statusCode);
      const zod = serializerCompiler({ schema: schemas.get(name) as z.ZodType, method, url });
      expect(res.body, `${method} ${url}`).toBe(zod(JSON.parse(res.body)));
    }
  });
});

describe('pin and unpin answers', () => {
  it('are the zod serializer bytes, with a flush job, and errors keep their problem form', async () => {
    const a = await build();
    app = a;
    for (const [method, url, payload] of [
      ['PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } }],
      ['PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false }],
      ['PUT', '/v1/vms/vm1/devices/0000:00:02.0', { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'enabled' }]
    ] as const) {
      expect([200, 201]).toContain((await a.inject({ method, url, headers: json, payload })).statusCode);
    }
    const pin = await a.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: json, payload: { iova: '0x0', hpa: '0x100000', length: '0x2000' } });
    expect(pin.statusCode).toBe(200);
    const answer = JSON.parse(pin.body) as z.output<typeof Decision>;
    expect(answer.flush.jobId).toMatch(/^fj-/);
    expect(answer.flush.ranges).toEqual([{ hpa: '0x100000', length: '0x2000' }]);
    expect(pin.body).toBe(zodSerialize(answer));
    const unpin = await a.inject({ method: 'POST', url: '/v1/vms/vm1/unpins?wait=true', headers: json, payload: { ranges: [{ iova: '0x0', length: '0x2000' }] } });
    expect(unpin.statusCode).toBe(200);
    const released = JSON.parse(unpin.body) as z.output<typeof Decision>;
    expect(released.flush.receipt?.state).toBe('pending');
    expect(unpin.body).toBe(zodSerialize(released));
    const bad = await a.inject({ method: 'POST', url: '/v1/vms/vm1/pins', headers: json, payload: { iova: '0x0', length: '0x1000' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['content-type']).toMatch(/problem\+json/);
    expect((JSON.parse(bad.body) as { code: string }).code).toBe('VALIDATION_FAILED');
  });
});

describe('pin and unpin answers written as bytes (DecisionReply)', () => {
  const pageNumber = fc.oneof(fc.nat({ max: 0xfff }), fc.nat({ max: 2 ** 31 }), fc.integer({ min: 0, max: 2 ** 52 - 1 }));
  const decided = fc
    .record({
      flushes: fc.array(fc.tuple(pageNumber, fc.integer({ min: 1, max: 2 ** 20 })), { maxLength: 100 }),
      cause: fc.constantFrom<FlushCause>('pin', 'unpin', 'replay', 'teardown'),
      reasons: fc.array(fc.tuple(fc.constantFrom(...RULE_IDS), text), { maxLength: 4 }),
      kvm: fc.boolean(),
      revision: int,
      jobId: fc.option(text, { nil: undefined }),
      after: fc.option(fc.array(text, { maxLength: 3 }), { nil: undefined })
    })
    .map(({ flushes, cause, reasons, kvm, revision, jobId, after }) => {
      const out = new DecisionBuilder();
      for (const [hpa, pages] of flushes) out.flush(hpa, pages, cause);
      for (const [rule, message] of reasons) out.reason(rule, message);
      return new DecisionReply(out.build(kvm), revision, jobId, after);
    });

  it('are exactly the bytes the compiled and the zod serializers write for the same answer', () => {
    fc.assert(
      fc.property(decided, (reply) => {
        const bytes = serializeDecisionReply(reply).toString('utf8');
        expect(bytes).toBe(compiled(reply.wire()));
        expect(bytes).toBe(zodSerialize(reply.wire()));
      }),
      { numRuns: 500 }
    );
  });
});

describe('pin and unpin bodies read from their bytes', () => {
  const hexString = fc.oneof(
    { arbitrary: fc.nat({ max: 2 ** 40 }).map((n) => `0x${(n * 4096).toString(16)}`), weight: 8 },
    { arbitrary: fc.constantFrom('0x0', '0x1000', '0X1000', '0x01000', '0x1001', 'x'), weight: 1 }
  );
  const pinRange = fc.record({ iova: hexString, hpa: hexString, length: hexString });
  const unpinRange = fc.record({ iova: hexString, length: hexString });
  const texts = (range: fc.Arbitrary<object>) =>
    fc.oneof(
      fc.array(range, { minLength: 1, maxLength: 5 }).map((ranges) => JSON.stringify({ ranges })),
      fc.tuple(fc.array(range, { minLength: 1, maxLength: 5 }).map((ranges) => JSON.stringify({ ranges })), fc.nat(), fc.constantFrom('', ' ', '"', '\\', '}', ',', '0')).map(([t, at, insert]) => {
        const k = at % (t.length + 1);
        return t.slice(0, k) + insert + t.slice(k + 1);
      })
    );

  for (const hpa of [true, false]) {
    it(`${hpa ? 'pins' : 'unpins'}: what they read is what JSON.parse, the schema and ${hpa ? 'pinInput' : 'rangeInput'} give`, () => {
      let read = 0;
      fc.assert(
        fc.property(texts(hpa ? pinRange : unpinRange), (t) => {
          const plain = parseRangeBatchBytes(Buffer.from(t), hpa);
          if (plain === undefined) return;
          read++;
          const parsed = JSON.parse(t) as { ranges: { iova: string; hpa: string; length: string }[] };
          expect(isPlainRangeBody(parsed, hpa)).toBe(true);
          expect((hpa ? PinBody : UnpinBody).safeParse(parsed).success).toBe(true);
          if (hpa) expect(plain.pins()).toEqual(parsed.ranges.map(pinInput));
          else expect(plain.ranges()).toEqual(parsed.ranges.map(rangeInput));
        }),
        { numRuns: 2000 }
      );
      expect(read).toBeGreaterThan(100);
    });
  }
});
