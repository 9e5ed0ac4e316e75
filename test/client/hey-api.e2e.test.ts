/**
 * A second third party's client: @hey-api/openapi-ts (its default options: the TypeScript types,
 * the SDK and its fetch client) generated from the committed OpenAPI document into a scratch
 * project. The GPU VM session type-checks against it and runs against a server listening on a
 * port of the system's choosing, acknowledging every flush job; the VM's events come through the
 * generated SSE client as a stream, read while the session runs and left once the last expected
 * event arrived, within a time limit (documented as JSON, the stream would be awaited to its end).
 */
import { describe, expect, it } from 'vitest';
import { generatedClient } from '../helpers/generated-client.js';

/** The session, as a third party writes it against the generated SDK. */
const SESSION = `import { client } from './api/client.gen.js';
import { ack, deleteVm, devctl, events, getVm, pin, putDevice, putDomain, putVm, unpin } from './api/index.js';
import type { DecisionEvent, FlushJobEvent } from './api/index.js';

client.setConfig({ baseUrl: process.argv[2] });
const vm = { path: { vmId: 'vm1' } };
const gpu = { path: { vmId: 'vm1', bdf: '0000:00:02.0' } };
const answers: unknown[] = [];
const acked: string[] = [];

/** The VMM's part: it performs each flush it is answered, then acknowledges it (no report: the body is optional). */
async function flushed(jobId: string | undefined): Promise<void> {
  if (jobId === undefined) return;
  const done = await ack({ path: { jobId }, throwOnError: true });
  acked.push(done.data.id);
}

const created = await putVm({ ...vm, body: { arch: 'x86_64', policy: { mode: 'trap' } }, throwOnError: true });
answers.push(created.data.revision);

// The VM's events, as they come, until the teardown's flush is acknowledged (or the time limit).
const controller = new AbortController();
let timedOut = false;
const limit = setTimeout(() => {
  timedOut = true;
  controller.abort();
}, 20_000);
let subscribed!: () => void;
const open = new Promise<void>((resolve) => (subscribed = resolve));
const kinds: string[] = [];
const { stream } = await events({
  ...vm,
  signal: controller.signal,
  sseMaxRetryAttempts: 1,
  onSseEvent: (event) => {
    // The stream's opening comment says the subscription is in place; events carry data.
    if (event.data === undefined) subscribed();
    else kinds.push(event.event ?? '');
  }
});
const seen: string[] = [];
let teardownJob: string | undefined;
const reading = (async () => {
  for await (const data of stream) {
    const kind = kinds.shift();
    if (kind === 'flush-job') {
      const job = data as FlushJobEvent;
      seen.push(\`flush-job:\${job.state}\`);
      if (job.id === teardownJob && job.state === 'acknowledged') break;
    } else if (kind === 'decision') {
      seen.push(\`decision:\${(data as DecisionEvent).command}\`);
    } else {
      seen.push(kind ?? '?');
    }
  }
})();
await open;

const domain = await putDomain({ path: { vmId: 'vm1', domainId: 'd0' }, body: { enforceCacheCoherency: false, iommu: 'vtd-igfx' }, throwOnError: true });
answers.push(domain.data.kvmNoncoherentDma);
const device = await putDevice({ ...gpu, body: { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'disabled' }, throwOnError: true });
answers.push(device.data.reasons.map((r) => r.rule));
const pinned = await pin({ ...vm, body: { iova: '0x0', hpa: '0x100000000', length: '0x200000000' }, throwOnError: true });
answers.push(pinned.data.flush.required);
await flushed(pinned.data.flush.jobId);
const enabled = await devctl({ ...gpu, body: { nosnoopEnable: true }, throwOnError: true });
answers.push([enabled.data.decision, enabled.data.reasons.map((r) => r.rule), enabled.data.flush.bytes]);
await flushed(enabled.data.flush.jobId);
const state = await getVm({ ...vm, throwOnError: true });
answers.push(state.data.openFlushJobs);
const unpinned = await unpin({ ...vm, body: { iova: '0x0', length: '0x200000000' }, throwOnError: true });
answers.push(unpinned.data.flush.bytes);
await flushed(unpinned.data.flush.jobId);
const again = await pin({ ...vm, body: { iova: '0x0', hpa: '0x100000000', length: '0x40000000' }, throwOnError: true });
await flushed(again.data.flush.jobId);
const teardown = await deleteVm({ ...vm, throwOnError: true });
answers.push([teardown.data.reasons.map((r) => r.rule), teardown.data.flush.bytes]);
teardownJob = teardown.data.flush.jobId;
await flushed(teardownJob);

await reading;
clearTimeout(limit);
controller.abort();
console.log(JSON.stringify({ answers, acked: acked.length, events: seen, timedOut }));
`;

const client = generatedClient({ prefix: 'coherency-hey-api-', generator: ['@hey-api/openapi-ts/bin/run.js', '-i', '{doc}', '-o', '{scratch}/api'], session: SESSION, lib: ['es2022', 'dom'] });

describe('a client generated from the OpenAPI document (@hey-api/openapi-ts, default options)', () => {
  it('the GPU VM session with its event stream type-checks against the generated SDK', async () => {
    await expect(client.typeCheck()).resolves.toBeDefined();
  }, 120_000);

  it('runs against a listening server, acknowledging every flush, and reads the VM\'s events as a stream within a time limit', async () => {
    const started = Date.now();
    const stdout = await client.runSession(60_000);
    const result = JSON.parse(stdout) as { answers: unknown[]; acked: number; events: string[]; timedOut: boolean };
    expect(result.timedOut).toBe(false);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(result.answers).toEqual([1, false, ['K1'], false, ['allow', ['W4', 'F2'], '0x200000000'], [], '0x200000000', [['F5', 'F3'], '0x40000000']]);
    // The devctl's replay, the unpin's flush, the second pin's (its domain is exposed by then) and the teardown's.
    expect(result.acked).toBe(4);
    expect(result.events).toEqual([
      'decision:put-domain',
      'decision:put-device',
      'decision:pin',
      'decision:devctl',
      'flush-job:pending',
      'flush-job:acknowledged',
      'decision:unpin',
      'flush-job:pending',
      'flush-job:acknowledged',
      'decision:pin',
      'flush-job:pending',
      'flush-job:acknowledged',
      'deleted',
      'flush-job:pending',
      'flush-job:acknowledged'
    ]);
  }, 120_000);
});
