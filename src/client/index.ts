/**
 * A small typed client for VMM control planes: one keep-alive connection pool per service,
 * a typed method per route, and problem+json errors turned into CoherencyApiError with the
 * stable `code`.
 */
import { Pool } from 'undici';
import type { z } from 'zod';
import type { Problem } from '../contract/common.js';
import type { Decision, DevctlDecision, DeviceDecision } from '../contract/decision.js';
import type { FlushQueryAnswer, FlushQueryBody, PinBody, PinnedRange, UnpinBody } from '../contract/pin.js';
import type { PutQuirksAnswer, QuirkList, QuirkListAnswer } from '../contract/quirk.js';
import type { Simulation, SimulationRequest } from '../contract/simulation.js';
import type { DevctlBody, PutDeviceBody, PutDomainBody, PutVmBody, ResetBody, Vm } from '../contract/vm.js';
import type { AuditEntry } from '../contract/audit.js';
import type { FlushJob } from '../contract/flush-job.js';
import type { PolicyDefaults } from '../contract/policy.js';

export type VmState = z.output<typeof Vm>;
export type DecisionAnswer = z.output<typeof Decision>;
export type DeviceDecisionAnswer = z.output<typeof DeviceDecision>;
export type DevctlAnswer = z.output<typeof DevctlDecision>;
export type MustFlushAnswer = z.output<typeof FlushQueryAnswer>;
export type PinnedRangeState = z.output<typeof PinnedRange>;
export type ProblemDetails = z.output<typeof Problem>;
export type PutVmRequest = z.input<typeof PutVmBody>;
export type PutDomainRequest = z.input<typeof PutDomainBody>;
export type PutDeviceRequest = z.input<typeof PutDeviceBody>;
export type PinRequest = z.input<typeof PinBody>;
export type UnpinRequest = z.input<typeof UnpinBody>;
export type FlushQueryRequest = z.input<typeof FlushQueryBody>;
export type DevctlRequest = z.input<typeof DevctlBody>;
export type ResetRequest = NonNullable<z.input<typeof ResetBody>>;
export type QuirkListBody = z.input<typeof QuirkList>;
export type PutQuirksResult = z.output<typeof PutQuirksAnswer>;
export type SimulationRequestBody = z.input<typeof SimulationRequest>;
export type SimulationResult = z.output<typeof Simulation>;
export type FlushJobState = z.output<typeof FlushJob>;
export type PolicyDefaultsAnswer = z.output<typeof PolicyDefaults>;
export type AuditRecord = z.output<typeof AuditEntry>;

/** `?wait=true` on a change: answer once its flush job is settled, with the job's receipt in `flush.receipt`. */
export interface WaitOptions {
  readonly wait?: boolean;
}

/** Which audit records to read: one VM's, from a time on. */
export interface AuditQuery {
  readonly vmId?: string;
  /** ISO 8601 time: records at or after it. */
  readonly since?: string;
}

export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

export interface PageOptions {
  limit?: number;
  cursor?: string;
  /** Answer from state at least this fresh (a `revision` from an earlier answer). */
  minRevision?: number;
}

/** An answer other than 2xx. `code` is the service's stable error code. */
export class CoherencyApiError extends Error {
  override readonly name = 'CoherencyApiError';
  readonly status: number;
  readonly code: string;
  readonly problem: ProblemDetails | undefined;

  constructor(status: number, code: string, message: string, problem?: ProblemDetails) {
    super(message);
    this.status = status;
    this.code = code;
    this.problem = problem;
  }
}

export interface ClientOptions {
  /** Keep-alive connections to the service. */
  readonly connections?: number;
  /** Sent as `Authorization: Bearer <token>`. */
  readonly token?: string;
  /** Per-request timeout in milliseconds. */
  readonly timeoutMs?: number;
  /** Connect to the service's Unix domain socket (its SOCKET_PATH) instead of `baseUrl`'s host and port; `baseUrl` then only names the host header (e.g. http://localhost). */
  readonly socketPath?: string;
}

type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

/** One event of a VM's stream: its id (absent on `dropped`), its type and its data. */
export interface VmEventMessage {
  readonly id?: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
}

/** One SSE frame; undefined for a comment (a heartbeat). */
function parseSse(frame: string): VmEventMessage | undefined {
  let id: string | undefined;
  let type = 'message';
  const data: string[] = [];
  for (const line of frame.split('\n')) {
    if (line.startsWith(':') || line === '') continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1));
    if (field === 'id') id = value;
    else if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return undefined;
  return { ...(id === undefined ? {} : { id }), type, data: JSON.parse(data.join('\n')) as Record<string, unknown> };
}

function apiError(status: number, text: string): CoherencyApiError {
  let problem: ProblemDetails | undefined;
  try {
    problem = JSON.parse(text) as ProblemDetails;
  } catch {
    problem = undefined;
  }
  return new CoherencyApiError(status, problem?.code ?? `HTTP_${status}`, problem?.detail ?? `HTTP ${status}`, problem);
}

export class CoherencyClient {
  readonly #pool: Pool;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;

  constructor(baseUrl: string | URL, options: ClientOptions = {}) {
    this.#pool = new Pool(baseUrl, { connections: options.connections ?? 8, pipelining: 1, ...(options.socketPath === undefined ? {} : { socketPath: options.socketPath }) });
    this.#headers = options.token === undefined ? {} : { authorization: `Bearer ${options.token}` };
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Every item of a paged route, page after page (`limit` per request). */
  async *#pages<T>(path: string, query: Record<string, string | number | undefined> = {}, limit = 1000): AsyncGenerator<T> {
    let cursor: string | undefined;
    do {
      const page: Page<T> = await this.#call('GET', path, undefined, { ...query, limit, cursor });
      yield* page.items;
      cursor = page.nextCursor;
    } while (cursor !== undefined);
  }

  async #text(path: string): Promise<string> {
    const res = await this.#pool.request({ method: 'GET', path, headers: { ...this.#headers }, headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs });
    const text = await res.body.text();
    if (res.statusCode >= 200 && res.statusCode < 300) return text;
    throw apiError(res.statusCode, text);
  }

  async #call<T>(method: Method, path: string, body?: unknown, query?: Record<string, string | number | undefined>): Promise<T> {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) search.set(k, String(v));
    const qs = search.size > 0 ? `?${search.toString()}` : '';
    const res = await this.#pool.request({
      method,
      path: path + qs,
      headers: { ...this.#headers, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs
    });
    const text = await res.body.text();
    if (res.statusCode >= 200 && res.statusCode < 300) return (text.length === 0 ? undefined : JSON.parse(text)) as T;
    throw apiError(res.statusCode, text);
  }

  // ---- VMs ----
  putVm(vmId: string, body: PutVmRequest): Promise<DecisionAnswer & { vm: VmState }> {
    return this.#call('PUT', `/v1/vms/${enc(vmId)}`, body);
  }
  getVm(vmId: string, minRevision?: number): Promise<VmState> {
    return this.#call('GET', `/v1/vms/${enc(vmId)}`, undefined, { minRevision });
  }
  listVms(page: PageOptions = {}): Promise<Page<VmState>> {
    return this.#call('GET', '/v1/vms', undefined, { ...page });
  }
  /** Every VM, page after page. */
  vms(): AsyncGenerator<VmState> {
    return this.#pages('/v1/vms');
  }
  deleteVm(vmId: string): Promise<DecisionAnswer> {
    return this.#call('DELETE', `/v1/vms/${enc(vmId)}`);
  }

  // ---- domains ----
  putDomain(vmId: string, domainId: string, body: PutDomainRequest): Promise<DecisionAnswer> {
    return this.#call('PUT', `/v1/vms/${enc(vmId)}/domains/${enc(domainId)}`, body);
  }
  deleteDomain(vmId: string, domainId: string): Promise<DecisionAnswer> {
    return this.#call('DELETE', `/v1/vms/${enc(vmId)}/domains/${enc(domainId)}`);
  }

  // ---- devices ----
  putDevice(vmId: string, bdf: string, body: PutDeviceRequest, options: WaitOptions = {}): Promise<DeviceDecisionAnswer> {
    return this.#call('PUT', `/v1/vms/${enc(vmId)}/devices/${enc(bdf)}`, body, waitQuery(options));
  }
  deleteDevice(vmId: string, bdf: string): Promise<DeviceDecisionAnswer> {
    return this.#call('DELETE', `/v1/vms/${enc(vmId)}/devices/${enc(bdf)}`);
  }
  /** R1. By default the reset restores config space (as vfio-pci's do); `{restoresConfig: false}` for one that does not. */
  resetDevice(vmId: string, bdf: string, body?: ResetRequest, options: WaitOptions = {}): Promise<DeviceDecisionAnswer> {
    return this.#call('POST', `/v1/vms/${enc(vmId)}/devices/${enc(bdf)}/reset`, body ?? undefined, waitQuery(options));
  }
  devctl(vmId: string, bdf: string, body: DevctlRequest, options: WaitOptions = {}): Promise<DevctlAnswer> {
    return this.#call('POST', `/v1/vms/${enc(vmId)}/devices/${enc(bdf)}/devctl`, body, waitQuery(options));
  }

  // ---- pins and decisions ----
  pin(vmId: string, body: PinRequest, options: WaitOptions = {}): Promise<DecisionAnswer> {
    return this.#call('POST', `/v1/vms/${enc(vmId)}/pins`, body, waitQuery(options));
  }
  unpin(vmId: string, body: UnpinRequest, options: WaitOptions = {}): Promise<DecisionAnswer> {
    return this.#call('POST', `/v1/vms/${enc(vmId)}/unpins`, body, waitQuery(options));
  }
  listPins(vmId: string, page: PageOptions = {}): Promise<Page<PinnedRangeState>> {
    return this.#call('GET', `/v1/vms/${enc(vmId)}/pins`, undefined, { ...page });
  }
  /** Every pinned range of the VM in IOVA order, page after page. */
  pins(vmId: string): AsyncGenerator<PinnedRangeState> {
    return this.#pages(`/v1/vms/${enc(vmId)}/pins`);
  }
  mustFlush(vmId: string, body: FlushQueryRequest, minRevision?: number): Promise<MustFlushAnswer> {
    return this.#call('POST', `/v1/vms/${enc(vmId)}/decisions/flush`, body, { minRevision });
  }

  // ---- flush jobs ----
  getFlushJob(jobId: string): Promise<FlushJobState> {
    return this.#call('GET', `/v1/flush-jobs/${enc(jobId)}`);
  }
  listFlushJobs(vmId: string, page: PageOptions = {}): Promise<Page<FlushJobState>> {
    return this.#call('GET', `/v1/vms/${enc(vmId)}/flush-jobs`, undefined, { ...page });
  }
  /** Every flush job kept for the VM, oldest first, page after page. */
  flushJobs(vmId: string): AsyncGenerator<FlushJobState> {
    return this.#pages(`/v1/vms/${enc(vmId)}/flush-jobs`);
  }
  /** Every coalesced host range of a job, all pages read (GET /v1/flush-jobs/{jobId}/ranges). */
  async listFlushJobRanges(jobId: string): Promise<{ hpa: string; length: string }[]> {
    const out: { hpa: string; length: string }[] = [];
    let cursor: string | undefined;
    do {
      const page: Page<{ hpa: string; length: string }> = await this.#call('GET', `/v1/flush-jobs/${enc(jobId)}/ranges`, undefined, { limit: 10_000, cursor });
      out.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return out;
  }
  /** Reports the job's flush performed (optionally what was flushed and how long it took). */
  ack(jobId: string, report: { flushedBytes?: string | number; durationNs?: number } = {}): Promise<FlushJobState> {
    return this.#call('POST', `/v1/flush-jobs/${enc(jobId)}/ack`, report);
  }

  // ---- events ----
  /**
   * The VM's events as they come (GET /v1/vms/{vmId}/events). A dropped connection is resumed
   * from the last id read, after `retryMs`; a `reset` event says the events in between are no
   * longer held (re-read the VM). Ends when `signal` aborts; an answer other than 200 that a
   * retry cannot help (an unknown VM, a token out of scope) is thrown.
   */
  async *events(vmId: string, options: { lastEventId?: string; signal?: AbortSignal; retryMs?: number } = {}): AsyncGenerator<VmEventMessage> {
    let last = options.lastEventId;
    const signal = options.signal;
    const aborted = (): boolean => signal?.aborted === true;
    while (!aborted()) {
      try {
        const res = await this.#pool.request({
          method: 'GET',
          path: `/v1/vms/${enc(vmId)}/events`,
          headers: { ...this.#headers, accept: 'text/event-stream', ...(last === undefined ? {} : { 'last-event-id': last }) },
          headersTimeout: this.#timeoutMs,
          bodyTimeout: 0,
          ...(signal === undefined ? {} : { signal })
        });
        if (res.statusCode !== 200) throw apiError(res.statusCode, await res.body.text());
        const decoder = new TextDecoder();
        let buffer = '';
        for await (const chunk of res.body) {
          buffer += decoder.decode(chunk as Buffer, { stream: true });
          let at: number;
          while ((at = buffer.indexOf('\n\n')) >= 0) {
            const message = parseSse(buffer.slice(0, at));
            buffer = buffer.slice(at + 2);
            if (message === undefined) continue;
            if (message.id !== undefined) last = message.id;
            yield message;
          }
        }
      } catch (err) {
        if (aborted()) return;
        if (err instanceof CoherencyApiError && err.status < 500 && err.status !== 429) throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, options.retryMs ?? 1000));
    }
  }

  // ---- what-if simulations ----
  /** Replays a reference trace (`{reference}`) or a JSON Lines trace (`{trace}`) under every mode. */
  simulate(body: SimulationRequestBody): Promise<SimulationResult> {
    return this.#call('POST', '/v1/simulations', body);
  }
  getSimulation(id: string): Promise<SimulationResult> {
    return this.#call('GET', `/v1/simulations/${enc(id)}`);
  }
  /** The simulation as an SVG bar chart (one bar per mode). */
  getSimulationChart(id: string): Promise<string> {
    return this.#text(`/v1/simulations/${enc(id)}/chart.svg`);
  }

  // ---- audit ----
  listAudit(query: AuditQuery & PageOptions = {}): Promise<Page<AuditRecord>> {
    return this.#call('GET', '/v1/audit', undefined, { ...query });
  }
  /** Every audit record the query selects, oldest first, page after page. */
  audit(query: AuditQuery = {}): AsyncGenerator<AuditRecord> {
    return this.#pages('/v1/audit', { ...query }, 1000);
  }

  // ---- quirks, policy, health ----
  getQuirks(): Promise<z.output<typeof QuirkListAnswer>> {
    return this.#call('GET', '/v1/quirks');
  }
  putQuirks(body: QuirkListBody): Promise<PutQuirksResult> {
    return this.#call('PUT', '/v1/quirks', body);
  }
  getPolicy(): Promise<PolicyDefaultsAnswer> {
    return this.#call('GET', '/v1/policy');
  }
  health(): Promise<{ status: 'ok' }> {
    return this.#call('GET', '/healthz');
  }
  ready(): Promise<{ status: string; checks: Record<string, boolean> }> {
    return this.#call('GET', '/readyz');
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

function waitQuery(options: WaitOptions): Record<string, string | undefined> {
  return { wait: options.wait === true ? 'true' : undefined };
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}
