/**
 * A small typed client for VMM control planes: one keep-alive connection pool per service,
 * a typed method per route, problem+json errors turned into CoherencyApiError with the stable
 * `code`, 503s with `Retry-After` sent again (retry.ts), and each VM's events typed by kind
 * (events.ts).
 *
 * It imports undici and its own files only, in its types too: its wire types are generated from
 * the OpenAPI document (api.ts), so it installs and loads without any of the server's code
 * (`@coherency-policy-service/client`, or `coherency-policy-service/client`).
 */
import { Pool } from 'undici';
import { apiError, CoherencyApiError } from './errors.js';
import { parseSse, toEvent, type VmEventMessage } from './events.js';
import { DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_DELAY_MS, retryAfterMs, retryDelay, type RetryOptions } from './retry.js';
import type {
  AckReport,
  AuditRecord,
  DecisionAnswer,
  DevctlAnswer,
  DevctlRequest,
  DeviceDecisionAnswer,
  FlushJobState,
  FlushQueryRequest,
  HealthAnswer,
  FlushJobRange,
  MustFlushAnswer,
  PinnedRangeState,
  PinRequest,
  PolicyDefaultsAnswer,
  PutDeviceRequest,
  PutDomainRequest,
  PutQuirksResult,
  PutVmRequest,
  QuirkEntry,
  QuirkListBody,
  QuirkListState,
  ReadinessAnswer,
  ResetRequest,
  SimulationRequestBody,
  SimulationResult,
  UnpinRequest,
  VmState
} from './types.js';

export { CoherencyApiError } from './errors.js';
export type * from './events.js';
export type { RetryOptions } from './retry.js';
export type * from './types.js';
export type { components, operations, paths } from './api.js';

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

export interface ClientOptions {
  /** Keep-alive connections to the service. */
  readonly connections?: number;
  /** Sent as `Authorization: Bearer <token>`. */
  readonly token?: string;
  /** Per-request timeout in milliseconds. */
  readonly timeoutMs?: number;
  /** Connect to the service's Unix domain socket (its SOCKET_PATH) instead of `baseUrl`'s host and port; `baseUrl` then only names the host header (e.g. http://localhost). */
  readonly socketPath?: string;
  /**
   * 503 answers with `Retry-After` (overload, the store unavailable, a restart restoring its
   * state) are sent again after the delay asked, changes included: a 503 keeps nothing, so a
   * change retried is never applied twice. Default: 3 attempts in all, delays up to 10 s.
   * `{ maxAttempts: 1 }` turns retries off.
   */
  readonly retry?: RetryOptions;
}

/** Options of `events()`. */
export interface EventsOptions {
  /** Resume after this event id (an `id` read earlier). */
  readonly lastEventId?: string;
  /** Ends the stream. */
  readonly signal?: AbortSignal;
  /** Wait before reconnecting after a dropped connection (default 1,000 ms; a 503's `Retry-After` when longer). */
  readonly retryMs?: number;
}

type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';
type Query = Record<string, string | number | undefined>;

export class CoherencyClient {
  readonly #pool: Pool;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #retry: RetryOptions;

  constructor(baseUrl: string | URL, options: ClientOptions = {}) {
    const { maxAttempts = DEFAULT_MAX_ATTEMPTS, maxDelayMs = DEFAULT_MAX_DELAY_MS } = options.retry ?? {};
    if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1) throw new TypeError(`retry.maxAttempts must be an integer of at least 1 (got ${maxAttempts})`);
    if (!Number.isFinite(maxDelayMs) || maxDelayMs < 0) throw new TypeError(`retry.maxDelayMs must be a number of milliseconds, at least 0 (got ${maxDelayMs})`);
    this.#retry = { maxAttempts, maxDelayMs };
    this.#pool = new Pool(baseUrl, { connections: options.connections ?? 8, pipelining: 1, ...(options.socketPath === undefined ? {} : { socketPath: options.socketPath }) });
    this.#headers = options.token === undefined ? {} : { authorization: `Bearer ${options.token}` };
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Every item of a paged route, page after page (`limit` per request). */
  async *#pages<T>(path: string, query: Query = {}, limit = 1000): AsyncGenerator<T> {
    let cursor: string | undefined;
    do {
      const page: Page<T> = await this.#call('GET', path, undefined, { ...query, limit, cursor });
      yield* page.items;
      cursor = page.nextCursor;
    } while (cursor !== undefined);
  }

  /** Sends a request, again after each 503 with a `Retry-After` the retry options allow; the 2xx answer's text. */
  async #send(method: Method, path: string, headers: Record<string, string>, body: string | undefined): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      const res = await this.#pool.request({ method, path, headers: { ...this.#headers, ...headers }, ...(body === undefined ? {} : { body }), headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs });
      const text = await res.body.text();
      if (res.statusCode >= 200 && res.statusCode < 300) return text;
      const after = retryAfterMs(res.headers['retry-after']);
      const delay = retryDelay(res.statusCode, after, attempt, this.#retry);
      if (delay === undefined) throw apiError(res.statusCode, text, after);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  #text(path: string): Promise<string> {
    return this.#send('GET', path, {}, undefined);
  }

  async #call<T>(method: Method, path: string, body?: unknown, query?: Query): Promise<T> {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) search.set(k, String(v));
    const qs = search.size > 0 ? `?${search.toString()}` : '';
    const headers: Record<string, string> = body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' };
    const text = await this.#send(method, path + qs, headers, body === undefined ? undefined : JSON.stringify(body));
    return (text.length === 0 ? undefined : JSON.parse(text)) as T;
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
  async listFlushJobRanges(jobId: string): Promise<FlushJobRange[]> {
    const out: FlushJobRange[] = [];
    let cursor: string | undefined;
    do {
      const page: Page<FlushJobRange> = await this.#call('GET', `/v1/flush-jobs/${enc(jobId)}/ranges`, undefined, { limit: 10_000, cursor });
      out.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return out;
  }
  /** Reports the job's flush performed (optionally what was flushed and how long it took). */
  ack(jobId: string, report: AckReport = {}): Promise<FlushJobState> {
    return this.#call('POST', `/v1/flush-jobs/${enc(jobId)}/ack`, report);
  }

  // ---- events ----
  /**
   * The VM's events as they come (GET /v1/vms/{vmId}/events), typed by kind: narrow each by
   * `type` (`decision`, `policy`, `deleted`, `flush-job`, `reset`, `dropped`) to read its `data`.
   * A dropped connection (or a `dropped` event: this subscriber fell behind) is resumed from the
   * last id read, after `retryMs` (or a 503's `Retry-After`); a `reset` event says the events in
   * between are no longer held (re-read the VM). Events of a kind this client does not know are
   * skipped. Ends when `signal` aborts; an answer other than 200 that a retry cannot help (an
   * unknown VM, a token out of scope) is thrown.
   */
  async *events(vmId: string, options: EventsOptions = {}): AsyncGenerator<VmEventMessage> {
    let last = options.lastEventId;
    const signal = options.signal;
    const aborted = (): boolean => signal?.aborted === true;
    while (!aborted()) {
      let wait = options.retryMs ?? 1000;
      try {
        const res = await this.#pool.request({
          method: 'GET',
          path: `/v1/vms/${enc(vmId)}/events`,
          headers: { ...this.#headers, accept: 'text/event-stream', ...(last === undefined ? {} : { 'last-event-id': last }) },
          headersTimeout: this.#timeoutMs,
          bodyTimeout: 0,
          ...(signal === undefined ? {} : { signal })
        });
        if (res.statusCode !== 200) throw apiError(res.statusCode, await res.body.text(), retryAfterMs(res.headers['retry-after']));
        const decoder = new TextDecoder();
        let buffer = '';
        for await (const chunk of res.body) {
          buffer += decoder.decode(chunk as Buffer, { stream: true });
          let at: number;
          while ((at = buffer.indexOf('\n\n')) >= 0) {
            const frame = parseSse(buffer.slice(0, at));
            buffer = buffer.slice(at + 2);
            if (frame.id !== undefined) last = frame.id;
            const event = toEvent(frame);
            if (event !== undefined) yield event;
          }
        }
      } catch (err) {
        if (aborted()) return;
        if (err instanceof CoherencyApiError && err.status < 500 && err.status !== 429) throw err;
        if (err instanceof CoherencyApiError && err.retryAfterMs !== undefined) wait = Math.max(wait, Math.min(err.retryAfterMs, this.#retry.maxDelayMs ?? DEFAULT_MAX_DELAY_MS));
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
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
  getQuirks(): Promise<QuirkListState> {
    return this.#call('GET', '/v1/quirks');
  }
  /** Replaces the whole quirk list (the shipped entries too: read it first, or use `addQuirks`). */
  putQuirks(body: QuirkListBody): Promise<PutQuirksResult> {
    return this.#call('PUT', '/v1/quirks', body);
  }
  /**
   * Adds entries to the quirk list in force, each replacing the entry of the same vendorId and
   * deviceId if there is one (POST /v1/quirks); answers as `putQuirks` does, with the list now in
   * force and the replay flushes of the VMs the change exposes.
   */
  addQuirks(body: { quirks: QuirkEntry[] }): Promise<PutQuirksResult> {
    return this.#call('POST', '/v1/quirks', body);
  }
  getPolicy(): Promise<PolicyDefaultsAnswer> {
    return this.#call('GET', '/v1/policy');
  }
  health(): Promise<HealthAnswer> {
    return this.#call('GET', '/healthz');
  }
  ready(): Promise<ReadinessAnswer> {
    return this.#call('GET', '/readyz');
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

function waitQuery(options: WaitOptions): Query {
  return { wait: options.wait === true ? 'true' : undefined };
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}
