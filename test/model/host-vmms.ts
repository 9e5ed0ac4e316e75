/**
 * The VMMs of the host model (host-simulation.ts), one per VM, each acting on the answers meant
 * for its own VM, with the player's flush log and job book (test/model/player).
 *
 * - A VMM flushes what a decision demands, when it says (before-map: before the change takes
 *   effect; after-unmap: after the IOMMU unmap, before the pages go back to the host), and writes
 *   each hardwareValue to its own devices only, late (queued, applied at a later step) unless
 *   told otherwise. Before it reports a device again (a device PUT: attach, move or
 *   confirmation) it finishes its queued writes to that device, so what it reports is what the
 *   hardware reads after every write it was told to do. The write that ends an attach lets the
 *   device master the bus.
 * - With `protocol` the VMMs follow the VMM protocol (SPEC, flush jobs): a flush is a job the VMM
 *   performs and then acknowledges, at a later step and in any order (a `vmm` event picks one);
 *   a change made by someone else (an admin's policy change, an operator's quirk list) reaches
 *   the VMM only on its VM's event stream; a device write that sets Enable No Snoop waits for
 *   the write's own flush and for every job its answer lists in `flush.after`, while other
 *   writes go ahead in any order; after a restart the stream says `reset` and the VMM re-reads
 *   its outstanding jobs. `ignore-after` plays a VMM that does not wait for `flush.after`, to
 *   show the model notices.
 */
import type { Decision, NoSnoopState, Quirk, VmId } from '../../src/domain/index.js';
import type { Applied, PolicyService } from '../../src/service/policy-service.js';
import type { VmEvent } from '../../src/service/vm-events.js';
import type { HostFn, HostHardware, HostPin } from './host-hardware.js';
import { VM_IDS } from './host-topology.js';
import { FlushLog } from './player/flush-log.js';
import { JobBook } from './player/job-book.js';
import { DEVCTL_NOSNOOP_EN } from './player/pci-function.js';
import { pick, type Range } from './player/ranges.js';

export interface HostOptions {
  /** Index of the demanded flush to skip, to show the model notices. */
  readonly drop?: number;
  /** 'late' (default): hardware writes wait in the VMM's queue for a later step; 'immediate': done at once. */
  readonly writes?: 'late' | 'immediate';
  /** A lying VMM: it reports a clear as done (device PUT, disabled) before writing it. */
  readonly earlyConfirm?: boolean;
  /** The VMM protocol (see the top of this file); 'ignore-after': a VMM that does not wait for `flush.after`. */
  readonly protocol?: 'honour' | 'ignore-after';
}

/** What the VMMs count. */
export interface VmmStats {
  lateWrites: number;
  /** Protocol: decisions the VMM heard of only on its event stream (someone else's change). */
  heard: number;
  /** Protocol: flush jobs performed at a later step than their answer. */
  lateFlushes: number;
  /** Protocol: device writes that had to wait for a job of `flush.after`. */
  afterWaits: number;
  /** Protocol: streams that said `reset` (after a restart), so the VMM re-read its outstanding jobs. */
  rereads: number;
}

/**
 * The parts of a decision a VMM acts on, typed here so this model reads fields the core may add
 * (`flush.when`, `devices`) whatever its Decision type says today.
 */
interface VmmDecision {
  readonly flush: {
    readonly required: boolean;
    readonly ranges: readonly Range[];
    readonly cause: string | null;
    readonly when?: 'before-map' | 'after-unmap' | null;
  };
  readonly devctl?: { readonly decision: string; readonly hardwareValue: number; readonly guestValue: number };
  readonly devices?: readonly { readonly bdf: string; readonly decision: string; readonly hardwareValue: number; readonly guestValue: number }[];
}

function whenOf(flush: VmmDecision['flush']): 'before-map' | 'after-unmap' | null {
  if (!flush.required) return null;
  if (flush.when !== undefined && flush.when !== null) return flush.when;
  return flush.cause === 'pin' || flush.cause === 'replay' ? 'before-map' : 'after-unmap';
}

/** Ranges of a planned job ([hpa page, pages] pairs). */
function rangesOf(pairs: Float64Array | null): Range[] {
  const out: Range[] = [];
  for (let i = 0; pairs !== null && i < pairs.length; i += 2) out.push({ hpa: pairs[i] as number, pages: pairs[i + 1] as number });
  return out;
}

interface PendingWrite {
  readonly fn: HostFn;
  /** The VM whose VMM owes the write. */
  readonly vm: number;
  readonly value: number;
  /** The write that ends the bus-mastering-off window after a device is put into a domain. */
  readonly attach: boolean;
  /** Flush jobs the VMM must have performed first (the protocol): the write's own, and `flush.after`. */
  readonly needs: readonly string[];
}

/** Answers to act on, each for the VMM of its VM (index into VM_IDS). */
export type Answers = readonly (readonly [number, Decision])[];

export interface ActOptions {
  /** The change itself, made once the before-map flushes are done; returns the pins it unmapped. */
  readonly change?: () => readonly HostPin[];
  /** With the protocol: the VMM's own answer (its flush is a job to perform and acknowledge). */
  readonly own?: Applied;
  /** A DEVCTL write, whose change is the bit reaching the hardware: nothing is performed now. */
  readonly defer?: boolean;
}

export interface VmmsContext {
  readonly hardware: HostHardware;
  readonly options: HostOptions;
  readonly stats: VmmStats;
  /** Where broken rules go. */
  readonly rules: string[];
  /** The service as it runs now (it may have restarted). */
  readonly service: () => PolicyService;
}

export class HostVmms {
  readonly log: FlushLog;
  readonly protocol: 'off' | 'honour' | 'ignore-after';
  readonly #hw: HostHardware;
  readonly #stats: VmmStats;
  readonly #rules: string[];
  readonly #service: () => PolicyService;
  readonly #writes: 'late' | 'immediate';
  readonly #earlyConfirm: boolean;
  #queue: PendingWrite[] = [];
  /** Devices a lying VMM is about to report clear. */
  #lies: HostFn[] = [];
  #lying = false;
  /** Protocol: the jobs the VMMs were told of and have not performed, with the ranges they were told. */
  readonly #jobs = new JobBook();
  /** Protocol: each VMM's event stream: the last event id, what it has not handled, how to stop it. */
  readonly #cursor: (string | undefined)[] = VM_IDS.map(() => undefined);
  #inbox: [number, VmEvent][] = [];
  #unsubscribe: (() => void)[] = [];

  constructor(context: VmmsContext) {
    this.#hw = context.hardware;
    this.#stats = context.stats;
    this.#rules = context.rules;
    this.#service = context.service;
    this.log = new FlushLog(this.#hw.memory, context.options.drop ?? -1);
    this.protocol = context.options.protocol ?? 'off';
    this.#writes = context.options.writes ?? 'late';
    this.#earlyConfirm = context.options.earlyConfirm ?? false;
  }

  /**
   * Carries out answers, each for the VMM of its VM: the before-map flushes, then the change
   * itself, then the after-unmap flushes, then the pages go back to the host, then the device
   * writes the answers ask of each VMM are queued.
   *
   * With the protocol, `own` is the VMM's own answer: its flush is a job the VMM performs and
   * acknowledges, and an honouring VMM first performs the jobs of `flush.after`. With `defer`
   * nothing is performed now: the returned jobs are what the device writes wait for.
   */
  async act(answers: Answers, how: ActOptions = {}): Promise<string[]> {
    const { own, defer = false } = how;
    const decisions = answers.map(([vm, d]) => [vm, d as VmmDecision] as const);
    let needs: string[] = [];
    const protocol = this.protocol !== 'off' && own !== undefined;
    const jobId = protocol ? own.jobId : undefined;
    for (const [, d] of decisions) if (jobId === undefined && whenOf(d.flush) === 'before-map') this.#flush(d.flush.ranges);
    if (protocol) {
      const [vm, d] = decisions[0] as (typeof decisions)[number];
      needs = this.#tell(vm, jobId, d.flush, own.after);
      if (!defer) for (const id of needs) await this.#performJob(id);
    }
    const unmapped = how.change?.() ?? [];
    for (const [, d] of decisions) {
      if (whenOf(d.flush) !== 'after-unmap') continue;
      if (jobId === undefined) this.#flush(d.flush.ranges);
      else await this.#performJob(jobId);
    }
    for (const pin of unmapped) this.#hw.memory.release(pin);
    for (const [vm, d] of decisions) this.#queueWrites(vm, d, needs);
    return needs;
  }

  #flush(ranges: readonly Range[]): void {
    this.log.perform(ranges);
  }

  // ---- device writes ---------------------------------------------------------------------------

  /** Queues the device writes a decision asks of the VMM of `vm`, each waiting for `needs`. */
  #queueWrites(vm: number, d: VmmDecision, needs: readonly string[]): void {
    for (const w of d.devices ?? []) {
      const f = this.#hw.byBdf(w.bdf);
      // A VMM cannot write another VM's device: an answer that asks it to misplaces the device.
      if (f === undefined || f.vm !== vm) this.#rules.push(`an answer asks the VMM of ${VM_IDS[vm]} to write ${w.bdf}, which is not in that VM`);
      else this.queueWrite(f, vm, { value: w.hardwareValue, needs });
    }
  }

  /** The VMM of `vm` owes `f` a DEVCTL write of `value`, after the jobs of `needs` (`attach`: the write that ends an attach). */
  queueWrite(f: HostFn, vm: number, write: { value: number; attach?: boolean; needs?: readonly string[] }): void {
    const { value, attach = false, needs = [] } = write;
    if ((value & DEVCTL_NOSNOOP_EN) !== 0 && f.readBack() === 'hardwired-zero') {
      this.#rules.push(`hardwareValue 0x${value.toString(16)} sets bit 11 on ${f.bdf}, which is hardwired-zero`);
    }
    const w: PendingWrite = { fn: f, vm, value, attach, needs };
    this.#queue.push(w);
    if (this.#writes === 'immediate' && this.#ready(w)) {
      this.#perform(w);
      return;
    }
    const lie = this.#earlyConfirm && !this.#lying && !attach && (value & DEVCTL_NOSNOOP_EN) === 0;
    if (lie && f.fn === 'pf' && !f.unreadable && !f.hardwired && f.bit === 1) this.#lies.push(f);
  }

  /** Whether every job a queued write waits for is done. */
  #ready(w: PendingWrite): boolean {
    return w.needs.every((id) => this.#jobs.isDone(id));
  }

  /** The VMM writes DEVCTL (player/pci-function.ts); the write that ends an attach lets the device master the bus. */
  #perform(w: PendingWrite): void {
    this.#queue = this.#queue.filter((x) => x !== w);
    const f = w.fn;
    if (f.vm !== w.vm) return;
    if (this.#writes === 'late') this.#stats.lateWrites++;
    f.write(w.value);
    if (w.attach && f.domain !== null && !this.#queue.some((x) => x.fn === f && x.attach)) f.live = true;
  }

  /** A VMM performs the oldest write it owes one device (`n` picks it; a device whose next write waits for a flush is skipped). */
  writeOne(n: number): void {
    const owing = [...new Set(this.#queue.map((w) => w.fn))].filter((f) => this.#ready(this.#queue.find((x) => x.fn === f) as PendingWrite));
    const f = owing[n % Math.max(1, owing.length)];
    const w = this.#queue.find((x) => x.fn === f);
    if (w !== undefined) this.#perform(w);
  }

  /** The VMM finishes every write it owes the device, oldest first (performing first the jobs each waits for). */
  async drain(f: HostFn): Promise<void> {
    for (let w = this.#queue.find((x) => x.fn === f); w !== undefined; w = this.#queue.find((x) => x.fn === f)) {
      for (const id of w.needs) await this.#performJob(id);
      this.#perform(w);
    }
  }

  /** The VMM closed the device: what it still owed the device, it will never write. */
  closed(f: HostFn): void {
    this.#queue = this.#queue.filter((w) => w.fn !== f);
  }

  /** A lying VMM reports each clear it was told to write as done (`report`: a device PUT saying `disabled`), before writing it. */
  async tellLies(report: (f: HostFn, vm: number, lie: NoSnoopState) => Promise<void>): Promise<void> {
    while (this.#lies.length > 0) {
      const f = this.#lies.shift() as HostFn;
      if (f.vm === null) continue;
      this.#lying = true;
      try {
        await report(f, f.vm, 'disabled');
      } finally {
        this.#lying = false;
      }
    }
  }

  // ---- the VMM protocol: jobs performed and acknowledged, streams followed -------------------------

  /**
   * The VMM of `vm` is told of job `jobId` carrying `flush`; returns what must be done before the
   * decision's change takes effect: the job itself when it flushes before the change, and the jobs
   * of `flush.after` (an honouring VMM only).
   */
  #tell(vm: number, jobId: string | undefined, flush: VmmDecision['flush'], after: readonly string[] = []): string[] {
    const honoured = this.protocol === 'honour' ? after.filter((id) => !this.#jobs.isDone(id)) : [];
    if (honoured.length > 0) this.#stats.afterWaits++;
    if (jobId === undefined) return honoured;
    this.#jobs.tell(jobId, vm, flush.ranges);
    return [...(whenOf(flush) === 'before-map' ? [jobId] : []), ...honoured];
  }

  /** Performs job `id` (flushes what the VMM was told, or reads its ranges) and acknowledges it. */
  async #performJob(id: string): Promise<void> {
    if (this.#jobs.isDone(id)) return;
    const service = this.#service();
    let told = this.#jobs.told(id);
    if (told === undefined) {
      // Named in `flush.after` before the VMM heard of it: it reads the job's ranges (GET /v1/flush-jobs/{id}/ranges).
      const job = await service.settledFlushJob(id);
      if (job === undefined) {
        this.#rules.push(`flush.after names job ${id}, which the service does not know`);
        this.#jobs.done(id);
        return;
      }
      told = { owner: VM_IDS.indexOf(job.vmId), ranges: rangesOf(job.ranges) };
    }
    this.#flush(told.ranges);
    const acked = await service.acknowledgeFlushJob(id, {});
    if (acked === undefined) this.#rules.push(`job ${id} of ${VM_IDS[told.owner]} was told to its VMM, then unknown to the service`);
    this.#jobs.done(id);
    this.#settleQuirks();
  }

  /** A `vmm` event: a VMM performs one of the jobs it was told of (`n` picks it), at a later step than its answer. */
  async performOne(n: number): Promise<void> {
    const id = pick(this.#jobs.outstanding(), n);
    if (id === undefined) return;
    this.#stats.lateFlushes++;
    await this.#performJob(id);
  }

  /** Each VMM follows its VM's event stream from the last event it saw. */
  follow(): void {
    for (const stop of this.#unsubscribe) stop();
    const events = this.#service().events;
    this.#unsubscribe = VM_IDS.map((id, vm) =>
      events.subscribe(id, this.#cursor[vm], (e) => {
        this.#cursor[vm] = e.id;
        this.#inbox.push([vm, e]);
      })
    );
  }

  /** Handles what the VMMs' streams brought: decisions made by someone else, and resets. */
  async hear(): Promise<void> {
    while (this.#inbox.length > 0) {
      const [vm, e] = this.#inbox.shift() as [number, VmEvent];
      if (e.type === 'reset') {
        await this.#reread(vm);
        continue;
      }
      if (e.type === 'deleted') {
        // The VM is gone, and its VMM with it: its jobs are moot.
        this.#jobs.moot(vm);
        this.#settleQuirks();
        continue;
      }
      if ((e.type !== 'decision' && e.type !== 'policy') || e.actor === `vmm-${vm}`) continue;
      this.#stats.heard++;
      const d = e.decision as VmmDecision;
      const after = 'after' in e ? e.after : undefined;
      const needs = this.#tell(vm, e.jobId, d.flush, after);
      if (e.jobId === undefined && whenOf(d.flush) !== null) this.#flush(d.flush.ranges);
      this.#queueWrites(vm, d, needs);
    }
  }

  /** After a `reset` the VMM re-reads its VM's outstanding jobs (GET /v1/vms/{id}/flush-jobs) and their ranges. */
  async #reread(vm: number): Promise<void> {
    this.#stats.rereads++;
    const service = this.#service();
    for (const job of service.flushJobs(VM_IDS[vm] as VmId, undefined, 100_000)) {
      if (job.state === 'acknowledged' || job.state === 'done' || job.state === 'failed' || (job.acknowledgedAt ?? null) !== null) continue;
      const planned = await service.settledFlushJob(job.id);
      this.#jobs.tell(job.id, vm, rangesOf(planned?.ranges ?? null), true);
    }
  }

  /**
   * An operator's quirk list: true about the devices once the replays it causes (`replays`), and
   * the jobs outstanding when it was put, are performed (pages the service did not know to be
   * exposed are in those replays, or in jobs told earlier and not performed yet).
   */
  putQuirks(quirks: readonly Quirk[], replays: readonly string[]): void {
    this.#hw.putQuirks(quirks, [...replays, ...this.#jobs.outstanding()]);
    this.#settleQuirks();
  }

  #settleQuirks(): void {
    this.#hw.settleQuirks((id) => this.#jobs.isDone(id));
  }

  /** Every VMM catches up: it performs every job it was told of, then every write it owes. */
  async catchUp(): Promise<void> {
    await this.hear();
    for (const id of this.#jobs.outstanding()) await this.#performJob(id);
    for (const f of this.#hw.fns) await this.drain(f);
  }
}
