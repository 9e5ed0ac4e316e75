/**
 * The HTTP latency histogram counts without prom-client's per-observation allocations; what
 * /metrics shows of it must be exactly what prom-client's own Histogram shows for the same
 * observations.
 */
import fc from 'fast-check';
import { Histogram, Registry, type Metric } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../src/service/metrics.js';

const BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5];

describe('LatencyHistogram', () => {
  it("writes exactly what prom-client's Histogram writes for the same observations", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
            route: fc.constantFrom('/v1/vms/:vmId/pins', '/v1/vms/:vmId/decisions/flush', 'unknown', '/v1/quirks'),
            status: fc.constantFrom(200, 201, 404, 409, 503),
            // Bounds themselves included: a value equal to a bound falls in that bucket.
            seconds: fc.oneof(fc.constantFrom(...BOUNDS, 0, 3), fc.double({ min: 0, max: 5, noNaN: true }))
          }),
          { maxLength: 60 }
        ),
        async (observations) => {
          const ours = new Registry();
          const theirs = new Registry();
          const fast = new LatencyHistogram('coherency_http_request_duration_seconds', 'HTTP request latency', BOUNDS);
          ours.registerMetric(fast as unknown as Metric);
          const reference = new Histogram({ name: 'coherency_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['method', 'route', 'status'] as const, buckets: BOUNDS, registers: [theirs] });
          for (const o of observations) {
            fast.observe(o.method, o.route, o.status, o.seconds);
            reference.labels(o.method, o.route, String(o.status)).observe(o.seconds);
          }
          const [mine, reference_] = [await ours.metrics(), await theirs.metrics()];
          // Label sets may come in another order; each line is the same.
          const sorted = (text: string): string[] => text.split('\n').sort();
          expect(sorted(mine)).toEqual(sorted(reference_));
          // One label set: the very same text, buckets in order, then sum and count.
          const sets = new Set(observations.map((o) => `${o.method} ${o.route} ${o.status}`));
          if (sets.size <= 1) expect(mine).toBe(reference_);
        }
      ),
      { numRuns: 300 }
    );
  });

  it('writes one label set in the same order as prom-client: buckets upward, then sum and count', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new LatencyHistogram('coherency_http_request_duration_seconds', 'HTTP request latency', BOUNDS);
    ours.registerMetric(fast as unknown as Metric);
    const reference = new Histogram({ name: 'coherency_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['method', 'route', 'status'] as const, buckets: BOUNDS, registers: [theirs] });
    for (let i = 0; i < 1000; i++) {
      const seconds = ((i * 7919) % 3001) / 1000;
      fast.observe('POST', '/v1/vms/:vmId/pins', 200, seconds);
      reference.labels('POST', '/v1/vms/:vmId/pins', '200').observe(seconds);
    }
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toMatch(/coherency_http_request_duration_seconds_bucket\{le="0.005",method="POST",route="\/v1\/vms\/:vmId\/pins",status="200"\} \d+/);
  });
});
