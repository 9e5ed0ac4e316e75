/**
 * One VM under the policy service, driven over HTTP (the in-process app) by several callers of
 * its VMM with requests in flight at once, and the hardware doing what hardware does.
 *
 * The service runs with FLUSH_ACKS=required (the default) and a long flush window, so the
 * answers of a whole round (and usually of several rounds) share one batching window.
 *
 * Hardware (the truth, whatever the service believes):
 * - Host pages. A page is zeroed by the host with cached stores when it is pinned: dirty in the
 *   CPU cache, the previous owner's data in DRAM (CoherencyModel.hostZero), until a flush covers
 *   it. Pages are never reused within a run, so an unflushed page is exactly one whose DRAM still
 *   holds another owner's data.
 * - PCIe functions (PFs) with a real Enable No Snoop bit. The bit changes only when the VMM writes
 *   a `hardwareValue` an answer told it to write. A function puts No-Snoop on the wire when its
 *   bit is 1, when the VMM cannot read the bit (`unknown`), or when it ignores the bit (the
 *   `bad` device while the quirk list that is true says so). A `hardwired-zero` bit never sticks.
 * - IOMMU domains: coherent ones force snooping; in a non-coherent one every function that can
 *   emit No-Snoop reads every page mapped there after every round (a dirty page read is a LEAK).
 *   The first time it reaches a page (again after each flush of it), the guest caches the page
 *   clean and the device overwrites DRAM with No-Snoop: a page released at unpin without a flush
 *   after that is a CORRUPTION (a stale line, CoherencyModel.release).
 * - The quirk list that is true is the one the service acknowledged last, once the replays it
 *   caused (and every flush outstanding when it was put) are performed; a flag it takes away is
 *   gone at once (test/model/host-simulation.ts's convention).
 *
 * The VMM (the contract the service promises):
 * - Each answer that demands a flush carries `flush.jobId`, its own flush, with exactly the ranges
 *   it lists. The caller that got the answer performs exactly those ranges (paging
 *   /v1/flush-jobs/{id}/ranges when `rangesTruncated`), then acknowledges the job
 *   (`flush` actions: one caller's oldest flush, at a later round, so flushes are late).
 * - `before-map` (pins, replays): the change takes effect (the range is mapped, the bit written,
 *   the device attached to its new domain) only once the answer's own flush is performed and
 *   every job in `flush.after` is acknowledged (polled with GET /v1/flush-jobs/{id} when the VMM
 *   did not acknowledge it itself). `after-unmap` (unpins, teardown): unmap at once, flush, then
 *   release the pages.
 * - The VMM serialises what it does to one device: one request per device per round, and each
 *   device's writes and re-attachments happen in the order they were answered (by revision). A
 *   moved device is detached from its old domain at once and attached to the new one when its
 *   answer allows; a later move supersedes an attachment still waiting (the device never goes
 *   through a domain the service has since answered it out of). A device PUT reports what the
 *   device will read once its queued writes land.
 * - Flushes caused by someone else (an operator's quirk list) reach the VMM by listing
 *   GET /v1/vms/{vmId}/flush-jobs (`list` actions): it performs and acknowledges every pending job
 *   it was not answered.
 *
 * Besides leaks and corruptions, every answer is checked statically (`coverage`): the union of
 * its own flush and the still outstanding jobs of its `after` covers every unflushed page that a
 * device the answer lets emit No-Snoop could reach once the answer takes effect. And the contract
 * itself (`rules`): a job id names one answer (never shared), its ranges are exactly the answer's
 * (never grown), `when` is right, `after` names jobs the service knows.
 */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { DEFAULT_POLICY, DEVCTL_NOSNOOP_EN, defaultQuirksFile, parseQuirkFile, type OnEnable, type PolicyMode } from '../../src/domain/index.js';
import plan from '../../src/jobs/flush-worker.js';
import type { JobPool } from '../../src/jobs/job-pool.js';
import { createRuntime } from '../../src/service/runtime.js';
import { build, json } from '../helpers/app.js';
import { CoherencyModel } from './coherency-model.js';

const PAGE = 0x1000;

// ---- the service ---------------------------------------------------------------------------------

/** Plans flush jobs on the calling thread (no worker threads in a property test). */
export const INLINE_POOL: JobPool = { plan: (task) => Promise.resolve(plan(task)), queueSize: 0, utilization: 0, threads: 0, close: () => Promise.resolve() };

/** A long FLUSH_WINDOW_MS: the answers of a round (and usually of the whole run) share a batching window. */
export const WINDOW_MS = 150;

/** The in-process app with FLUSH_ACKS=required (the default) and a `windowMs` batching window. */
export async function concurrentApp(windowMs = WINDOW_MS): Promise<FastifyInstance> {
  return build({
    runtime: createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), pool: INLINE_POOL, windowMs, simThreads: 0 }),
    flushAckTimeoutMs: 5_000
  });
}

// ---- hardware ----------------------------------------------------------------------------------

export type DevKind = 'nic' | 'igpu' | 'bad';
export type DevState = 'disabled' | 'enabled' | 'unknown' | 'hardwired-zero';

/** The iGPU is needs-nosnoop in the shipped quirk file; the bad device is quirked ignores-nosnoop-enable in table 1. */
const IDS: Record<DevKind, readonly [string, string]> = { nic: ['0x15b3', '0x1017'], igpu: ['0x8086', '0x9a49'], bad: ['0x1d0f', '0x0001'] };

const SHIPPED_QUIRKS = (defaultQuirksFile as { quirks: { vendorId: string; deviceId: string; deviceMask?: string; flags: string[] }[] }).quirks.map((q) => ({
  vendorId: q.vendorId,
  deviceId: q.deviceId,
  ...(q.deviceMask === undefined ? {} : { deviceMask: q.deviceMask }),
  flags: q.flags
}));

/** Quirk lists the operator switches between: 0 the shipped list, 1 the shipped list and the bad device ignoring its bit. */
export const QUIRK_TABLES = [SHIPPED_QUIRKS, [...SHIPPED_QUIRKS, { vendorId: IDS.bad[0], deviceId: IDS.bad[1], flags: ['ignores-nosnoop-enable'] }]] as const;

export interface DevSpec {
  readonly kind: DevKind;
  /** What the host left in the bit, as the VMM reads it when the device is assigned. */
  readonly state: DevState;
  /** Index of the domain it is attached to at start. */
  readonly dom: number;
}

export interface PinSpec {
  readonly pages: number;
  /** Indices of the domains it maps into; null: every domain of the VM. */
  readonly doms: readonly number[] | null;
}

export interface Config {
  readonly mode: PolicyMode;
  readonly onEnable: OnEnable;
  readonly exempt: boolean;
  /** Per domain (d0, d1, ...): enforces cache coherency. */
  readonly coherent: readonly boolean[];
  readonly devices: readonly DevSpec[];
  /** Index into QUIRK_TABLES in force at start. */
  readonly quirks: 0 | 1;
  /** Ranges pinned (one at a time, every flush performed) before the callers start. */
  readonly prePins: readonly PinSpec[];
}

export type Action =
  | { readonly t: 'pin'; readonly caller: number; readonly pages: number; readonly doms: readonly number[] | null }
  | { readonly t: 'unpin'; readonly caller: number; readonly pick: number }
  | { readonly t: 'devctl'; readonly caller: number; readonly dev: number; readonly enable: boolean }
  /** PUT the device into another domain (or the same: a report of what it reads). */
  | { readonly t: 'move'; readonly caller: number; readonly dev: number; readonly dom: number }
  /** The caller performs its oldest flush not performed yet, then acknowledges it. */
  | { readonly t: 'flush'; readonly caller: number }
  /** The VMM lists its VM's flush jobs and performs and acknowledges those it was not answered. */
  | { readonly t: 'list' }
  /** An operator replaces the quirk list. */
  | { readonly t: 'quirks'; readonly table: 0 | 1 };

export interface Scenario {
  readonly config: Config;
  /** Each round's actions are sent at once (Promise.all). */
  readonly rounds: readonly (readonly Action[])[];
}

interface Range {
  readonly hpa: number;
  readonly pages: number;
}

interface WireFlush {
  readonly required: boolean;
  readonly ranges: readonly { readonly hpa: string; readonly length: string }[];
  readonly rangesTruncated?: boolean;
  readonly when?: string;
  readonly cause?: string;
  readonly jobId?: string;
  readonly after?: readonly string[];
}

interface WireAnswer {
  readonly flush: WireFlush;
  readonly revision: number;
  readonly decision?: string;
  readonly hardwareValue?: string;
  readonly devices?: readonly { readonly bdf: string; readonly hardwareValue: string }[];
}

interface Dev {
  readonly index: number;
  readonly bdf: string;
  readonly kind: DevKind;
  readonly hardwired: boolean;
  /** The VMM cannot read the bit: it reports `unknown`, and the function may emit No-Snoop. */
  readonly unreadable: boolean;
  /** The real bit. */
  bit: 0 | 1;
  /** The domain the device is attached to in the IOMMU; null: detached (no DMA). */
  dom: number | null;
  /** The VMM's view: the domain and bit once every answer it holds has taken effect. */
  intendedDom: number | null;
  intendedBit: 0 | 1;
  /** What the VMM still has to do to the device, in answer order. */
  ops: DevOp[];
}

interface Gate {
  /** The answer's own flush, performed first. */
  readonly own: Obligation | null;
  /** Jobs to be acknowledged first. */
  readonly after: readonly string[];
  /** The answer, for the trace. */
  readonly answer: number;
}

type DevOp = { readonly kind: 'write'; readonly value: number; readonly gate: Gate } | { readonly kind: 'attach'; readonly dom: number; readonly gate: Gate };

interface Obligation {
  readonly caller: number;
  readonly answer: number;
  readonly jobId: string | undefined;
  readonly ranges: readonly Range[];
  readonly truncated: boolean;
  readonly when: 'before-map' | 'after-unmap';
  performed: boolean;
  /** An unpin's pages, released once flushed. */
  readonly release: Pin | null;
}

interface Pin {
  readonly iova: number;
  readonly hpa: number;
  readonly pages: number;
  readonly doms: readonly number[] | null;
  /** In the IOMMU: devices in its domains reach it. */
  mapped: boolean;
  /** An unpin of it is in flight. */
  unpinning: boolean;
  /** Its answer's own flush (before-map) and what its mapping waits for. */
  own: Obligation | null;
  gate: Gate | null;
}

/** An answer the VMM got, for the trace and the per-answer checks. */
export interface Answer {
  readonly index: number;
  readonly round: number;
  readonly caller: number;
  readonly what: string;
  readonly revision: number;
  readonly required: boolean;
  readonly ranges: readonly Range[];
  readonly jobId: string | undefined;
  readonly after: readonly string[];
  readonly when: string | undefined;
  readonly cause: string | undefined;
  readonly hardwareValue: number | undefined;
}

export interface ConcurrentStats {
  answers: number;
  /** Answers whose `flush.after` named a job. */
  withAfter: number;
  /** Changes that waited, after their own flush, for a job of `flush.after`. */
  afterWaits: number;
  /** Rounds in which two or more answers demanded a flush (one batching window). */
  sharedWindows: number;
  replays: number;
  /** Flushes of someone else's (the operator's) performed by the listing VMM. */
  othersJobs: number;
  probes: number;
  /** Pages an answer let a No-Snoop device reach while unflushed, covered by outstanding jobs of its `after`. */
  coveredByAfter: number;
}

/** How the VMM reaches the service, and what it tolerates (every field optional: the default is one app that never fails). */
export interface HostOptions {
  /** A careless VMM that makes changes once its own flush is performed, not waiting for `flush.after` (to show the model notices). */
  readonly ignoreAfter?: boolean;
  /**
   * Replicas besides the app given (one PostgreSQL store): caller c of the VMM talks to replica
   * (c + a drawn offset) mod n, so the callers of one VM are spread across them; each
   * acknowledgement, listing and operator's change goes to a replica drawn at random.
   */
  readonly replicas?: readonly FastifyInstance[];
  /** Seed of those draws. */
  readonly seed?: number;
  /**
   * The store may fail (a full disk): a change answered 503 STORE_UNAVAILABLE changed nothing, so
   * the VMM does not act on it (a later action may try again); an acknowledgement so answered is
   * sent again later; a read so answered is tried again later.
   */
  readonly storeFaults?: boolean;
  /** Whether setup puts the config's quirk list (default true); false: the caller put it already (several VMs on one service). */
  readonly quirksAtSetup?: boolean;
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Stands, in a quirk list's switch, for the VM's jobs a listing the store could not answer did not name. */
const UNLISTED = '(not listed yet)';

type Result = { readonly action: Action; readonly status: number; readonly body: unknown; readonly order: number; readonly pin?: Pin; readonly dev?: Dev; readonly via?: number };

const hex = (n: number): string => `0x${n.toString(16)}`;
const pageHex = (page: number): string => hex(page * PAGE);

function parseRanges(ranges: readonly { readonly hpa: string; readonly length: string }[]): Range[] {
  return ranges.map((r) => ({ hpa: Number(BigInt(r.hpa) / BigInt(PAGE)), pages: Number(BigInt(r.length) / BigInt(PAGE)) }));
}

function covers(ranges: readonly Range[], page: number): boolean {
  return ranges.some((r) => page >= r.hpa && page < r.hpa + r.pages);
}

function pageSet(ranges: readonly Range[]): Set<number> {
  const out = new Set<number>();
  for (const r of ranges) for (let p = r.hpa; p < r.hpa + r.pages; p++) out.add(p);
  return out;
}

function showRanges(ranges: readonly Range[]): string {
  return `[${ranges.map((r) => `${pageHex(r.hpa)}+${r.pages}p`).join(' ')}]`;
}

// ---- the host ------------------------------------------------------------------------------------

export class ConcurrentHost {
  readonly model = new CoherencyModel();
  readonly vmId: string;
  /** Leaks and corruptions, with where they happened. */
  readonly leaks: string[] = [];
  readonly corruptions: string[] = [];
  /** Answers whose own flush and `after` do not cover what they let No-Snoop devices reach. */
  readonly coverage: string[] = [];
  /** Broken contract rules: shared or grown jobs, wrong `when`, unknown jobs, refused requests that should not be. */
  readonly rules: string[] = [];
  /** One line per request and per hardware change, for a failing run. */
  readonly trace: string[] = [];
  readonly answers: Answer[] = [];
  readonly stats: ConcurrentStats = { answers: 0, withAfter: 0, afterWaits: 0, sharedWindows: 0, replays: 0, othersJobs: 0, probes: 0, coveredByAfter: 0 };

  /** Differences between the service's state and what the answers the VMM got 2xx for make it (checkState, and the reference replay). */
  readonly state: string[] = [];
  /** Changes the service answered 2xx, in the order their answers came. */
  readonly changes: AcceptedChange[] = [];
  readonly faults: FaultStats = { refused: 0, ackRetries: 0, readsRefused: 0, stateChecks: 0 };

  readonly #app: FastifyInstance;
  /** The app, then the other replicas. */
  #apps: readonly FastifyInstance[];
  readonly #rand: () => number;
  /** Caller c talks to replica (c + offset) mod n. */
  readonly #offset: number;
  readonly #storeFaults: boolean;
  readonly #quirksAtSetup: boolean;
  /** Jobs whose acknowledgement the VMM got a 2xx answer for: kept, whatever happens next. */
  readonly #ackKept = new Set<string>();
  /** Jobs performed whose acknowledgement was answered 503: sent again later. */
  readonly #ackRetry = new Set<string>();
  /** Host pages a 2xx answer's pin or replay flush covered: their ranges carry flushOnUnpin. */
  readonly #flagged = new Set<number>();
  readonly #config: Config;
  readonly #devs: Dev[];
  /** Pins the service accepted and no unpin of which was answered yet. */
  #pins: Pin[] = [];
  readonly #obligations: Obligation[] = [];
  /** Jobs acknowledged (by the VMM, or seen acknowledged when polled). */
  readonly #acked = new Set<string>();
  /** Ranges of each job the VMM knows: its answers' (what their callers flush), others' as listed by the service. */
  readonly #jobRanges = new Map<string, Range[]>();
  /** Job ids of the VMM's own answers (and how many answers named each). */
  readonly #ownJobs = new Map<string, number>();
  /** Jobs of someone else the listing VMM took up. */
  readonly #othersJobs = new Set<string>();
  /** Jobs an operator's quirk list caused, and every job outstanding when it was put: the list becomes true once they are acknowledged. */
  #quirkSwitch: string[] | null = null;
  #ignoresTrue: boolean;
  readonly #probed = new Set<number>();
  readonly #leaked = new Set<number>();
  #nextHpa = 0x100;
  #nextIova = 0;
  #round = 0;
  #order = 0;

  readonly #ignoreAfter: boolean;

  /** `ignoreAfter`: a careless VMM that makes changes once its own flush is performed, not waiting for `flush.after` (to show the model notices). See HostOptions for the rest. */
  constructor(app: FastifyInstance, vmId: string, config: Config, options: HostOptions = {}) {
    this.#app = app;
    this.#apps = [app, ...(options.replicas ?? [])];
    this.#rand = prng(options.seed ?? 1);
    this.#offset = this.#apps.length > 1 ? Math.floor(this.#rand() * this.#apps.length) : 0;
    this.#storeFaults = options.storeFaults ?? false;
    this.#quirksAtSetup = options.quirksAtSetup ?? true;
    this.#ignoreAfter = options.ignoreAfter ?? false;
    this.vmId = vmId;
    this.#config = config;
    this.#ignoresTrue = config.quirks === 1;
    this.#devs = config.devices.map((spec, index) => {
      const hardwired = spec.state === 'hardwired-zero';
      const bit: 0 | 1 = spec.state === 'enabled' || spec.state === 'unknown' ? 1 : 0;
      return { index, bdf: `0000:${(index + 1).toString(16).padStart(2, '0')}:00.0`, kind: spec.kind, hardwired, unreadable: spec.state === 'unknown', bit, dom: null, intendedDom: null, intendedBit: bit, ops: [] };
    });
  }

  /** Plays a scenario: setup, the rounds, every flush performed and every change made, teardown, and the job checks. */
  static async play(app: FastifyInstance, vmId: string, scenario: Scenario): Promise<ConcurrentHost> {
    const host = new ConcurrentHost(app, vmId, scenario.config);
    await host.setup();
    for (const round of scenario.rounds) await host.round(round);
    await host.finish();
    return host;
  }

  get clean(): boolean {
    return this.leaks.length === 0 && this.corruptions.length === 0 && this.coverage.length === 0 && this.rules.length === 0 && this.state.length === 0;
  }

  /** What a failing run shows: the findings, then the trace. */
  report(): string {
    const head = [
      ...this.leaks.map((l) => `LEAK ${l}`),
      ...this.corruptions.map((c) => `CORRUPTION ${c}`),
      ...this.coverage.map((c) => `NOT COVERED ${c}`),
      ...this.rules.map((r) => `RULE ${r}`),
      ...this.state.map((r) => `STATE ${r}`)
    ];
    return [...head.slice(0, 12), '--- trace ---', ...this.trace.slice(0, 200)].join('\n');
  }

  get #vmUrl(): string {
    return `/v1/vms/${this.vmId}`;
  }

  #dev(index: number): Dev {
    return this.#devs[index % this.#devs.length] as Dev;
  }

  #dom(index: number): number {
    return index % this.#config.coherent.length;
  }

  #coherent(dom: number): boolean {
    return this.#config.coherent[dom] === true;
  }

  /** Sends a request to replica `via` (0: the app); a change answered 2xx is recorded in `changes`. */
  async #call(method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: object, via = 0): Promise<{ status: number; body: unknown }> {
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
        else revision = ((body as { vms?: { vmId: string; revision: number }[] }).vms ?? []).find((v) => v.vmId === this.vmId)?.revision ?? null;
      }
      this.changes.push({ order: this.changes.length, method, url, payload, via, status: res.statusCode, body, revision });
    }
    return { status: res.statusCode, body };
  }

  /** The replica caller `caller` talks to. */
  #via(caller: number): number {
    return (caller + this.#offset) % this.#apps.length;
  }

  /** A replica drawn at random (always 0 with one app). */
  #anyVia(): number {
    return this.#apps.length === 1 ? 0 : Math.floor(this.#rand() * this.#apps.length);
  }

  /**
   * With replicas: replica `via` catches up to the VM's last answer before it is asked for the
   * VM's flush jobs (that listing takes no `?minRevision=` of its own; GET /v1/vms/{id} does).
   */
  async #fresh(via: number): Promise<void> {
    if (this.#apps.length === 1 || this.maxRevision === 0) return;
    await this.#call('GET', `${this.#vmUrl}?minRevision=${this.maxRevision}`, undefined, via);
  }

  /** A 503 the faults allow (the store is down, or the state is being reloaded). */
  #storeDown(res: { status: number; body: unknown }): boolean {
    if (!this.#storeFaults || res.status !== 503) return false;
    const code = typeof res.body === 'object' && res.body !== null ? (res.body as { code?: unknown }).code : undefined;
    return code === 'STORE_UNAVAILABLE' || code === 'NOT_READY';
  }

  /** A read that may answer 503 while the store is down (with storeFaults); null then. */
  async #read(url: string, via = 0): Promise<unknown> {
    const res = await this.#call('GET', url, undefined, via);
    if (this.#storeDown(res)) {
      this.faults.readsRefused++;
      this.trace.push(`  read ${url} answered 503 (store down)`);
      return null;
    }
    if (res.status >= 300) {
      this.rules.push(`GET ${url} answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      return null;
    }
    return res.body;
  }

  /** A request that must succeed (setup, acknowledgements, listings). */
  async #ok(method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: object, via = 0): Promise<unknown> {
    const res = await this.#call(method, url, payload, via);
    if (res.status >= 300) {
      this.rules.push(`${method} ${url} answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      return null;
    }
    return res.body;
  }

  // ---- setup ----------------------------------------------------------------------------------

  async setup(): Promise<void> {
    const c = this.#config;
    const via = this.#via(0);
    if (this.#quirksAtSetup) await this.#ok('PUT', '/v1/quirks', { quirks: QUIRK_TABLES[c.quirks] }, via);
    await this.#ok('PUT', this.#vmUrl, { arch: 'x86_64', policy: { mode: c.mode, onEnable: c.onEnable, exemptNeedsNoSnoop: c.exempt } }, via);
    for (let d = 0; d < c.coherent.length; d++) await this.#ok('PUT', `${this.#vmUrl}/domains/d${d}`, { enforceCacheCoherency: c.coherent[d] === true }, via);
    this.trace.push(`setup: ${c.mode}/${c.onEnable}${c.exempt ? '/exempt' : ''}, domains ${c.coherent.map((x, d) => `d${d}${x ? '(coherent)' : ''}`).join(' ')}, quirk table ${c.quirks}`);
    // Devices are assigned, then ranges pinned, one at a time, everything performed at once.
    for (const [i, spec] of c.devices.entries()) {
      await this.round([{ t: 'move', caller: 0, dev: i, dom: spec.dom }], 'setup');
      await this.settle();
    }
    for (const p of c.prePins) {
      await this.round([{ t: 'pin', caller: 0, pages: p.pages, doms: p.doms }], 'setup');
      await this.settle();
    }
  }

  // ---- a round: requests in flight at once -------------------------------------------------------

  async round(actions: readonly Action[], label?: string): Promise<void> {
    const round = ++this.#round;
    this.trace.push(`round ${label ?? round}:`);
    // Acknowledgements the store could not keep are sent again first.
    if (this.#ackRetry.size > 0) await this.#retryAcks();
    const used = new Set<number>();
    const tasks: Promise<Result | null>[] = [];
    for (const a of actions) {
      // The VMM serialises what it does to one device: one request per device per round.
      if (a.t === 'devctl' || a.t === 'move') {
        const d = this.#dev(a.dev).index;
        if (used.has(d)) continue;
        used.add(d);
      }
      // One operator, one quirk list at a time.
      if (a.t === 'quirks') {
        if (used.has(-1)) continue;
        used.add(-1);
      }
      tasks.push(this.#start(a));
    }
    const results = (await Promise.all(tasks)).filter((r): r is Result => r !== null);
    // The VMM handles its answers in the order the service decided them.
    const revision = (r: Result): number => {
      if (r.status >= 300 || typeof r.body !== 'object' || r.body === null) return -1;
      // The operator's answer carries a revision in its entry for the VM. Without one it decided
      // nothing for the VM, and its place among the others is unknown: a list that takes the
      // flag away is handled first, one that adds it last, which only makes the devices' truth
      // less exposed for the answers around it.
      if (r.action.t === 'quirks') {
        const entry = ((r.body as { vms?: { vmId: string; revision: number }[] }).vms ?? []).find((v) => v.vmId === this.vmId);
        return entry?.revision ?? (r.action.table === 0 ? -1 : Number.MAX_SAFE_INTEGER);
      }
      const rev = (r.body as { revision?: unknown }).revision;
      return typeof rev === 'number' ? rev : -1;
    };
    results.sort((x, y) => revision(x) - revision(y) || x.order - y.order);
    const before = this.answers.length;
    for (const r of results) await this.#process(r, round);
    if (this.answers.slice(before).filter((a) => a.jobId !== undefined).length >= 2) this.stats.sharedWindows++;
    await this.#apply();
    this.#sweep();
  }

  /** Sends an action's request (after what the host does first: zeroing pinned pages, performing a flush). */
  async #start(a: Action): Promise<Result | null> {
    const order = this.#order++;
    switch (a.t) {
      case 'pin': {
        const hpa = this.#nextHpa;
        this.#nextHpa += a.pages + 1;
        const iova = this.#nextIova;
        this.#nextIova += a.pages + 1;
        // The host zeroes the pages it pins through the cache: dirty lines, another owner's data in DRAM.
        for (let p = hpa; p < hpa + a.pages; p++) this.model.hostZero(p, this.vmId);
        const doms = a.doms === null ? null : [...new Set(a.doms.map((d) => this.#dom(d)))].sort();
        const pin: Pin = { iova, hpa, pages: a.pages, doms, mapped: false, unpinning: false, own: null, gate: null };
        const via = this.#via(a.caller);
        const res = await this.#call('POST', `${this.#vmUrl}/pins`, { iova: pageHex(iova), hpa: pageHex(hpa), length: pageHex(a.pages), ...(doms === null ? {} : { domains: doms.map((d) => `d${d}`) }) }, via);
        return { action: a, order, ...res, pin, via };
      }
      case 'unpin': {
        const mapped = this.#pins.filter((p) => p.mapped && !p.unpinning);
        const pin = mapped[a.pick % Math.max(1, mapped.length)];
        if (pin === undefined) return null;
        pin.unpinning = true;
        const via = this.#via(a.caller);
        const res = await this.#call('POST', `${this.#vmUrl}/unpins`, { iova: pageHex(pin.iova), length: pageHex(pin.pages) }, via);
        return { action: a, order, ...res, pin, via };
      }
      case 'devctl': {
        const dev = this.#dev(a.dev);
        if (dev.intendedDom === null) return null;
        const via = this.#via(a.caller);
        const res = await this.#call('POST', `${this.#vmUrl}/devices/${dev.bdf}/devctl`, { nosnoopEnable: a.enable }, via);
        return { action: a, order, ...res, dev, via };
      }
      case 'move': {
        const dev = this.#dev(a.dev);
        const dom = this.#dom(a.dom);
        // A report (same domain) says what the device reads now: only once the VMM's writes to it landed.
        if (dom === dev.intendedDom && dev.ops.length > 0) return null;
        // What the device reads once the writes the VMM owes it land (they land before the move).
        const nosnoop = dev.hardwired ? 'hardwired-zero' : dev.unreadable ? 'unknown' : dev.intendedBit === 1 ? 'enabled' : 'disabled';
        const via = this.#via(a.caller);
        const res = await this.#call('PUT', `${this.#vmUrl}/devices/${dev.bdf}`, { domainId: `d${dom}`, vendorId: IDS[dev.kind][0], deviceId: IDS[dev.kind][1], function: 'pf', nosnoop }, via);
        return { action: a, order, ...res, dev, via };
      }
      case 'flush': {
        const ob = this.#obligations.find((o) => o.caller === a.caller && !o.performed);
        if (ob === undefined) return null;
        await this.#perform(ob);
        return null;
      }
      case 'list':
        await this.#listOthers(false);
        return null;
      case 'quirks': {
        const via = this.#anyVia();
        const res = await this.#call('PUT', '/v1/quirks', { quirks: QUIRK_TABLES[a.table] }, via);
        return { action: a, order, ...res, via };
      }
    }
  }

  // ---- answers ---------------------------------------------------------------------------------

  #record(round: number, caller: number, what: string, body: WireAnswer): Answer {
    const f = body.flush;
    const answer: Answer = {
      index: this.answers.length,
      round,
      caller,
      what,
      revision: body.revision,
      required: f.required,
      ranges: f.required ? parseRanges(f.ranges) : [],
      jobId: f.jobId,
      after: f.after ?? [],
      when: f.when,
      cause: f.cause,
      hardwareValue: body.hardwareValue === undefined ? undefined : Number(body.hardwareValue)
    };
    this.answers.push(answer);
    this.stats.answers++;
    if (answer.after.length > 0) this.stats.withAfter++;
    if (answer.cause === 'replay') this.stats.replays++;
    const parts = [`  #${answer.index} c${caller} ${what} -> rev ${answer.revision}`];
    if (body.decision !== undefined) parts.push(`${body.decision} hw=${body.hardwareValue}`);
    if (f.required) parts.push(`flush ${f.cause}/${f.when} ${showRanges(answer.ranges)} job ${f.jobId?.slice(0, 11)}`);
    if (answer.after.length > 0) parts.push(`after [${answer.after.map((id) => id.slice(0, 11)).join(' ')}]`);
    this.trace.push(parts.join(' '));
    // The contract: a required flush is the answer's own job, with the right timing.
    if (f.required && f.jobId === undefined) this.rules.push(`#${answer.index} ${what}: a required flush without a jobId`);
    if (!f.required && f.jobId !== undefined) this.rules.push(`#${answer.index} ${what}: no flush required but job ${f.jobId}`);
    if (f.required && f.rangesTruncated !== true && answer.ranges.length === 0) this.rules.push(`#${answer.index} ${what}: a required flush without ranges`);
    if (f.jobId !== undefined) {
      const n = this.#ownJobs.get(f.jobId) ?? 0;
      if (n > 0) this.rules.push(`#${answer.index} ${what}: job ${f.jobId} is shared with an earlier answer (an obligation is per answer)`);
      this.#ownJobs.set(f.jobId, n + 1);
      // What the VMM will flush for this job: what its callers were told.
      this.#jobRanges.set(f.jobId, [...(this.#jobRanges.get(f.jobId) ?? []), ...answer.ranges]);
      // A job answered again after its acknowledgement is outstanding again.
      this.#acked.delete(f.jobId);
    }
    this.#flag(f);
    return answer;
  }

  /** A pin's or replay's flush sets flushOnUnpin on the ranges it covers. */
  #flag(f: WireFlush): void {
    if (!f.required || (f.cause !== 'pin' && f.cause !== 'replay')) return;
    for (const p of pageSet(parseRanges(f.ranges))) this.#flagged.add(p);
  }

  /** The answer's own flush, which the caller performs later (a `flush` action, or at the end). */
  #obligation(answer: Answer, body: WireAnswer, expected: 'before-map' | 'after-unmap', release: Pin | null): Obligation | null {
    const f = body.flush;
    if (!f.required) return null;
    if (f.when !== expected) this.rules.push(`#${answer.index} ${answer.what}: flush.when ${f.when} where ${expected} is due`);
    const ob: Obligation = { caller: answer.caller, answer: answer.index, jobId: f.jobId, ranges: answer.ranges, truncated: f.rangesTruncated === true, when: expected, performed: false, release };
    this.#obligations.push(ob);
    return ob;
  }

  async #process(r: Result, round: number): Promise<void> {
    const a = r.action;
    const caller = 'caller' in a ? a.caller : -1;
    if (r.status >= 300) {
      this.trace.push(`  c${caller} ${a.t} refused ${r.status} ${JSON.stringify(r.body).slice(0, 160)}`);
      if (a.t === 'unpin' && r.pin !== undefined) r.pin.unpinning = false;
      if (this.#storeDown(r)) {
        // The store could not keep it: nothing changed, and the VMM does not act on it.
        this.faults.refused++;
        return;
      }
      // Nothing this model sends should be refused: no overlap, no bisecting, no unknown device.
      this.rules.push(`${a.t} by c${caller} refused: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      return;
    }
    const body = r.body as WireAnswer;
    switch (a.t) {
      case 'pin': {
        const pin = r.pin as Pin;
        const answer = this.#record(round, caller, `pin ${showRanges([{ hpa: pin.hpa, pages: pin.pages }])}${pin.doms === null ? '' : ` into ${pin.doms.map((d) => `d${d}`).join(',')}`}`, body);
        pin.own = this.#obligation(answer, body, 'before-map', null);
        pin.gate = { own: pin.own, after: answer.after, answer: answer.index };
        this.#pins.push(pin);
        await this.#checkCoverage(answer, pin.own, [], pin, r.via);
        return;
      }
      case 'unpin': {
        const pin = r.pin as Pin;
        const answer = this.#record(round, caller, `unpin ${showRanges([{ hpa: pin.hpa, pages: pin.pages }])}`, body);
        // Unmapped from the IOMMU at once; the pages go back to the host once flushed.
        pin.mapped = false;
        this.#pins = this.#pins.filter((p) => p !== pin);
        const ob = this.#obligation(answer, body, 'after-unmap', pin);
        if (ob === null) this.#release(pin, answer.index);
        return;
      }
      case 'devctl': {
        const dev = r.dev as Dev;
        const answer = this.#record(round, caller, `devctl ${dev.bdf} ${a.enable ? 'enable' : 'clear'}`, body);
        const own = this.#obligation(answer, body, 'before-map', null);
        const gate: Gate = { own, after: answer.after, answer: answer.index };
        if (answer.hardwareValue === undefined) this.rules.push(`#${answer.index}: a devctl answer without hardwareValue`);
        else this.#queueWrite(dev, answer.hardwareValue, gate, answer);
        this.#queueDevices(body, gate, answer);
        const lets = answer.hardwareValue !== undefined && (answer.hardwareValue & DEVCTL_NOSNOOP_EN) !== 0 ? [dev] : [];
        await this.#checkCoverage(answer, own, lets, null, r.via);
        return;
      }
      case 'move': {
        const dev = r.dev as Dev;
        const dom = this.#dom(a.dom);
        const from = dev.intendedDom;
        const answer = this.#record(round, caller, `${from === null ? 'attach' : from === dom ? 'report' : 'move'} ${dev.bdf} ${from === null ? '' : `d${from} -> `}d${dom}`, body);
        const own = this.#obligation(answer, body, 'before-map', null);
        const gate: Gate = { own, after: answer.after, answer: answer.index };
        if (from !== dom) {
          // Detached from its old domain at once; attached to the new one once the answer allows it.
          if (dev.dom !== null) this.trace.push(`  hw: ${dev.bdf} detached from d${dev.dom}`);
          dev.dom = null;
        }
        if (from !== dom) {
          // A later move supersedes one still waiting: the device goes where the service now
          // holds it, never through the domain it was answered out of.
          const superseded = dev.ops.filter((op) => op.kind === 'attach');
          if (superseded.length > 0) this.trace.push(`  vmm: ${dev.bdf} will not be attached to ${superseded.map((op) => (op.kind === 'attach' ? `d${op.dom}` : '')).join(', ')} (superseded)`);
          dev.ops = dev.ops.filter((op) => op.kind !== 'attach');
        }
        if (answer.hardwareValue !== undefined) this.#queueWrite(dev, answer.hardwareValue, gate, answer);
        if (from !== dom) dev.ops.push({ kind: 'attach', dom, gate });
        dev.intendedDom = dom;
        this.#queueDevices(body, gate, answer);
        await this.#checkCoverage(answer, own, from !== dom && this.#intendedNoSnoop(dev) ? [dev] : [], null, r.via);
        return;
      }
      case 'quirks': {
        const entry = ((r.body as { vms?: (WireAnswer & { vmId: string })[] }).vms ?? []).find((v) => v.vmId === this.vmId);
        this.trace.push(`  operator: quirk table ${a.table}${entry?.flush.required === true ? `, replay ${showRanges(parseRanges(entry.flush.ranges))} job ${entry.flush.jobId?.slice(0, 11)}` : ''}`);
        if (entry !== undefined) this.#flag(entry.flush);
        if (a.table === 0) {
          // A flag taken away is gone at once.
          this.#ignoresTrue = false;
          this.#quirkSwitch = null;
        } else if (!this.#ignoresTrue && this.#quirkSwitch === null) {
          // Nobody could know before the replays it causes, and every flush outstanding when it
          // was put (the service's list: an earlier list's replay may cover what this one does
          // not replay again), are performed.
          const url = `${this.#vmUrl}/flush-jobs?limit=1000`;
          await this.#fresh(r.via ?? 0);
          const listed = (this.#storeFaults ? await this.#read(url, r.via) : await this.#ok('GET', url, undefined, r.via)) as { items: { id: string; state: string; acknowledgedAt: string | null }[] } | null;
          // Unreadable (the store down): the list is true no sooner than a later listing's outstanding jobs are acknowledged.
          const outstanding =
            listed === null && this.#storeFaults ? [UNLISTED] : (listed?.items ?? []).filter((j) => j.acknowledgedAt === null && j.state !== 'done' && j.state !== 'failed').map((j) => j.id);
          this.#quirkSwitch = [...(entry?.flush.jobId === undefined ? [] : [entry.flush.jobId]), ...outstanding].filter((id) => !this.#acked.has(id));
        }
        return;
      }
      case 'flush':
      case 'list':
        return;
    }
  }

  #queueWrite(dev: Dev, value: number, gate: Gate, answer: Answer): void {
    if (dev.hardwired && (value & DEVCTL_NOSNOOP_EN) !== 0) this.rules.push(`#${answer.index}: hardwareValue ${hex(value)} sets bit 11 on hardwired-zero ${dev.bdf}`);
    dev.ops.push({ kind: 'write', value, gate });
    dev.intendedBit = dev.hardwired || (value & DEVCTL_NOSNOOP_EN) === 0 ? 0 : 1;
  }

  /** Writes an answer asks of other devices of the VM (`devices`). */
  #queueDevices(body: WireAnswer, gate: Gate, answer: Answer): void {
    for (const w of body.devices ?? []) {
      const dev = this.#devs.find((d) => d.bdf === w.bdf);
      if (dev === undefined) this.rules.push(`#${answer.index}: asks for a write to ${w.bdf}, not a device of the VM`);
      else this.#queueWrite(dev, Number(w.hardwareValue), gate, answer);
    }
  }

  // ---- what the VMM does -------------------------------------------------------------------------

  /** Performs an answer's own flush: exactly the ranges it listed; then acknowledges it. */
  async #perform(ob: Obligation): Promise<void> {
    if (ob.performed) return;
    ob.performed = true;
    let ranges = ob.ranges;
    if (ob.truncated && ob.jobId !== undefined) ranges = await this.#fetchRanges(ob.jobId);
    this.#flush(ranges);
    this.trace.push(`  c${ob.caller} flushes #${ob.answer}'s ${showRanges(ranges)}${ob.jobId === undefined ? '' : ` and acks ${ob.jobId.slice(0, 11)}`}`);
    if (ob.release !== null) this.#release(ob.release, ob.answer);
    if (ob.jobId !== undefined) await this.#ack(ob.jobId);
  }

  async #ack(id: string): Promise<void> {
    const via = this.#anyVia();
    const url = `/v1/flush-jobs/${id}/ack`;
    let body: { state?: string } | null;
    if (this.#storeFaults) {
      const res = await this.#call('POST', url, undefined, via);
      if (this.#storeDown(res)) {
        // Not kept (or not known to be): the VMM sends it again later; until then it waits for it.
        this.faults.ackRetries++;
        this.#ackRetry.add(id);
        this.trace.push(`  ack of ${id.slice(0, 11)} answered 503: sent again later`);
        return;
      }
      if (res.status >= 300) this.rules.push(`POST ${url} answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      body = res.status >= 300 ? null : (res.body as { state?: string });
    } else {
      body = (await this.#ok('POST', url, undefined, via)) as { state?: string } | null;
    }
    if (body === null) return;
    this.#ackRetry.delete(id);
    this.#ackKept.add(id);
    if (body.state !== 'acknowledged' && body.state !== 'done') this.rules.push(`ack of ${id} answered state ${body.state}`);
    this.#acked.add(id);
  }

  /** Sends again the acknowledgements the store could not keep. */
  async #retryAcks(): Promise<void> {
    for (const id of [...this.#ackRetry]) await this.#ack(id);
  }

  /**
   * A job's ranges as the service lists them (waits for the job to be planned), asked of replica
   * `prefer` first, then of the others (a replica that has not applied the change behind a job
   * does not know it yet); with storeFaults, a 503 is asked again a little later.
   */
  async #fetchRanges(id: string, prefer = 0): Promise<Range[]> {
    let failed: { url: string; status: number; body: unknown } | null = null;
    for (let attempt = 0; attempt < 50; attempt++) {
      for (let k = 0; k < this.#apps.length; k++) {
        const via = (prefer + k) % this.#apps.length;
        const out: Range[] = [];
        let cursor: string | undefined;
        failed = null;
        do {
          const url = `/v1/flush-jobs/${id}/ranges?limit=10000${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
          const res = await this.#call('GET', url, undefined, via);
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
      if (failed === null || !this.#storeDown(failed)) break;
      await sleep(100);
    }
    if (failed !== null) this.rules.push(`GET ${failed.url} answered ${failed.status} ${JSON.stringify(failed.body).slice(0, 200)}`);
    return [];
  }

  /** The listing VMM: every job of its VM it was not answered, pending (or, at the end, any not acknowledged), performed and acknowledged. */
  async #listOthers(all: boolean): Promise<number> {
    const via = this.#anyVia();
    await this.#fresh(via);
    const url = `${this.#vmUrl}/flush-jobs?limit=1000`;
    const body = (this.#storeFaults ? await this.#read(url, via) : await this.#ok('GET', url, undefined, via)) as { items: { id: string; state: string; acknowledgedAt: string | null }[] } | null;
    let n = 0;
    if (body !== null && this.#quirkSwitch?.includes(UNLISTED) === true) {
      // The jobs outstanding now: those outstanding when the list was put and acknowledged since were performed.
      const outstanding = body.items.filter((j) => j.acknowledgedAt === null && j.state !== 'done' && j.state !== 'failed').map((j) => j.id);
      this.#quirkSwitch = [...this.#quirkSwitch.filter((id) => id !== UNLISTED), ...outstanding].filter((id) => !this.#acked.has(id));
    }
    for (const job of body?.items ?? []) {
      if (this.#ownJobs.has(job.id) || this.#acked.has(job.id) || job.acknowledgedAt !== null) continue;
      if (job.state !== 'pending' && !(all && (job.state === 'queued' || job.state === 'running'))) continue;
      const ranges = await this.#fetchRanges(job.id, via);
      this.#jobRanges.set(job.id, ranges);
      this.#othersJobs.add(job.id);
      this.#flush(ranges);
      this.trace.push(`  vmm: performs someone else's job ${job.id.slice(0, 11)} ${showRanges(ranges)}`);
      this.stats.othersJobs++;
      await this.#ack(job.id);
      n++;
    }
    return n;
  }

  /** Whether job `id` is acknowledged (or otherwise done), polling the service for jobs the VMM does not hold. */
  async #jobDone(id: string): Promise<boolean> {
    if (this.#acked.has(id)) return true;
    if (this.#jobRanges.has(id)) return false;
    // Asked of every replica: one that has not applied the change behind it yet does not know it.
    let known = false;
    for (let via = 0; via < this.#apps.length; via++) {
      const res = await this.#call('GET', `/v1/flush-jobs/${id}`, undefined, via);
      if (res.status === 404) continue;
      known = true;
      const state = (res.body as { state?: string }).state;
      if (state === 'acknowledged' || state === 'done') {
        this.#acked.add(id);
        return true;
      }
    }
    if (!known) {
      this.rules.push(`flush.after names job ${id}, which the service does not know`);
      this.#acked.add(id);
      return true;
    }
    return false;
  }

  async #open(gate: Gate): Promise<boolean> {
    if (gate.own !== null && !gate.own.performed) return false;
    if (this.#ignoreAfter) return true;
    for (const id of gate.after) {
      if (!(await this.#jobDone(id))) {
        this.#waited.add(gate);
        return false;
      }
    }
    return true;
  }

  readonly #waited = new Set<Gate>();

  /** Makes every change whose answer allows it now, devices in answer order. */
  async #apply(): Promise<void> {
    for (let progress = true; progress; ) {
      progress = false;
      for (const pin of this.#pins) {
        if (pin.mapped || pin.gate === null || !(await this.#open(pin.gate))) continue;
        if (this.#waited.delete(pin.gate)) this.stats.afterWaits++;
        pin.mapped = true;
        pin.gate = null;
        this.trace.push(`  hw: maps ${showRanges([{ hpa: pin.hpa, pages: pin.pages }])}${pin.doms === null ? '' : ` into ${pin.doms.map((d) => `d${d}`).join(',')}`}`);
        progress = true;
      }
      for (const dev of this.#devs) {
        for (let op = dev.ops[0]; op !== undefined && (await this.#open(op.gate)); op = dev.ops[0]) {
          if (this.#waited.delete(op.gate)) this.stats.afterWaits++;
          dev.ops.shift();
          if (op.kind === 'write') {
            dev.bit = dev.hardwired || (op.value & DEVCTL_NOSNOOP_EN) === 0 ? 0 : 1;
            this.trace.push(`  hw: ${dev.bdf} DEVCTL <- ${hex(op.value)} (#${op.gate.answer})`);
          } else {
            dev.dom = op.dom;
            this.trace.push(`  hw: ${dev.bdf} attached to d${op.dom} (#${op.gate.answer})`);
          }
          progress = true;
        }
      }
    }
    if (this.#quirkSwitch !== null && this.#quirkSwitch.every((id) => this.#acked.has(id))) {
      this.#quirkSwitch = null;
      this.#ignoresTrue = true;
      this.trace.push('  hw: the bad device ignores its bit (the quirk list is true now)');
    }
  }

  #flush(ranges: readonly Range[]): void {
    for (const r of ranges) {
      for (let p = r.hpa; p < r.hpa + r.pages; p++) {
        this.model.flush(p);
        // No line left: the adversary may cache it clean and overwrite it with No-Snoop again.
        this.#probed.delete(p);
      }
    }
  }

  #release(pin: Pin, answer: number): void {
    for (let p = pin.hpa; p < pin.hpa + pin.pages; p++) {
      const before = this.model.violations.length;
      this.model.release(p);
      if (this.model.violations.length > before) this.corruptions.push(`page ${pageHex(p)} released after unpin #${answer} with a stale line: a No-Snoop device wrote it and no flush after the unmap covered it`);
    }
  }

  // ---- the hardware ---------------------------------------------------------------------------------

  #ignores(dev: Dev): boolean {
    return dev.kind === 'bad' && this.#ignoresTrue;
  }

  /** Puts No-Snoop on the wire now. */
  #noSnoop(dev: Dev): boolean {
    return this.#ignores(dev) || dev.unreadable || (!dev.hardwired && dev.bit === 1);
  }

  /** Will put No-Snoop on the wire once every answer the VMM holds took effect (and a quirk list in flight is true). */
  #intendedNoSnoop(dev: Dev): boolean {
    return (dev.kind === 'bad' && (this.#ignoresTrue || this.#quirkSwitch !== null)) || dev.unreadable || (!dev.hardwired && dev.intendedBit === 1);
  }

  #mapsInto(pin: Pin, dom: number): boolean {
    return pin.doms === null || pin.doms.includes(dom);
  }

  /** After every round: every device that can emit No-Snoop in a non-coherent domain reads (and first overwrites) every page it reaches. */
  #sweep(): void {
    for (const dev of this.#devs) {
      if (dev.dom === null || this.#coherent(dev.dom) || !this.#noSnoop(dev)) continue;
      for (const pin of this.#pins) {
        if (!pin.mapped || !this.#mapsInto(pin, dev.dom)) continue;
        for (let p = pin.hpa; p < pin.hpa + pin.pages; p++) {
          const before = this.model.violations.length;
          this.model.dmaRead(p, this.vmId, true);
          if (this.model.violations.length > before && !this.#leaked.has(p)) {
            this.#leaked.add(p);
            this.leaks.push(`round ${this.#round}: ${dev.bdf} (bit ${dev.bit}${dev.unreadable ? ', unknown' : ''}${this.#ignores(dev) ? ', ignores it' : ''}) in d${dev.dom} read page ${pageHex(p)} with No-Snoop while its zeroing sat dirty in the CPU cache`);
            this.trace.push(`  LEAK: ${dev.bdf} in d${dev.dom} reads unflushed page ${pageHex(p)}`);
          }
          if (this.#probed.has(p)) continue;
          this.#probed.add(p);
          this.stats.probes++;
          this.model.cpuRead(p);
          this.model.dmaWrite(p, this.vmId, true);
        }
      }
    }
  }

  // ---- the per-answer check ------------------------------------------------------------------------

  /**
   * The union of the answer's own flush and its outstanding `after` jobs covers every unflushed
   * page that a device it lets emit No-Snoop (`lets`; for a pin, every device that will emit it
   * in the pin's domains) could reach once it takes effect.
   */
  async #checkCoverage(answer: Answer, own: Obligation | null, lets: readonly Dev[], pin: Pin | null, via = 0): Promise<void> {
    const reach = new Map<number, string>();
    const unflushed = (p: number): boolean => this.model.dram(p).owner !== this.vmId;
    for (const dev of lets) {
      const dom = dev.intendedDom;
      if (dom === null || this.#coherent(dom)) continue;
      for (const q of this.#pins) {
        if (!this.#mapsInto(q, dom)) continue;
        for (let p = q.hpa; p < q.hpa + q.pages; p++) {
          // A range not mapped yet whose own flush is still to come is flushed before it is mapped.
          if (!q.mapped && q.own !== null && !q.own.performed && covers(q.own.ranges, p)) continue;
          if (unflushed(p) && !reach.has(p)) reach.set(p, `${dev.bdf} in d${dom}`);
        }
      }
    }
    if (pin !== null) {
      const doms = pin.doms ?? this.#config.coherent.map((_, d) => d);
      const devs = this.#devs.filter((d) => d.intendedDom !== null && doms.includes(d.intendedDom) && !this.#coherent(d.intendedDom) && this.#intendedNoSnoop(d));
      if (devs.length > 0) for (let p = pin.hpa; p < pin.hpa + pin.pages; p++) if (unflushed(p)) reach.set(p, devs.map((d) => `${d.bdf} in d${d.intendedDom}`).join(', '));
    }
    if (reach.size === 0) return;
    const afterRanges: { id: string; ranges: Range[] }[] = [];
    for (const id of answer.after) {
      if (this.#acked.has(id)) continue;
      const known = this.#jobRanges.get(id) ?? (await this.#fetchRanges(id, via));
      if (!this.#jobRanges.has(id)) {
        this.#jobRanges.set(id, known);
        this.#othersJobs.add(id);
      }
      afterRanges.push({ id, ranges: known });
    }
    const ownRanges = own?.ranges ?? [];
    for (const [p, who] of reach) {
      if (covers(ownRanges, p)) continue;
      if (afterRanges.some((j) => covers(j.ranges, p))) {
        this.stats.coveredByAfter++;
        continue;
      }
      const outstanding = [...this.#jobRanges].filter(([id]) => !this.#acked.has(id) && !answer.after.includes(id) && id !== answer.jobId);
      const holder = outstanding.find(([, ranges]) => covers(ranges, p));
      this.coverage.push(
        `#${answer.index} (c${answer.caller} ${answer.what}, rev ${answer.revision}) lets ${who} reach unflushed page ${pageHex(p)}: own flush ${showRanges(ownRanges)}, after [${answer.after.map((id) => id.slice(0, 11)).join(' ')}]` +
          (holder === undefined ? ', and no outstanding job covers it' : `, while job ${holder[0].slice(0, 11)} that covers it is outstanding and not named`)
      );
    }
  }

  // ---- the state, as the answers make it --------------------------------------------------------------

  /** The highest revision of the VM's answers (0: none). */
  get maxRevision(): number {
    let max = 0;
    for (const c of this.changes) if (c.revision !== null && c.revision > max) max = c.revision;
    return max;
  }

  /** Acknowledgements still to be sent again. */
  get pendingAcks(): number {
    return this.#ackRetry.size;
  }

  /**
   * Compares the service's state, as replica `via` holds it at least as fresh as the VM's last
   * answer (`?minRevision=`), with what the answers the VMM got 2xx for make it: exactly the
   * ranges accepted and not unpinned, each with flushOnUnpin iff a 2xx answer's pin or replay
   * flush covered it; the devices assigned, each in the domain last answered; and a device the
   * VMM will let emit No-Snoop counting as one that may. Call it between rounds (nothing in
   * flight). Differences go to `state`; false when the replica answered 503 (store down).
   *
   * With replicas, a quirk list that decided nothing for the VM carries no revision for it, so a
   * read at the VM's last revision may show the list before it: a device counting as able to
   * no-snoop only because of the quirk list is checked only given `minRevision` (a revision at
   * least that of the last quirk list put, from the audit trail).
   */
  async checkState(via = 0, label = 'state', minRevision?: number): Promise<boolean> {
    const min = Math.max(this.maxRevision, minRevision ?? 0);
    const fresh = min > 0 ? `minRevision=${min}` : '';
    const quirksFresh = this.#apps.length === 1 || minRevision !== undefined;
    const vmRes = await this.#call('GET', `${this.#vmUrl}${fresh === '' ? '' : `?${fresh}`}`, undefined, via);
    if (this.#storeDown(vmRes)) {
      this.faults.readsRefused++;
      return false;
    }
    if (vmRes.status !== 200) {
      this.state.push(`${label}: GET ${this.#vmUrl} on replica ${via} answered ${vmRes.status} ${JSON.stringify(vmRes.body).slice(0, 200)}`);
      return true;
    }
    const pinsRes = await this.#call('GET', `${this.#vmUrl}/pins?limit=1000${fresh === '' ? '' : `&${fresh}`}`, undefined, via);
    if (this.#storeDown(pinsRes)) return false;
    if (pinsRes.status !== 200) {
      this.state.push(`${label}: GET ${this.#vmUrl}/pins on replica ${via} answered ${pinsRes.status} ${JSON.stringify(pinsRes.body).slice(0, 200)}`);
      return true;
    }
    this.faults.stateChecks++;
    const at = `${label} (replica ${via}, after rev ${this.maxRevision})`;
    const revision = (vmRes.body as { revision: number }).revision;
    if (revision !== this.maxRevision) this.state.push(`${at}: the VM is at revision ${revision}, its last 2xx answer's is ${this.maxRevision}`);
    const items = (pinsRes.body as { items: { iova: string; hpa: string; length: string; flushOnUnpin: boolean }[] }).items;
    const held = new Map(items.map((p) => [Number(BigInt(p.iova) / BigInt(PAGE)), p]));
    for (const pin of this.#pins) {
      const got = held.get(pin.iova);
      held.delete(pin.iova);
      const flag = pageSet([{ hpa: pin.hpa, pages: pin.pages }]);
      const flagged = [...flag].every((p) => this.#flagged.has(p));
      const what = `range iova ${pageHex(pin.iova)} hpa ${showRanges([{ hpa: pin.hpa, pages: pin.pages }])}`;
      if (got === undefined) {
        this.state.push(`${at}: ${what}, pinned by a 2xx answer and never unpinned, is not held`);
        continue;
      }
      if (Number(BigInt(got.hpa) / BigInt(PAGE)) !== pin.hpa || Number(BigInt(got.length) / BigInt(PAGE)) !== pin.pages) this.state.push(`${at}: ${what} is held as hpa ${got.hpa} length ${got.length}`);
      if (got.flushOnUnpin !== flagged) this.state.push(`${at}: ${what} has flushOnUnpin ${got.flushOnUnpin}, but ${flagged ? 'a 2xx answer flushed it (pin or replay)' : 'no 2xx answer flushed it'}`);
    }
    for (const p of held.values()) this.state.push(`${at}: range iova ${p.iova} hpa ${p.hpa} is held, but no 2xx answer pinned it (or its unpin was answered)`);
    const vm = vmRes.body as { devices: { bdf: string; domainId: string | null; nosnoop: string; mayNoSnoop: boolean }[] };
    const devices = new Map(vm.devices.map((d) => [d.bdf, d]));
    for (const dev of this.#devs) {
      const got = devices.get(dev.bdf);
      devices.delete(dev.bdf);
      if (dev.intendedDom === null) {
        if (got !== undefined) this.state.push(`${at}: ${dev.bdf} is assigned, but no 2xx answer assigned it`);
        continue;
      }
      if (got === undefined) {
        this.state.push(`${at}: ${dev.bdf}, assigned by a 2xx answer, is not held`);
        continue;
      }
      if (got.domainId !== `d${dev.intendedDom}`) this.state.push(`${at}: ${dev.bdf} is held in ${got.domainId}, its last answer put it in d${dev.intendedDom}`);
      const emits = quirksFresh ? this.#intendedNoSnoop(dev) : dev.unreadable || (!dev.hardwired && dev.intendedBit === 1);
      if (emits && !got.mayNoSnoop) this.state.push(`${at}: ${dev.bdf} (nosnoop ${got.nosnoop}) counts as unable to no-snoop, yet the answers let it emit No-Snoop (bit ${dev.intendedBit}${dev.unreadable ? ', unknown' : ''})`);
    }
    for (const bdf of devices.keys()) this.state.push(`${at}: ${bdf} is held, not a device of the model`);
    return true;
  }

  /** The service restarted (the same store): the VMM talks to `apps` from now on (as many as before). */
  retarget(apps: readonly FastifyInstance[]): void {
    if (apps.length !== this.#apps.length) throw new Error(`retarget: ${apps.length} app(s) for ${this.#apps.length}`);
    this.#apps = [...apps];
    this.trace.push('the service restarts on its store');
  }

  /** "An acknowledgement answered 200 is kept": every job the VMM got a 2xx acknowledgement for is acknowledged (or done) on replica `via`. */
  async checkAcks(via: number, label: string): Promise<void> {
    for (const id of this.#ackKept) {
      const res = await this.#call('GET', `/v1/flush-jobs/${id}`, undefined, via);
      const state = res.status === 200 ? (res.body as { state?: string }).state : undefined;
      if (state !== 'acknowledged' && state !== 'done') this.state.push(`${label}: job ${id}, whose acknowledgement was answered 2xx, is ${res.status === 200 ? state : `answered ${res.status}`} on replica ${via}`);
    }
  }

  /**
   * No job shared or grown, as replica `via` tells it: each job of the VMM's answers lists
   * exactly the ranges its answer listed. The replica first catches up to the VM's last answer.
   */
  async checkJobs(via: number): Promise<void> {
    if (this.maxRevision > 0) await this.#call('GET', `${this.#vmUrl}?minRevision=${this.maxRevision}`, undefined, via);
    for (const a of this.answers) {
      if (a.jobId === undefined || (this.#ownJobs.get(a.jobId) ?? 0) > 1) continue;
      const res = await this.#call('GET', `/v1/flush-jobs/${a.jobId}/ranges?limit=10000`, undefined, via);
      if (res.status !== 200) {
        this.rules.push(`job ${a.jobId} of #${a.index} (${a.what}): replica ${via} answered ${res.status} for its ranges after catching up to rev ${this.maxRevision}`);
        continue;
      }
      const listed = pageSet(parseRanges((res.body as { items: { hpa: string; length: string }[] }).items));
      const answered = pageSet(a.ranges);
      if (listed.size !== answered.size || [...listed].some((p) => !answered.has(p))) {
        this.rules.push(`job ${a.jobId} of #${a.index} (${a.what}) holds ${listed.size} page(s) on replica ${via}, its answer listed ${answered.size}: a job is exactly its answer's flush`);
      }
    }
  }

  // ---- the end ------------------------------------------------------------------------------------

  /** Every caller performs every flush it owes, the VMM takes up everyone else's, every change allowed is made. */
  async settle(all = false): Promise<void> {
    for (let pass = 0; pass < 8; pass++) {
      // Acknowledgements the store could not keep, sent again until it keeps them (it recovers by itself).
      for (let i = 0; i < 25 && this.#ackRetry.size > 0; i++) {
        if (i > 0) await sleep(200);
        await this.#retryAcks();
      }
      for (let ob = this.#obligations.find((o) => !o.performed); ob !== undefined; ob = this.#obligations.find((o) => !o.performed)) await this.#perform(ob);
      const others = await this.#listOthers(all);
      await this.#apply();
      this.#sweep();
      const waiting = this.#pins.some((p) => !p.mapped) || this.#devs.some((d) => d.ops.length > 0);
      if (!waiting && others === 0 && this.#quirkSwitch === null && this.#ackRetry.size === 0) return;
    }
    if (this.#ackRetry.size > 0) this.rules.push(`acknowledgements of ${[...this.#ackRetry].join(', ')} still answered 503 at the end`);
    const stuck = [...this.#pins.filter((p) => !p.mapped).map((p) => `pin ${pageHex(p.hpa)} (#${p.gate?.answer})`), ...this.#devs.flatMap((d) => d.ops.map((op) => `${op.kind} of ${d.bdf} (#${op.gate.answer})`))];
    if (stuck.length > 0) this.rules.push(`changes never allowed: every flush was performed and acknowledged, yet ${stuck.join(', ')} still wait(s)`);
  }

  async finish(): Promise<void> {
    this.trace.push('finish: every flush performed, every change made');
    await this.settle(true);
    // Teardown: unmap everything, flush what the answer lists, then the pages go back to the host.
    let res = await this.#call('DELETE', this.#vmUrl, undefined, this.#via(0));
    for (let i = 0; i < 50 && this.#storeDown(res); i++) {
      await sleep(100);
      res = await this.#call('DELETE', this.#vmUrl, undefined, this.#via(0));
    }
    if (res.status >= 300) {
      this.rules.push(`teardown refused: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      return;
    }
    const body = res.body as WireAnswer;
    const answer = this.#record(this.#round + 1, 0, 'teardown', body);
    const unmapped = this.#pins;
    this.#pins = [];
    for (const d of this.#devs) d.dom = null;
    const ob = this.#obligation(answer, body, 'after-unmap', null);
    if (ob !== null) await this.#perform(ob);
    for (const pin of unmapped) this.#release(pin, answer.index);
    // Per answer, never grown: each job's ranges are exactly what its answer listed.
    for (const a of this.answers) {
      if (a.jobId === undefined || (this.#ownJobs.get(a.jobId) ?? 0) > 1) continue;
      const res = await this.#call('GET', `/v1/flush-jobs/${a.jobId}/ranges?limit=10000`);
      if (res.status !== 200) continue;
      const listed = pageSet(parseRanges((res.body as { items: { hpa: string; length: string }[] }).items));
      const answered = pageSet(a.ranges);
      if (listed.size !== answered.size || [...listed].some((p) => !answered.has(p))) {
        this.rules.push(`job ${a.jobId} of #${a.index} (${a.what}) holds ${listed.size} page(s), its answer listed ${answered.size}: a job is exactly its answer's flush`);
      }
    }
  }
}

// ---- the reference: the answered changes alone -------------------------------------------------------

/**
 * An in-memory app to replay answered changes on (FLUSH_ACKS=answered: nothing waits there for
 * an acknowledgement, and no flush it plans is anyone's to perform).
 */
export async function referenceApp(): Promise<FastifyInstance> {
  return build({ runtime: createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), pool: INLINE_POOL, windowMs: 1, simThreads: 0, flushAcks: 'answered' }) });
}

/** What an answer decided, without what depends on jobs (ids, `after`) or on time (the revision). */
function decided(body: unknown): unknown {
  if (typeof body !== 'object' || body === null) return body;
  const b = body as Record<string, unknown> & { flush?: Record<string, unknown> & { ranges?: { hpa: string; length: string }[] } };
  if (b.flush === undefined) return null;
  const flush: Record<string, unknown> = { ...b.flush };
  delete flush['jobId'];
  delete flush['after'];
  const sorted = [...(b.flush.ranges ?? [])].sort((x, y) => (BigInt(x.hpa) < BigInt(y.hpa) ? -1 : BigInt(x.hpa) > BigInt(y.hpa) ? 1 : 0));
  return { flush: { ...flush, ranges: sorted }, reasons: b['reasons'], kvmNoncoherentDma: b['kvmNoncoherentDma'], decision: b['decision'], hardwareValue: b['hardwareValue'], guestValue: b['guestValue'], devices: b['devices'] };
}

/** A VM's state as GET /v1/vms/{id} shows it, without what depends on jobs or time. */
function vmState(body: unknown): unknown {
  const b = body as Record<string, unknown>;
  return { arch: b['arch'], policy: b['policy'], domains: b['domains'], devices: b['devices'], pinned: b['pinned'], kvmNoncoherentDma: b['kvmNoncoherentDma'] };
}

function firstDifference(a: unknown, b: unknown, path = ''): string | null {
  if (JSON.stringify(a) === JSON.stringify(b)) return null;
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
      if (d !== null) return d;
    }
  }
  return `${path || '.'}: ${JSON.stringify(a)?.slice(0, 300)} vs ${JSON.stringify(b)?.slice(0, 300)}`;
}

export interface ReferenceOptions {
  /** The service's replicas (the app first) and those to compare the state on. */
  readonly replicas: readonly FastifyInstance[];
  readonly vias: readonly number[];
  readonly quirkRevisions?: readonly number[];
  /** The quirk list put before the host's setup (quirksAtSetup false), put first on the reference. */
  readonly quirkTable?: 0 | 1;
}

/**
 * "Nothing refused is kept, nothing answered is lost, no answered change rests on a refused
 * one": replays the changes the host's VMM got 2xx for (its VM's, and the quirk lists it put),
 * in revision order, on `ref`, a fresh in-memory service. Each must be decided there exactly as
 * the service answered it (flush ranges, verdicts, values to write, reasons), and the VM's state
 * there must equal the service's (on every replica in `vias`, read at least as fresh as the VM's
 * last answer): domains, devices with their No-Snoop states, pinned ranges with their flags.
 * `quirkRevisions`: the revisions of the quirk lists put during the run, in order (from the
 * audit trail), for those that decided nothing for the VM; without them such a list is placed
 * first. Differences go to host.state. Call it between rounds, before the teardown.
 */
export async function referenceCheck(ref: FastifyInstance, host: ConcurrentHost, options: ReferenceOptions): Promise<void> {
  const { replicas, vias, quirkRevisions } = options;
  if (options.quirkTable !== undefined) await ref.inject({ method: 'PUT', url: '/v1/quirks', headers: json, payload: { quirks: QUIRK_TABLES[options.quirkTable] } });
  const quirkPuts = host.changes.filter((c) => c.url === '/v1/quirks');
  if (quirkRevisions !== undefined && quirkRevisions.length !== quirkPuts.length) {
    host.state.push(`reference: the audit trail holds ${quirkRevisions.length} quirk list(s) put during the run, the VMM got 2xx for ${quirkPuts.length}`);
  }
  const placed = host.changes
    .filter((c) => !(c.method === 'DELETE' && c.url === `/v1/vms/${host.vmId}`))
    .map((c) => {
      if (c.url !== '/v1/quirks') return { c, rev: c.revision ?? -1 };
      const audited = quirkRevisions?.[quirkPuts.indexOf(c)];
      if (audited !== undefined && c.revision !== null && audited !== c.revision) host.state.push(`reference: the quirk list answered at rev ${c.revision} is audited at rev ${audited}`);
      return { c, rev: c.revision ?? audited ?? -1 };
    })
    .sort((x, y) => x.rev - y.rev || x.c.order - y.c.order);
  for (const { c, rev } of placed) {
    const res = await ref.inject({ method: c.method, url: c.url, ...(c.payload === undefined ? {} : { headers: json, payload: c.payload }) });
    const what = `${c.method} ${c.url} ${JSON.stringify(c.payload ?? {}).slice(0, 120)} (rev ${rev})`;
    if (res.statusCode >= 300) {
      host.state.push(`reference: ${what}, answered ${c.status}, is refused ${res.statusCode} on the answered changes alone: ${res.body.slice(0, 200)}`);
      continue;
    }
    if (c.method === 'PUT' && c.url === `/v1/vms/${host.vmId}`) continue;
    let got: unknown = JSON.parse(res.body);
    let had: unknown = c.body;
    if (c.url === '/v1/quirks') {
      const entry = (b: unknown): unknown => ((b as { vms?: { vmId: string }[] }).vms ?? []).find((v) => v.vmId === host.vmId) ?? null;
      got = entry(got);
      had = entry(had);
    }
    const d = firstDifference(decided(had), decided(got));
    if (d !== null) host.state.push(`reference: ${what} was answered otherwise than the answered changes before it decide it (service vs reference): ${d}`);
  }
  // At least as fresh as the VM's last answer and every quirk list put (a list that decided nothing for the VM has no revision of its own there).
  const min = Math.max(host.maxRevision, ...(quirkRevisions ?? []));
  const fresh = min > 0 ? `minRevision=${min}` : '';
  const refVm = await ref.inject({ method: 'GET', url: `/v1/vms/${host.vmId}` });
  const refPins = await ref.inject({ method: 'GET', url: `/v1/vms/${host.vmId}/pins?limit=1000` });
  for (const via of vias) {
    const app = replicas[via] as FastifyInstance;
    // Reads answer 503 while the state is reloaded after a store failure: asked again meanwhile.
    let vm = await app.inject({ method: 'GET', url: `/v1/vms/${host.vmId}${fresh === '' ? '' : `?${fresh}`}` });
    let pins = await app.inject({ method: 'GET', url: `/v1/vms/${host.vmId}/pins?limit=1000${fresh === '' ? '' : `&${fresh}`}` });
    for (let i = 0; i < 50 && (vm.statusCode === 503 || pins.statusCode === 503); i++) {
      await sleep(100);
      vm = await app.inject({ method: 'GET', url: `/v1/vms/${host.vmId}${fresh === '' ? '' : `?${fresh}`}` });
      pins = await app.inject({ method: 'GET', url: `/v1/vms/${host.vmId}/pins?limit=1000${fresh === '' ? '' : `&${fresh}`}` });
    }
    if (vm.statusCode !== 200 || pins.statusCode !== 200 || refVm.statusCode !== 200 || refPins.statusCode !== 200) {
      host.state.push(`reference: GET on replica ${via} answered ${vm.statusCode}/${pins.statusCode}, on the reference ${refVm.statusCode}/${refPins.statusCode}`);
      continue;
    }
    const dv = firstDifference(vmState(JSON.parse(vm.body)), vmState(JSON.parse(refVm.body)));
    if (dv !== null) host.state.push(`reference: replica ${via}'s VM differs from the answered changes' (service vs reference): ${dv}`);
    const dp = firstDifference(JSON.parse(pins.body), JSON.parse(refPins.body));
    if (dp !== null) host.state.push(`reference: replica ${via}'s pinned ranges differ from the answered changes' (service vs reference): ${dp}`);
  }
  await ref.inject({ method: 'DELETE', url: `/v1/vms/${host.vmId}` });
}

// ---- generators ------------------------------------------------------------------------------------

export interface ModeSpec {
  readonly mode: PolicyMode;
  readonly onEnable: OnEnable;
}

/** Every policy mode (trap with each onEnable), as the models play them. */
export const MODES: readonly ModeSpec[] = [
  { mode: 'trap', onEnable: 'allow' },
  { mode: 'trap', onEnable: 'deny' },
  { mode: 'trap', onEnable: 'allow-needs-nosnoop' },
  { mode: 'virtualize-zero', onEnable: 'allow-needs-nosnoop' },
  { mode: 'pessimistic', onEnable: 'allow-needs-nosnoop' }
];

/** Initial bit states, weighted: mostly clear and readable, so that enables replay. */
export const DEV_STATES: readonly DevState[] = ['disabled', 'disabled', 'disabled', 'disabled', 'disabled', 'enabled', 'enabled', 'unknown', 'hardwired-zero'];

export interface ScenarioOptions {
  /** Initial bit states to draw from (default DEV_STATES). */
  readonly states?: readonly DevState[];
  /** Device kinds to draw from (default mostly NICs, some iGPUs and bad devices). */
  readonly kinds?: readonly DevKind[];
  /** The policy's exemptNeedsNoSnoop (default either). */
  readonly exempt?: boolean;
  /** Fewest ranges pinned before the callers start (default 1). */
  readonly minPrePins?: number;
  readonly maxRounds?: number;
  /** Weight of the operator's quirk-list changes (0: none). */
  readonly quirks?: number;
  /** Weight of DEVCTL writes (default 5). */
  readonly devctl?: number;
}

function weighted<T>(...pairs: [number, T][]): fc.Arbitrary<T> {
  return fc.oneof(...pairs.map(([weight, v]) => ({ weight, arbitrary: fc.constant(v) })));
}

export function action(callers: number, options: ScenarioOptions = {}): fc.Arbitrary<Action> {
  const caller = fc.nat(callers - 1);
  const doms = fc.option(fc.uniqueArray(fc.nat(3), { minLength: 1, maxLength: 2 }), { freq: 3, nil: null });
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ t: fc.constant('pin' as const), caller, pages: fc.integer({ min: 1, max: 3 }), doms }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('unpin' as const), caller, pick: fc.nat(7) }) },
    { weight: options.devctl ?? 5, arbitrary: fc.record({ t: fc.constant('devctl' as const), caller, dev: fc.nat(3), enable: weighted<boolean>([3, true], [1, false]) }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('move' as const), caller, dev: fc.nat(3), dom: fc.nat(3) }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('flush' as const), caller }) },
    { weight: 1, arbitrary: fc.constant({ t: 'list' as const }) },
    ...(options.quirks === undefined || options.quirks === 0 ? [] : [{ weight: options.quirks, arbitrary: fc.record({ t: fc.constant('quirks' as const), table: fc.constantFrom<0 | 1>(0, 1) }) }])
  );
}

/** One VM in `spec`'s mode: 2-3 non-coherent domains and maybe a coherent one, 2-4 PFs, 2-3 callers, rounds of 2-4 requests in flight. */
export function concurrentScenario(spec: ModeSpec, options: ScenarioOptions = {}): fc.Arbitrary<Scenario> {
  return fc
    .record({
      nonCoherent: fc.integer({ min: 2, max: 3 }),
      coherentToo: fc.boolean(),
      exempt: options.exempt === undefined ? fc.boolean() : fc.constant(options.exempt),
      quirks: options.quirks === 0 ? fc.constant<0 | 1>(0) : fc.constantFrom<0 | 1>(0, 1),
      devices: fc.array(
        fc.record({
          kind: options.kinds === undefined ? weighted<DevKind>([3, 'nic'], [1, 'igpu'], [1, 'bad']) : fc.constantFrom(...options.kinds),
          state: fc.constantFrom(...(options.states ?? DEV_STATES)),
          dom: fc.nat(3)
        }),
        { minLength: 2, maxLength: 4, size: 'max' }
      ),
      prePins: fc.array(fc.record({ pages: fc.integer({ min: 1, max: 3 }), doms: fc.option(fc.uniqueArray(fc.nat(3), { minLength: 1, maxLength: 2 }), { freq: 3, nil: null }) }), { minLength: options.minPrePins ?? 1, maxLength: Math.max(3, options.minPrePins ?? 1), size: 'max' }),
      callers: fc.integer({ min: 2, max: 3 })
    })
    .chain((c) =>
      // Lengths shrink to their minimum, so a counterexample keeps only the requests it needs.
      fc.array(fc.array(action(c.callers, options), { minLength: 1, maxLength: 4, size: 'max' }), { minLength: 1, maxLength: options.maxRounds ?? 10, size: 'max' }).map((rounds): Scenario => {
        const coherent = [...Array.from({ length: c.nonCoherent }, () => false), ...(c.coherentToo ? [true] : [])];
        return {
          config: { mode: spec.mode, onEnable: spec.onEnable, exempt: c.exempt, coherent, devices: c.devices, quirks: c.quirks, prePins: c.prePins },
          rounds
        };
      })
    );
}

/**
 * Where replays meet: policies that let the guests' enables through, devices whose bit is clear
 * (nothing exposed, so pins are not flushed), ranges pinned into several domains, and rounds
 * heavy in enables: two enables of one window replay overlapping ranges, flushes come late.
 */
export function replayStorm(): fc.Arbitrary<Scenario> {
  const states: DevState[] = ['disabled', 'disabled', 'disabled', 'disabled', 'hardwired-zero'];
  const common = { states, devctl: 12, quirks: 0, minPrePins: 2 } as const;
  return fc.oneof(
    { weight: 3, arbitrary: concurrentScenario({ mode: 'trap', onEnable: 'allow' }, { ...common, kinds: ['nic'] }) },
    { weight: 1, arbitrary: concurrentScenario({ mode: 'trap', onEnable: 'allow-needs-nosnoop' }, { ...common, kinds: ['igpu', 'igpu', 'nic'] }) },
    { weight: 1, arbitrary: concurrentScenario({ mode: 'virtualize-zero', onEnable: 'allow-needs-nosnoop' }, { ...common, kinds: ['igpu', 'igpu', 'nic'], exempt: true }) }
  );
}
