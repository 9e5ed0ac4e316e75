/**
 * One VM under the policy service, driven over HTTP (the in-process app, concurrent-wire.ts) by
 * several callers of its VMM with requests in flight at once, and the hardware doing what
 * hardware does (the player of test/model/player).
 *
 * The service runs with FLUSH_ACKS=required (the default) and a long flush window, so the
 * answers of a whole round (and usually of several rounds) share one batching window.
 *
 * The hardware (concurrent-hardware.ts) is the truth, whatever the service believes: host pages
 * zeroed through the cache until a flush covers them, real Enable No Snoop bits, devices reading
 * with No-Snoop every page they reach (a LEAK) and overwriting it under a clean line (a
 * CORRUPTION at release unless flushed after), and a quirk list true once its flushes are done.
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
import type { FastifyInstance } from 'fastify';
import { DEFAULT_POLICY, defaultQuirksFile, parseQuirkFile } from '../../src/domain/index.js';
import { createRuntime } from '../../src/service/runtime.js';
import { build } from '../helpers/app.js';
import type { CoherencyModel } from './coherency-model.js';
import { decidedAt, Dev, readAnswer, type Answer, type Gate, type Obligation, type Pin } from './concurrent-answers.js';
import { mapsInto, VmHardware } from './concurrent-hardware.js';
import { WireJobs } from './concurrent-jobs.js';
import { Obligations } from './concurrent-obligations.js';
import { IDS, QUIRK_TABLES, type Action, type Config, type Scenario } from './concurrent-scenarios.js';
import { allFlagged, checkState, type Expected } from './concurrent-state.js';
import { openJobs, pageHex, parseRanges, ServiceLink, showRanges, sleep, type AcceptedChange, type FaultStats, type LinkOptions, type Reply, type WireAnswer, type WireFlush } from './concurrent-wire.js';
import { INLINE_POOL } from './inline-pool.js';
import { DEVCTL_NOSNOOP_EN } from './player/pci-function.js';
import { covers, pageSet } from './player/ranges.js';

/** A long FLUSH_WINDOW_MS: the answers of a round (and usually of the whole run) share a batching window. */
export const WINDOW_MS = 150;

/** The in-process app with FLUSH_ACKS=required (the default) and a `windowMs` batching window. */
export async function concurrentApp(windowMs = WINDOW_MS): Promise<FastifyInstance> {
  return build({
    runtime: createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), pool: INLINE_POOL, windowMs, simThreads: 0 }),
    flushAckTimeoutMs: 5_000
  });
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

/** How the VMM reaches the service (concurrent-wire.ts), and what it tolerates (every field optional: the default is one app that never fails). */
export interface HostOptions extends LinkOptions {
  /** A careless VMM that makes changes once its own flush is performed, not waiting for `flush.after` (to show the model notices). */
  readonly ignoreAfter?: boolean;
  /** Whether setup puts the config's quirk list (default true); false: the caller put it already (several VMs on one service). */
  readonly quirksAtSetup?: boolean;
}

type Result = Reply & { readonly action: Action; readonly order: number; readonly pin?: Pin; readonly dev?: Dev; readonly via?: number };

export class ConcurrentHost {
  readonly model: CoherencyModel;
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
  readonly changes: readonly AcceptedChange[];
  readonly faults: FaultStats;

  readonly #link: ServiceLink;
  readonly #jobs: WireJobs;
  readonly #hw: VmHardware;
  readonly #quirksAtSetup: boolean;
  /** Host pages a 2xx answer's pin or replay flush covered: their ranges carry flushOnUnpin. */
  readonly #flagged = new Set<number>();
  readonly #config: Config;
  readonly #devs: Dev[];
  /** Pins the service accepted and no unpin of which was answered yet. */
  #pins: Pin[] = [];
  readonly #work: Obligations;
  #nextIova = 0;
  #round = 0;
  #order = 0;

  /** `ignoreAfter`: a careless VMM that makes changes once its own flush is performed, not waiting for `flush.after` (to show the model notices). See HostOptions for the rest. */
  constructor(app: FastifyInstance, vmId: string, config: Config, options: HostOptions = {}) {
    this.#link = new ServiceLink(app, vmId, options, { rules: this.rules, trace: this.trace });
    this.#jobs = new WireJobs(this.#link, { rules: this.rules, trace: this.trace });
    this.changes = this.#link.changes;
    this.faults = this.#link.faults;
    this.#quirksAtSetup = options.quirksAtSetup ?? true;
    this.vmId = vmId;
    this.#config = config;
    this.#devs = config.devices.map((spec, index) => new Dev(index, spec));
    this.#hw = new VmHardware(vmId, config, this.#devs, { leaks: this.leaks, corruptions: this.corruptions, trace: this.trace });
    this.model = this.#hw.memory.model;
    const pins = (): readonly Pin[] => this.#pins;
    this.#work = new Obligations({ link: this.#link, jobs: this.#jobs, hw: this.#hw, devs: this.#devs, pins, stats: this.stats, trace: this.trace, rules: this.rules, ignoreAfter: options.ignoreAfter ?? false });
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

  // ---- setup ----------------------------------------------------------------------------------

  async setup(): Promise<void> {
    const c = this.#config;
    const link = this.#link;
    const via = link.via(0);
    if (this.#quirksAtSetup) await link.ok('PUT', '/v1/quirks', { quirks: QUIRK_TABLES[c.quirks] }, via);
    await link.ok('PUT', this.#vmUrl, { arch: 'x86_64', policy: { mode: c.mode, onEnable: c.onEnable, exemptNeedsNoSnoop: c.exempt } }, via);
    for (let d = 0; d < c.coherent.length; d++) await link.ok('PUT', `${this.#vmUrl}/domains/d${d}`, { enforceCacheCoherency: c.coherent[d] === true }, via);
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
    if (this.#jobs.pending.length > 0) await this.#jobs.retryAcks();
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
    results.sort((x, y) => decidedAt(x, this.vmId) - decidedAt(y, this.vmId) || x.order - y.order);
    const before = this.answers.length;
    for (const r of results) await this.#process(r, round);
    if (this.answers.slice(before).filter((a) => a.jobId !== undefined).length >= 2) this.stats.sharedWindows++;
    await this.#work.apply();
    this.#sweep();
  }

  /** Sends an action's request (after what the host does first: zeroing pinned pages, performing a flush). */
  async #start(a: Action): Promise<Result | null> {
    const order = this.#order++;
    const link = this.#link;
    switch (a.t) {
      case 'pin': {
        // The host zeroes the pages it pins through the cache: dirty lines, another owner's data in DRAM.
        const hpa = this.#hw.memory.handOut(a.pages, this.vmId);
        const iova = this.#nextIova;
        this.#nextIova += a.pages + 1;
        const doms = a.doms === null ? null : [...new Set(a.doms.map((d) => this.#dom(d)))].sort();
        const pin: Pin = { iova, hpa, pages: a.pages, doms, mapped: false, unpinning: false, own: null, gate: null };
        const via = link.via(a.caller);
        const res = await link.call('POST', `${this.#vmUrl}/pins`, { iova: pageHex(iova), hpa: pageHex(hpa), length: pageHex(a.pages), ...(doms === null ? {} : { domains: doms.map((d) => `d${d}`) }) }, via);
        return { action: a, order, ...res, pin, via };
      }
      case 'unpin': {
        const mapped = this.#pins.filter((p) => p.mapped && !p.unpinning);
        const pin = mapped[a.pick % Math.max(1, mapped.length)];
        if (pin === undefined) return null;
        pin.unpinning = true;
        const via = link.via(a.caller);
        const res = await link.call('POST', `${this.#vmUrl}/unpins`, { iova: pageHex(pin.iova), length: pageHex(pin.pages) }, via);
        return { action: a, order, ...res, pin, via };
      }
      case 'devctl': {
        const dev = this.#dev(a.dev);
        if (dev.intendedDom === null) return null;
        const via = link.via(a.caller);
        const res = await link.call('POST', `${this.#vmUrl}/devices/${dev.bdf}/devctl`, { nosnoopEnable: a.enable }, via);
        return { action: a, order, ...res, dev, via };
      }
      case 'move': {
        const dev = this.#dev(a.dev);
        const dom = this.#dom(a.dom);
        // A report (same domain) says what the device reads now: only once the VMM's writes to it landed.
        if (dom === dev.intendedDom && dev.ops.length > 0) return null;
        // What the device reads once the writes the VMM owes it land (they land before the move).
        const nosnoop = dev.hardwired ? 'hardwired-zero' : dev.unreadable ? 'unknown' : dev.intendedBit === 1 ? 'enabled' : 'disabled';
        const via = link.via(a.caller);
        const res = await link.call('PUT', `${this.#vmUrl}/devices/${dev.bdf}`, { domainId: `d${dom}`, vendorId: IDS[dev.kind][0], deviceId: IDS[dev.kind][1], function: 'pf', nosnoop }, via);
        return { action: a, order, ...res, dev, via };
      }
      case 'flush': {
        const ob = this.#work.next(a.caller);
        if (ob === undefined) return null;
        await this.#work.perform(ob);
        return null;
      }
      case 'list':
        await this.#listOthers(false);
        return null;
      case 'quirks': {
        const via = link.anyVia();
        const res = await link.call('PUT', '/v1/quirks', { quirks: QUIRK_TABLES[a.table] }, via);
        return { action: a, order, ...res, via };
      }
    }
  }

  // ---- answers ---------------------------------------------------------------------------------

  #record(round: number, caller: number, what: string, body: WireAnswer): Answer {
    const { answer, line, breaks } = readAnswer(body, { index: this.answers.length, round, caller, what });
    this.answers.push(answer);
    this.stats.answers++;
    if (answer.after.length > 0) this.stats.withAfter++;
    if (answer.cause === 'replay') this.stats.replays++;
    this.trace.push(line);
    this.rules.push(...breaks);
    if (answer.jobId !== undefined && this.#jobs.answered(answer.jobId, caller, answer.ranges) > 0) {
      this.rules.push(`#${answer.index} ${what}: job ${answer.jobId} is shared with an earlier answer (an obligation is per answer)`);
    }
    this.#flag(body.flush);
    return answer;
  }

  /** A pin's or replay's flush sets flushOnUnpin on the ranges it covers. */
  #flag(f: WireFlush): void {
    if (!f.required || (f.cause !== 'pin' && f.cause !== 'replay')) return;
    for (const p of pageSet(parseRanges(f.ranges))) this.#flagged.add(p);
  }

  async #process(r: Result, round: number): Promise<void> {
    const a = r.action;
    const caller = 'caller' in a ? a.caller : -1;
    if (r.status >= 300) {
      this.trace.push(`  c${caller} ${a.t} refused ${r.status} ${JSON.stringify(r.body).slice(0, 160)}`);
      if (a.t === 'unpin' && r.pin !== undefined) r.pin.unpinning = false;
      if (this.#link.storeDown(r)) {
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
        pin.own = this.#work.oblige(answer, body, 'before-map', null);
        pin.gate = { own: pin.own, after: answer.after, answer: answer.index };
        this.#pins.push(pin);
        await this.#checkCoverage(answer, { own: pin.own, lets: [], pin, via: r.via });
        return;
      }
      case 'unpin': {
        const pin = r.pin as Pin;
        const answer = this.#record(round, caller, `unpin ${showRanges([{ hpa: pin.hpa, pages: pin.pages }])}`, body);
        // Unmapped from the IOMMU at once; the pages go back to the host once flushed.
        pin.mapped = false;
        this.#pins = this.#pins.filter((p) => p !== pin);
        const ob = this.#work.oblige(answer, body, 'after-unmap', pin);
        if (ob === null) this.#hw.release(pin, answer.index);
        return;
      }
      case 'devctl': {
        const dev = r.dev as Dev;
        const answer = this.#record(round, caller, `devctl ${dev.bdf} ${a.enable ? 'enable' : 'clear'}`, body);
        const own = this.#work.oblige(answer, body, 'before-map', null);
        const gate: Gate = { own, after: answer.after, answer: answer.index };
        if (answer.hardwareValue === undefined) this.rules.push(`#${answer.index}: a devctl answer without hardwareValue`);
        else this.#work.queueWrite(dev, answer.hardwareValue, gate, answer);
        this.#work.queueDevices(body, gate, answer);
        const lets = answer.hardwareValue !== undefined && (answer.hardwareValue & DEVCTL_NOSNOOP_EN) !== 0 ? [dev] : [];
        await this.#checkCoverage(answer, { own, lets, pin: null, via: r.via });
        return;
      }
      case 'move': {
        const dev = r.dev as Dev;
        const dom = this.#dom(a.dom);
        const from = dev.intendedDom;
        const answer = this.#record(round, caller, `${from === null ? 'attach' : from === dom ? 'report' : 'move'} ${dev.bdf} ${from === null ? '' : `d${from} -> `}d${dom}`, body);
        const own = this.#work.oblige(answer, body, 'before-map', null);
        const gate: Gate = { own, after: answer.after, answer: answer.index };
        if (from !== dom) {
          // Detached from its old domain at once; attached to the new one once the answer allows it.
          if (dev.dom !== null) this.trace.push(`  hw: ${dev.bdf} detached from d${dev.dom}`);
          dev.dom = null;
          // A later move supersedes one still waiting: the device goes where the service now
          // holds it, never through the domain it was answered out of.
          const superseded = dev.ops.filter((op) => op.kind === 'attach');
          if (superseded.length > 0) this.trace.push(`  vmm: ${dev.bdf} will not be attached to ${superseded.map((op) => (op.kind === 'attach' ? `d${op.dom}` : '')).join(', ')} (superseded)`);
          dev.ops = dev.ops.filter((op) => op.kind !== 'attach');
        }
        if (answer.hardwareValue !== undefined) this.#work.queueWrite(dev, answer.hardwareValue, gate, answer);
        if (from !== dom) dev.ops.push({ kind: 'attach', dom, gate });
        dev.intendedDom = dom;
        this.#work.queueDevices(body, gate, answer);
        await this.#checkCoverage(answer, { own, lets: from !== dom && this.#intendedNoSnoop(dev) ? [dev] : [], pin: null, via: r.via });
        return;
      }
      case 'quirks':
        return this.#quirksPut(r, a.table);
      case 'flush':
      case 'list':
        return;
    }
  }

  /** An operator's quirk list was put: a flag taken away is gone at once; one added becomes true once the flushes it needs are acknowledged. */
  async #quirksPut(r: Result, table: 0 | 1): Promise<void> {
    const entry = ((r.body as { vms?: (WireAnswer & { vmId: string })[] }).vms ?? []).find((v) => v.vmId === this.vmId);
    this.trace.push(`  operator: quirk table ${table}${entry?.flush.required === true ? `, replay ${showRanges(parseRanges(entry.flush.ranges))} job ${entry.flush.jobId?.slice(0, 11)}` : ''}`);
    if (entry !== undefined) this.#flag(entry.flush);
    if (table === 0) {
      this.#hw.takeFlagAway();
      return;
    }
    if (this.#hw.ignoresTrue || this.#hw.adding) return;
    // Nobody could know before the replays it causes, and every flush outstanding when it was put
    // (the service's list: an earlier list's replay may cover what this one does not replay
    // again), are performed.
    await this.#link.fresh(r.via ?? 0);
    const listed = await this.#link.listJobs(r.via ?? 0);
    // Unreadable (the store down): the list is true no sooner than a later listing's outstanding jobs are acknowledged.
    const unlisted = listed === null && this.#link.storeFaults;
    const jobs = [...(entry?.flush.jobId === undefined ? [] : [entry.flush.jobId]), ...(unlisted ? [] : openJobs(listed?.items ?? []))];
    this.#hw.addFlagAfter(jobs.filter((id) => !this.#jobs.book.isDone(id)), unlisted);
  }

  /** The listing VMM: every job of its VM it was not answered, pending (or, at the end, any not acknowledged), performed and acknowledged. */
  async #listOthers(all: boolean): Promise<number> {
    const link = this.#link;
    const jobs = this.#jobs;
    const via = link.anyVia();
    await link.fresh(via);
    const body = await link.listJobs(via);
    let n = 0;
    // The jobs outstanding now: those outstanding when a list was put and acknowledged since were performed.
    if (body !== null) this.#hw.listed(openJobs(body.items), (id) => jobs.book.isDone(id));
    for (const job of body?.items ?? []) {
      if (jobs.isOwn(job.id) || jobs.book.isDone(job.id) || job.acknowledgedAt !== null) continue;
      if (job.state !== 'pending' && !(all && (job.state === 'queued' || job.state === 'running'))) continue;
      const ranges = await link.fetchRanges(job.id, via);
      jobs.book.tell(job.id, -1, ranges, true);
      this.#hw.memory.flush(ranges);
      this.trace.push(`  vmm: performs someone else's job ${job.id.slice(0, 11)} ${showRanges(ranges)}`);
      this.stats.othersJobs++;
      await jobs.ack(job.id);
      n++;
    }
    return n;
  }

  /** Will put No-Snoop on the wire once every answer the VMM holds took effect (and a quirk list in flight is true). */
  #intendedNoSnoop(dev: Dev): boolean {
    return (dev.kind === 'bad' && (this.#hw.ignoresTrue || this.#hw.adding)) || dev.unreadable || (!dev.hardwired && dev.intendedBit === 1);
  }

  /** After every round (and every settling pass): what the hardware does with what is mapped. */
  #sweep(): void {
    this.stats.probes += this.#hw.sweep(this.#pins, this.#round);
  }

  // ---- the per-answer check ------------------------------------------------------------------------

  /**
   * The union of the answer's own flush and its outstanding `after` jobs covers every unflushed
   * page that a device it lets emit No-Snoop (`lets`; for a pin, every device that will emit it
   * in the pin's domains) could reach once it takes effect.
   */
  async #checkCoverage(answer: Answer, of: { own: Obligation | null; lets: readonly Dev[]; pin: Pin | null; via: number | undefined }): Promise<void> {
    const { own, lets, pin, via = 0 } = of;
    const reach = new Map<number, string>();
    const unflushed = (p: number): boolean => this.model.dram(p).owner !== this.vmId;
    for (const dev of lets) {
      const dom = dev.intendedDom;
      if (dom === null || this.#hw.coherent(dom)) continue;
      for (const q of this.#pins) {
        if (!mapsInto(q, dom)) continue;
        for (let p = q.hpa; p < q.hpa + q.pages; p++) {
          // A range not mapped yet whose own flush is still to come is flushed before it is mapped.
          if (!q.mapped && q.own !== null && !q.own.performed && covers(q.own.ranges, p)) continue;
          if (unflushed(p) && !reach.has(p)) reach.set(p, `${dev.bdf} in d${dom}`);
        }
      }
    }
    if (pin !== null) {
      const doms = pin.doms ?? this.#config.coherent.map((_, d) => d);
      const devs = this.#devs.filter((d) => d.intendedDom !== null && doms.includes(d.intendedDom) && !this.#hw.coherent(d.intendedDom) && this.#intendedNoSnoop(d));
      if (devs.length > 0) for (let p = pin.hpa; p < pin.hpa + pin.pages; p++) if (unflushed(p)) reach.set(p, devs.map((d) => `${d.bdf} in d${d.intendedDom}`).join(', '));
    }
    if (reach.size === 0) return;
    const ownRanges = own?.ranges ?? [];
    const { gaps, coveredByAfter } = await this.#jobs.uncovered(answer, { own: ownRanges, reach, via });
    this.stats.coveredByAfter += coveredByAfter;
    for (const { page, who, holder } of gaps) {
      this.coverage.push(
        `#${answer.index} (c${answer.caller} ${answer.what}, rev ${answer.revision}) lets ${who} reach unflushed page ${pageHex(page)}: own flush ${showRanges(ownRanges)}, after [${answer.after.map((id) => id.slice(0, 11)).join(' ')}]` +
          (holder === undefined ? ', and no outstanding job covers it' : `, while job ${holder.slice(0, 11)} that covers it is outstanding and not named`)
      );
    }
  }

  // ---- the state, as the answers make it --------------------------------------------------------------

  /** The highest revision of the VM's answers (0: none). */
  get maxRevision(): number {
    return this.#link.maxRevision;
  }

  /** Acknowledgements still to be sent again. */
  get pendingAcks(): number {
    return this.#jobs.pending.length;
  }

  /**
   * Compares the service's state, as replica `via` holds it at least as fresh as the VM's last
   * answer, with what the answers the VMM got 2xx for make it (concurrent-state.ts). Call it
   * between rounds (nothing in flight). Differences go to `state`; false when the replica
   * answered 503 (store down).
   *
   * With replicas, a quirk list that decided nothing for the VM carries no revision for it, so a
   * read at the VM's last revision may show the list before it: a device counting as able to
   * no-snoop only because of the quirk list is checked only given `minRevision` (a revision at
   * least that of the last quirk list put, from the audit trail).
   */
  async checkState(via = 0, label = 'state', minRevision?: number): Promise<boolean> {
    const quirksFresh = this.#link.replicas === 1 || minRevision !== undefined;
    const expected: Expected = {
      pins: this.#pins.map((p) => ({ iova: p.iova, hpa: p.hpa, pages: p.pages, flagged: allFlagged(p, this.#flagged) })),
      devices: this.#devs.map((d) => ({
        bdf: d.bdf,
        dom: d.intendedDom,
        emits: quirksFresh ? this.#intendedNoSnoop(d) : d.unreadable || (!d.hardwired && d.intendedBit === 1),
        bit: d.intendedBit,
        unknown: d.unreadable
      }))
    };
    return checkState(this.#link, this.vmId, expected, this.state, { via, label, minRevision });
  }

  /** The service restarted (the same store): the VMM talks to `apps` from now on (as many as before). */
  retarget(apps: readonly FastifyInstance[]): void {
    this.#link.retarget(apps);
    this.trace.push('the service restarts on its store');
  }

  /** "An acknowledgement answered 200 is kept": every job the VMM got a 2xx acknowledgement for is acknowledged (or done) on replica `via`. */
  async checkAcks(via: number, label: string): Promise<void> {
    await this.#jobs.checkKept(via, label, this.state);
  }

  /**
   * No job shared or grown, as replica `via` tells it: each job of the VMM's answers lists
   * exactly the ranges its answer listed. The replica first catches up to the VM's last answer.
   */
  async checkJobs(via: number): Promise<void> {
    if (this.maxRevision > 0) await this.#link.call('GET', `${this.#vmUrl}?minRevision=${this.maxRevision}`, undefined, via);
    await this.#jobs.checkAsAnswered(this.answers, via);
  }

  // ---- the end ------------------------------------------------------------------------------------

  /** Every caller performs every flush it owes, the VMM takes up everyone else's, every change allowed is made. */
  async settle(all = false): Promise<void> {
    for (let pass = 0; pass < 8; pass++) {
      // Acknowledgements the store could not keep, sent again until it keeps them (it recovers by itself).
      for (let i = 0; i < 25 && this.#jobs.pending.length > 0; i++) {
        if (i > 0) await sleep(200);
        await this.#jobs.retryAcks();
      }
      for (let ob = this.#work.next(); ob !== undefined; ob = this.#work.next()) await this.#work.perform(ob);
      const others = await this.#listOthers(all);
      await this.#work.apply();
      this.#sweep();
      const waiting = this.#pins.some((p) => !p.mapped) || this.#devs.some((d) => d.ops.length > 0);
      if (!waiting && others === 0 && !this.#hw.adding && this.#jobs.pending.length === 0) return;
    }
    if (this.#jobs.pending.length > 0) this.rules.push(`acknowledgements of ${this.#jobs.pending.join(', ')} still answered 503 at the end`);
    const stuck = [...this.#pins.filter((p) => !p.mapped).map((p) => `pin ${pageHex(p.hpa)} (#${p.gate?.answer})`), ...this.#devs.flatMap((d) => d.ops.map((op) => `${op.kind} of ${d.bdf} (#${op.gate.answer})`))];
    if (stuck.length > 0) this.rules.push(`changes never allowed: every flush was performed and acknowledged, yet ${stuck.join(', ')} still wait(s)`);
  }

  async finish(): Promise<void> {
    this.trace.push('finish: every flush performed, every change made');
    await this.settle(true);
    // Teardown: unmap everything, flush what the answer lists, then the pages go back to the host.
    const link = this.#link;
    let res = await link.call('DELETE', this.#vmUrl, undefined, link.via(0));
    for (let i = 0; i < 50 && link.storeDown(res); i++) {
      await sleep(100);
      res = await link.call('DELETE', this.#vmUrl, undefined, link.via(0));
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
    const ob = this.#work.oblige(answer, body, 'after-unmap', null);
    if (ob !== null) await this.#work.perform(ob);
    for (const pin of unmapped) this.#hw.release(pin, answer.index);
    // Per answer, never grown: each job's ranges are exactly what its answer listed.
    await this.#jobs.checkAsAnswered(this.answers, null);
  }
}
