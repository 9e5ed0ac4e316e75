import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppOptions } from '../../src/http/app.js';

/** Collects pino's JSON lines, to assert on what an operator would grep. */
export class LogSink extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  }
}

export async function build(options: AppOptions = {}): Promise<FastifyInstance> {
  return buildApp(options);
}

export const json = { 'content-type': 'application/json' } as const;

/** Creates vm1 with a non-coherent d0 and a device that may no-snoop (pessimistic unless told). */
export async function gpuVm(app: FastifyInstance, mode = 'pessimistic'): Promise<void> {
  for (const [method, url, payload] of [
    ['PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode } }],
    ['PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false }],
    ['PUT', '/v1/vms/vm1/devices/0000:00:02.0', { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', nosnoop: 'enabled' }]
  ] as const) {
    const res = await app.inject({ method, url, headers: json, payload });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
  }
}

/** Creates vmq: trap with onEnable deny, a non-coherent d0, a device with the bit clear, a 2 MiB pin (no flush). */
export async function quirkVm(app: FastifyInstance): Promise<void> {
  for (const [method, url, payload] of [
    ['PUT', '/v1/vms/vmq', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'deny' } }],
    ['PUT', '/v1/vms/vmq/domains/d0', { enforceCacheCoherency: false }],
    ['PUT', '/v1/vms/vmq/devices/0000:01:00.0', { domainId: 'd0', vendorId: '0x1d0f', deviceId: '0x1234', function: 'pf', nosnoop: 'disabled' }],
    ['POST', '/v1/vms/vmq/pins', { iova: '0x0', hpa: '0x40000000', length: '0x200000' }]
  ] as const) {
    const res = await app.inject({ method, url, headers: json, payload });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
  }
}

/** Whether /readyz answers 200 within 5 s (the app recovering by itself from a store outage). */
export async function readyAgain(app: FastifyInstance): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    if ((await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200) return true;
  }
  return false;
}
