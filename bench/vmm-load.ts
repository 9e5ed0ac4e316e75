/**
 * The write load of a VMM as the README tells it to behave, for the store and replica
 * benchmarks: each connection pins a page of its own, flushes and acknowledges the answer's flush
 * job (`POST /v1/flush-jobs/{jobId}/ack`), unpins the page, acknowledges that answer's job, and
 * again. With `acks: false` (a server under FLUSH_ACKS=answered) it pins and unpins only. Every
 * change of the VMs it is pointed at must flush (a non-coherent domain with a device that may
 * no-snoop, `setUpFlushingVm`), so every answer carries a job to acknowledge.
 *
 * Paths and headers are fixed per connection and each body is one short string: the load
 * generator shares the cores with the servers, so it builds no more than it must.
 */
import autocannon from 'autocannon';

export interface Load {
  /** HTTP requests per second, acknowledgements included. */
  readonly reqPerSec: number;
  /** Changes (pins and unpins) per second. */
  readonly changesPerSec: number;
  /** Latency p99 of every request, ms (autocannon's whole milliseconds). */
  readonly p99: number;
  /** Non-2xx answers and connection errors. */
  readonly errors: number;
  /** Seconds the load ran. */
  readonly seconds: number;
}

export interface WriteLoad {
  readonly port: number;
  /** VMs written to; connections are handed out to them in turn. */
  readonly vms: readonly string[];
  readonly connections: number;
  readonly seconds: number;
  /** Acknowledge every answer's flush job (the default protocol, FLUSH_ACKS=required). */
  readonly acks: boolean;
}

/** Pages handed to connections, never twice in one process (a run may end between a pin and its unpin). */
let nextPage = 0x100000;

const JOB_ID = /"jobId":"([^"]+)"/;

type Context = Record<string, string | number | undefined>;
type Req = Record<string, unknown>;

function ackRequest(key: 'pinJob' | 'unpinJob'): Record<string, unknown> {
  return {
    method: 'POST',
    // Set per request from the answer before it; a missing job id is a 404, counted as an error.
    path: '/v1/flush-jobs/none/ack',
    setupRequest: (req: Req, context: Context) => ({ ...req, path: `/v1/flush-jobs/${context[key] ?? 'none'}/ack` })
  };
}

function jobOf(key: 'pinJob' | 'unpinJob'): (status: number, body: string, context: Context) => void {
  return (_status, body, context) => {
    context[key] = JOB_ID.exec(body)?.[1];
  };
}

/** The sequence one connection repeats against VM `vm`. */
function sequence(vm: string, acks: boolean): Record<string, unknown>[] {
  const pin = {
    method: 'POST',
    path: `/v1/vms/${vm}/pins`,
    headers: { 'content-type': 'application/json' },
    setupRequest: (req: Req, context: Context) => {
      context['page'] ??= nextPage += 16;
      const page = context['page'] as number;
      return { ...req, body: `{"iova":"0x${(page * 4096).toString(16)}","hpa":"0x${(page * 8192).toString(16)}","length":"0x1000"}` };
    },
    ...(acks ? { onResponse: jobOf('pinJob') } : {})
  };
  const unpin = {
    method: 'POST',
    path: `/v1/vms/${vm}/unpins`,
    headers: { 'content-type': 'application/json' },
    setupRequest: (req: Req, context: Context) => ({ ...req, body: `{"iova":"0x${((context['page'] as number) * 4096).toString(16)}","length":"0x1000"}` }),
    ...(acks ? { onResponse: jobOf('unpinJob') } : {})
  };
  return acks ? [pin, ackRequest('pinJob'), unpin, ackRequest('unpinJob')] : [pin, unpin];
}

/** Runs the load for `seconds`; with several VMs, one autocannon instance per VM, at once. */
export async function vmmWrites(load: WriteLoad): Promise<Load> {
  const { port, vms, connections, seconds, acks } = load;
  const results = await Promise.all(
    vms.map((vm, i) =>
      autocannon({
        url: `http://127.0.0.1:${port}`,
        connections: Math.floor(connections / vms.length) + (i < connections % vms.length ? 1 : 0),
        duration: seconds,
        requests: sequence(vm, acks)
      })
    )
  );
  const total = results.reduce((n, r) => n + r.requests.total, 0);
  const duration = Math.max(...results.map((r) => r.duration));
  const reqPerSec = total / duration;
  return {
    reqPerSec,
    changesPerSec: acks ? reqPerSec / 2 : reqPerSec,
    p99: Math.max(...results.map((r) => r.latency.p99)),
    errors: results.reduce((n, r) => n + r.non2xx + r.errors, 0),
    seconds: duration
  };
}

/** Sums loads that ran at once (on several replicas). */
export function together(loads: readonly Load[]): Load {
  return {
    reqPerSec: loads.reduce((n, l) => n + l.reqPerSec, 0),
    changesPerSec: loads.reduce((n, l) => n + l.changesPerSec, 0),
    p99: Math.max(...loads.map((l) => l.p99)),
    errors: loads.reduce((n, l) => n + l.errors, 0),
    seconds: Math.max(...loads.map((l) => l.seconds))
  };
}

/** One request to the server on 127.0.0.1:`port` (a JSON body, if any); its JSON answer, or an error for any status from 300. */
export async function call(method: string, path: string, body: unknown, port: number): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}

/** A VM whose one non-coherent domain has a device that may no-snoop: every pin and unpin is flushed. */
export async function setUpFlushingVm(vm: string, port: number): Promise<void> {
  await call('PUT', `/v1/vms/${vm}`, { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } }, port);
  await call('PUT', `/v1/vms/${vm}/domains/d0`, { enforceCacheCoherency: false }, port);
  await call('PUT', `/v1/vms/${vm}/devices/0000:01:00.0`, { domainId: 'd0', vendorId: '0x10ee', deviceId: '0x903f', function: 'pf', nosnoop: 'enabled' }, port);
}
