/**
 * How the concurrent-callers model's VMM (concurrent-host.ts) reaches the service: HTTP requests
 * to the in-process app, or to several replicas of it (caller c of the VMM talks to replica
 * (c + a drawn offset) mod n; acknowledgements, listings and operator's changes go to a replica
 * drawn at random), a store that may fail (503 STORE_UNAVAILABLE or NOT_READY, with
 * `storeFaults`), and the record of every change the service answered 2xx.
 */
import type { FastifyInstance } from 'fastify';
import { json } from '../helpers/app.js';
import type { Range } from './player/ranges.js';

/** Bytes per page: the wire speaks bytes, the models pages. */
export const PAGE = 0x1000;

export const hex = (n: number): string => `0x${n.toString(16)}`;
export const pageHex = (page: number): string => hex(page * PAGE);

export function parseRanges(ranges: readonly { readonly hpa: string; readonly length: string }[]): Range[] {
  return ranges.map((r) => ({ hpa: Number(BigInt(r.hpa) / BigInt(PAGE)), pages: Number(BigInt(r.length) / BigInt(PAGE)) }));
}

export function showRanges(ranges: readonly Range[]): string {
  return `[${ranges.map((r) => `${pageHex(r.hpa)}+${r.pages}p`).join(' ')}]`;
}

/** The jobs of a listing that are still to be performed and acknowledged. */
export function openJobs(items: readonly { readonly id: string; readonly state: string; readonly acknowledgedAt: string | null }[]): string[] {
  return items.filter((j) => j.acknowledgedAt === null && j.state !== 'done' && j.state !== 'failed').map((j) => j.id);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WireFlush {
  readonly required: boolean;
  readonly ranges: readonly { readonly hpa: string; readonly length: string }[];
  readonly rangesTruncated?: boolean;
  readonly when?: string;
  readonly cause?: string;
  readonly jobId?: string;
  readonly after?: readonly string[];
}

export interface WireAnswer {
  readonly flush: WireFlush;
  readonly revision: number;
  readonly decision?: string;
  readonly hardwareValue?: string;
  readonly devices?: readonly { readonly bdf: string; readonly hardwareValue: string }[];
}

/** What the faults did to a host's requests. */
export interface FaultStats {
  /** Changes answered 503 STORE_UNAVAILABLE (not acted on). */
  refused: number;
  /** Acknowledgements answered 503, sent again later. */
  ackRetries: number;
  /** Reads answered 503. */
  readsRefused: number;
  /** State checks (checkState) that compared something. */
  stateChecks: number;
}

/** A change the service answered 2xx: what was sent, to which replica, and the answer. */
export interface AcceptedChange {
  readonly order: number;
  readonly method: 'PUT' | 'POST' | 'DELETE';
  readonly url: string;
  readonly payload: object | undefined;
  readonly via: number;
  readonly status: number;
  readonly body: unknown;
  /** The change's revision as the answer says it; null: a quirk list that decided nothing for the VM (its place is found in the audit trail). */
  readonly revision: number | null;
}

export interface Reply {
  readonly status: number;
  readonly body: unknown;
}

export interface LinkOptions {
  /** Replicas besides the app given (one PostgreSQL store). */
  readonly replicas?: readonly FastifyInstance[];
  /** Seed of the replica draws. */
  readonly seed?: number;
  /** The store may fail: a 503 STORE_UNAVAILABLE or NOT_READY is expected, not a broken rule. */
  readonly storeFaults?: boolean;
}

export class ServiceLink {
  /** Changes the service answered 2xx, in the order their answers came. */
  readonly changes: AcceptedChange[] = [];
  readonly faults: FaultStats = { refused: 0, ackRetries: 0, readsRefused: 0, stateChecks: 0 };
  readonly storeFaults: boolean;
  readonly #vmId: string;
  readonly #rules: string[];
  readonly #trace: string[];
  readonly #app: FastifyInstance;
  /** The app, then the other replicas. */
  #apps: readonly FastifyInstance[];
  readonly #rand: () => number;
  /** Caller c talks to replica (c + offset) mod n. */
  readonly #offset: number;

  /** `sinks`: where refused requests (rules) and reads refused by a failing store (trace) are told. */
  constructor(app: FastifyInstance, vmId: string, options: LinkOptions, sinks: { readonly rules: string[]; readonly trace: string[] }) {
    this.#app = app;
    this.#apps = [app, ...(options.replicas ?? [])];
    this.#rand = prng(options.seed ?? 1);
    this.#offset = this.#apps.length > 1 ? Math.floor(this.#rand() * this.#apps.length) : 0;
    this.storeFaults = options.storeFaults ?? false;
    this.#vmId = vmId;
    this.#rules = sinks.rules;
    this.#trace = sinks.trace;
  }

  /** How many replicas (the app included). */
  get replicas(): number {
    return this.#apps.length;
  }

  /** The highest revision of the VM's answers (0: none). */
  get maxRevision(): number {
    let max = 0;
    for (const c of this.changes) if (c.revision !== null && c.revision > max) max = c.revision;
    return max;
  }

  /** The service restarted (the same store): requests go to `apps` from now on (as many as before). */
  retarget(apps: readonly FastifyInstance[]): void {
    if (apps.length !== this.#apps.length) throw new Error(`retarget: ${apps.length} app(s) for ${this.#apps.length}`);
    this.#apps = [...apps];
  }

  /** Sends a request to replica `via` (0: the app); a change answered 2xx is recorded in `changes`. */
  async call(method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: object, via = 0): Promise<Reply> {
    const app = this.#apps[via] ?? this.#app;
    const res = await app.inject({ method, url, ...(payload === undefined ? {} : { headers: json, payload }) });
    let body: unknown;
    try {
      body = JSON.parse(res.body);
    } catch {
      body = res.body;
    }
    if (method !== 'GET' && !url.endsWith('/ack') && res.statusCode < 300) {
      let revision: number | null = null;
      if (typeof body === 'object' && body !== null) {
        const rev = (body as { revision?: unknown }).revision;
        // A quirk list's own revision is the change's, not the VM's: the VM's is in its entry,
        // present only when the list decided something for it.
        if (typeof rev === 'number' && url !== '/v1/quirks') revision = rev;
        else revision = ((body as { vms?: { vmId: string; revision: number }[] }).vms ?? []).find((v) => v.vmId === this.#vmId)?.revision ?? null;
      }
      this.changes.push({ order: this.changes.length, method, url, payload, via, status: res.statusCode, body, revision });
    }
    return { status: res.statusCode, body };
  }

  /** The replica caller `caller` talks to. */
  via(caller: number): number {
    return (caller + this.#offset) % this.#apps.length;
  }

  /** A replica drawn at random (always 0 with one app). */
  anyVia(): number {
    return this.#apps.length === 1 ? 0 : Math.floor(this.#rand() * this.#apps.length);
  }

  /**
   * With replicas: replica `via` catches up to the VM's last answer before it is asked for the
   * VM's flush jobs (that listing takes no `?minRevision=` of its own; GET /v1/vms/{id} does).
   */
  async fresh(via: number): Promise<void> {
    if (this.#apps.length === 1 || this.maxRevision === 0) return;
    await this.call('GET', `/v1/vms/${this.#vmId}?minRevision=${this.maxRevision}`, undefined, via);
  }

  /** A 503 the faults allow (the store is down, or the state is being reloaded). */
  storeDown(res: Reply): boolean {
    if (!this.storeFaults || res.status !== 503) return false;
    const code = typeof res.body === 'object' && res.body !== null ? (res.body as { code?: unknown }).code : undefined;
    return code === 'STORE_UNAVAILABLE' || code === 'NOT_READY';
  }

  /** A read that may answer 503 while the store is down (with storeFaults); null then. */
  async read(url: string, via = 0): Promise<unknown> {
    const res = await this.call('GET', url, undefined, via);
    if (this.storeDown(res)) {
      this.faults.readsRefused++;
      this.#trace.push(`  read ${url} answered 503 (store down)`);
      return null;
    }
    if (res.status >= 300) {
      this.#rules.push(`GET ${url} answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      return null;
    }
    return res.body;
  }

  /** A request that must succeed (setup, acknowledgements, listings). */
  async ok(method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: object, via = 0): Promise<unknown> {
    const res = await this.call(method, url, payload, via);
    if (res.status >= 300) {
      this.#rules.push(`${method} ${url} answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      return null;
    }
    return res.body;
  }

  /** A listing of the VM's flush jobs; with storeFaults, null when the store could not answer. */
  async listJobs(via: number): Promise<{ items: { id: string; state: string; acknowledgedAt: string | null }[] } | null> {
    const url = `/v1/vms/${this.#vmId}/flush-jobs?limit=1000`;
    return (this.storeFaults ? await this.read(url, via) : await this.ok('GET', url, undefined, via)) as { items: { id: string; state: string; acknowledgedAt: string | null }[] } | null;
  }

  /**
   * A job's ranges as the service lists them (waits for the job to be planned), asked of replica
   * `prefer` first, then of the others (a replica that has not applied the change behind a job
   * does not know it yet); with storeFaults, a 503 is asked again a little later.
   */
  async fetchRanges(id: string, prefer = 0): Promise<Range[]> {
    let failed: { url: string; status: number; body: unknown } | null = null;
    for (let attempt = 0; attempt < 50; attempt++) {
      for (let k = 0; k < this.#apps.length; k++) {
        const via = (prefer + k) % this.#apps.length;
        const out: Range[] = [];
        let cursor: string | undefined;
        failed = null;
        do {
          const url = `/v1/flush-jobs/${id}/ranges?limit=10000${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
          const res = await this.call('GET', url, undefined, via);
          if (res.status >= 300) {
            failed = { url, status: res.status, body: res.body };
            break;
          }
          const body = res.body as { items: { hpa: string; length: string }[]; nextCursor?: string };
          out.push(...parseRanges(body.items));
          cursor = body.nextCursor;
        } while (cursor !== undefined);
        if (failed === null) return out;
      }
      if (failed === null || !this.storeDown(failed)) break;
      await sleep(100);
    }
    if (failed !== null) this.#rules.push(`GET ${failed.url} answered ${failed.status} ${JSON.stringify(failed.body).slice(0, 200)}`);
    return [];
  }
}
