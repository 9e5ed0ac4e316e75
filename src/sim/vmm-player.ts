/**
 * The simulated VMM: it drives the trace's commands through the decision core, performs every
 * flush a decision demands, writes every `hardwareValue` to the hardware and reports the bit it
 * reads back.
 *
 * It follows the VMM protocol and acts out of order where the protocol lets it: a replay whose
 * change is a guest's DEVCTL write is performed later (two events later or after, one per event,
 * newest first), and a write that sets Enable No Snoop waits for its own replay and for every
 * replay the answer's `flush.after` would list (waitsForReplays, as the service decides it);
 * writes to one device stay in order; any other change waits for the replays it depends on before
 * it takes effect. A player that does not honour `flush.after` plays a VMM that does not wait.
 */
import {
  applyCommand,
  attrMmio,
  DomainError,
  flushPairs,
  waitsForReplays,
  type CoherencyState,
  type Command,
  type CommandResult,
  type Decision,
  type PciAddress,
  type PinInput,
  type PolicyMode,
  type RangeInput,
  type VmId
} from '../domain/index.js';
import type { Adversary } from './adversary.js';
import { attachedDevice, truthful, type Hardware } from './hardware.js';
import type { ReplayReport } from './replay-report.js';
import type { Run, TraceEvent } from './trace.js';
import { VmmBacklog } from './vmm-backlog.js';

/** Ranges per pin or unpin command: the API's batch limit. */
const BATCH = 10_000;
/** Events after which the VMM performs a replay it was answered for a DEVCTL write, at the earliest. */
const LATE_EVENTS = 2;

export interface VmmPlayerOptions {
  readonly state: CoherencyState;
  /** The policy mode every VM is replayed under. */
  readonly mode: PolicyMode;
  readonly report: ReplayReport;
  readonly hardware: Hardware;
  readonly adversary: Adversary;
  /** Skip the n-th demanded flush (0-based), to show that the model notices; -1: none. */
  readonly dropFlush: number;
  /** Whether the VMM waits for the replays an answer's `flush.after` lists. */
  readonly honoursAfter: boolean;
}

/** A command's result, with the replays its DEVCTL writes wait for. */
type Answer = CommandResult & { needs?: readonly number[] };

export class VmmPlayer {
  readonly #state: CoherencyState;
  readonly #mode: PolicyMode;
  readonly #report: ReplayReport;
  readonly #hardware: Hardware;
  readonly #adversary: Adversary;
  readonly #dropFlush: number;
  readonly #honoursAfter: boolean;
  readonly #backlog: VmmBacklog;
  #now = 0;

  constructor(options: VmmPlayerOptions) {
    this.#state = options.state;
    this.#mode = options.mode;
    this.#report = options.report;
    this.#hardware = options.hardware;
    this.#adversary = options.adversary;
    this.#dropFlush = options.dropFlush;
    this.#honoursAfter = options.honoursAfter;
    this.#backlog = new VmmBacklog({
      flush: (late) => this.#flush(late.id, late.flush),
      write: (w) => {
        this.#write(w.vm, w.bdf, w.value);
        this.#adversary.exposureChanged(w.vm);
      }
    });
  }

  run(events: readonly TraceEvent[]): void {
    for (const e of events) {
      this.#backlog.performDue(this.#report.nextEvent());
      this.#step(e);
    }
    this.#backlog.drain();
  }

  #step(e: TraceEvent): void {
    switch (e.t) {
      case 'vm':
        this.#command({ type: 'put-vm', vmId: e.vm, arch: e.arch, policy: { ...e.policy, mode: this.#mode } });
        return;
      case 'delete-vm':
        this.#releasing(e.vm, () => this.#command({ type: 'delete-vm', vmId: e.vm }));
        this.#adversary.exposureChanged(e.vm);
        return;
      case 'domain':
        this.#command({ type: 'put-domain', vmId: e.vm, domainId: e.domain, enforceCacheCoherency: e.coherent });
        this.#adversary.exposureChanged(e.vm);
        return;
      case 'delete-domain':
        this.#releasing(e.vm, () => this.#command({ type: 'delete-domain', vmId: e.vm, domainId: e.domain }));
        this.#adversary.exposureChanged(e.vm);
        return;
      case 'device':
        this.#attach(e);
        this.#adversary.exposureChanged(e.vm);
        return;
      case 'delete-device':
        if (this.#command({ type: 'delete-device', vmId: e.vm, bdf: e.bdf }) !== undefined) this.#hardware.unplug(e.vm, e.bdf);
        this.#adversary.exposureChanged(e.vm);
        return;
      case 'reset':
        this.#reset(e.vm, e.bdf, e.restoresConfig);
        this.#adversary.exposureChanged(e.vm);
        return;
      case 'devctl': {
        const result = this.#command({ type: 'devctl', vmId: e.vm, bdf: e.bdf, write: { nosnoopEnable: e.nosnoopEnable } });
        const outcome = result?.decision.devctl;
        if (outcome !== undefined) {
          this.#report.devctl(outcome.decision);
          this.#backlog.owe(e.vm, e.bdf, outcome.hardwareValue, result?.needs ?? []);
        }
        this.#adversary.exposureChanged(e.vm);
        return;
      }
      case 'pin':
        this.#pin(e);
        return;
      case 'unpin':
        this.#unpin(e.vm, e.run);
        return;
      case 'dma':
        this.#hardware.dma(e);
        return;
    }
  }

  /**
   * Runs a command and performs the flush it demands (a DEVCTL write's replay later: `needs` then
   * lists what its bit write waits for); a rejection is counted, not fatal.
   */
  #command(cmd: Command): Answer | undefined {
    this.#report.command();
    // The VM as it was: a teardown is priced with the arch and policy of a VM no longer there.
    const before = 'vmId' in cmd ? this.#state.vms.get(cmd.vmId) : undefined;
    let result: CommandResult;
    try {
      result = applyCommand(this.#state, cmd, ++this.#now);
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      this.#report.rejected(err.code);
      return undefined;
    }
    const vm = ('vmId' in cmd ? this.#state.vms.get(cmd.vmId) : undefined) ?? before;
    if (!('vmId' in cmd)) {
      this.#perform(result.decision, this.#report.decided(result.decision, vm?.arch, vm?.policy));
      return result;
    }
    if (cmd.type === 'delete-vm') this.#backlog.forget(cmd.vmId);
    // The replays outstanding that the answer's `flush.after` lists (the service's rule).
    const current = this.#state.vms.get(cmd.vmId);
    const after = this.#honoursAfter && current !== undefined && waitsForReplays(current, this.#state.quirks, result.decision, cmd) ? this.#backlog.outstanding(cmd.vmId) : [];
    const id = this.#perform(result.decision, this.#report.decided(result.decision, vm?.arch, vm?.policy), cmd.type === 'devctl' ? cmd.vmId : undefined);
    let needs: readonly number[] = [];
    if (cmd.type === 'devctl') {
      needs = id === undefined ? after : [...after, id];
    } else {
      // Any other change takes effect now: the VMM performs what it depends on first.
      this.#backlog.performNow(after);
    }
    // Bits a policy, domain or device change tells the VMM to clear on other devices of its VM.
    for (const w of result.decision.devices ?? []) this.#backlog.owe(cmd.vmId, w.bdf, w.hardwareValue, needs);
    return { ...result, needs };
  }

  /**
   * Flushes what the decision demands (flush job `job`); a replay for `later` (a DEVCTL write's)
   * is left for the VMM to perform later: its id is returned.
   */
  #perform(decision: Decision, job: number | undefined, later?: VmId): number | undefined {
    if (job === undefined) return undefined;
    const flush = decision.flush;
    if (later !== undefined && flush.cause === 'replay') {
      this.#backlog.defer({ id: job, vm: later, due: this.#report.event + LATE_EVENTS, flush });
      return job;
    }
    this.#flush(job, flush);
    return undefined;
  }

  #flush(job: number, flush: Decision['flush']): void {
    if (job === this.#dropFlush) return;
    const pairs = flushPairs(flush);
    for (let i = 0; i < pairs.length; i += 2) this.#hardware.flush(pairs[i] as number, pairs[i + 1] as number);
  }

  #attach(e: Extract<TraceEvent, { t: 'device' }>): void {
    const existing = this.#hardware.device(e.vm, e.bdf);
    const hw = existing ?? attachedDevice(e);
    const result = this.#command({
      type: 'put-device',
      vmId: e.vm,
      device: { bdf: e.bdf, domainId: e.domain, vendorId: e.vendorId, deviceId: e.deviceId, function: e.function, physfn: e.physfn, nosnoop: truthful(hw) }
    });
    if (result === undefined) return;
    this.#hardware.plug(hw);
    const write = result.decision.devctl;
    if (existing === undefined) {
      // A new device has bus mastering off until the VMM, having written what the decision says,
      // hands it to the guest: it cannot DMA before that write.
      if (write !== undefined) this.#backlog.owe(e.vm, e.bdf, write.hardwareValue, result.needs ?? []);
      this.#adversary.exposureChanged(e.vm);
      return;
    }
    // A device already in the VM is live with its bit as found until the VMM writes.
    this.#adversary.exposureChanged(e.vm);
    if (write !== undefined) this.#backlog.owe(e.vm, e.bdf, write.hardwareValue, result.needs ?? []);
  }

  /** FLR or bus reset (R1): out of reset the bit is as the hardware left it until the VMM re-applies the policy. */
  #reset(vmId: VmId, bdf: PciAddress, restoresConfig: boolean): void {
    const hw = this.#hardware.device(vmId, bdf);
    const result = this.#command({ type: 'reset-device', vmId, bdf, restoresConfig });
    if (result === undefined || hw === undefined) return;
    this.#hardware.reset(hw, restoresConfig);
    this.#adversary.exposureChanged(vmId);
    if (result.decision.devctl !== undefined) this.#backlog.owe(vmId, bdf, result.decision.devctl.hardwareValue, result.needs ?? []);
  }

  /** The VMM writes DEVCTL, then reads the bit back and reports it when the core's view differs, as the API asks (W3). */
  #write(vmId: VmId, bdf: PciAddress, value: number): void {
    const hw = this.#hardware.writeDevctl(vmId, bdf, value);
    if (hw === undefined) return;
    const current = this.#state.vms.get(vmId)?.devices.get(bdf);
    if (current === undefined || hw.unknown || (current.nosnoop === truthful(hw) && current.pendingNosnoop === null)) return;
    this.#command({ type: 'put-device', vmId, device: { ...current, devctl: value, nosnoop: truthful(hw) } });
  }

  #pin(e: Extract<TraceEvent, { t: 'pin' }>): void {
    for (const batch of batches(e.run)) {
      const ranges: PinInput[] = batch.map(([iova, hpa]) => ({ iova, hpa, pages: e.run.pages, memType: e.memType, mmio: e.mmio, domains: e.domains }));
      if (!e.mmio) for (const [, hpa] of batch) this.#hardware.hostZero(hpa, e.run.pages);
      const result = this.#command({ type: 'pin', vmId: e.vm, ranges });
      if (result === undefined) {
        // Nothing was pinned: the host keeps its pages.
        if (!e.mmio) for (const [, hpa] of batch) this.#hardware.flush(hpa, e.run.pages);
        continue;
      }
      if (!e.mmio) this.#adversary.pinned(e.vm, batch.map(([iova]) => iova));
    }
  }

  #unpin(vmId: VmId, run: Run): void {
    for (const batch of batches(run)) {
      const ranges: RangeInput[] = batch.map(([iova]) => ({ iova, pages: run.pages }));
      this.#releasing(vmId, () => this.#command({ type: 'unpin', vmId, ranges }), ranges);
    }
  }

  /**
   * Runs a command that may release pinned ranges (unpin, domain or VM removal) and has the
   * hardware check each released RAM page as it goes back to the host. `within` limits the
   * candidates to those ranges.
   */
  #releasing(vmId: VmId, run: () => CommandResult | undefined, within?: readonly RangeInput[]): void {
    const vm = this.#state.vms.get(vmId);
    const before: number[] = [];
    const note = (start: number, pages: number, hpa: number, attr: number): undefined => {
      if (!attrMmio(attr)) before.push(start, pages, hpa);
      return undefined;
    };
    if (vm !== undefined) {
      if (within === undefined) vm.pins.forEach(note);
      else for (const r of within) vm.pins.forEachOverlap(r.iova, r.iova + r.pages, note);
    }
    if (run() === undefined) return;
    const after = this.#state.vms.get(vmId);
    for (let i = 0; i < before.length; i += 3) {
      const start = before[i] as number;
      const hpa = before[i + 2] as number;
      if (after?.pins.get(start)?.hpa === hpa) continue;
      this.#hardware.release(vmId, hpa, before[i + 1] as number);
    }
  }
}

/** The run's ranges as [iova, hpa] pairs, in batches the API would accept. */
function* batches(run: Run): Generator<[number, number][]> {
  for (let first = 0; first < run.count; first += BATCH) {
    const n = Math.min(BATCH, run.count - first);
    const out: [number, number][] = new Array<[number, number]>(n);
    for (let i = 0; i < n; i++) out[i] = [run.iova + (first + i) * run.iovaStride, run.hpa + (first + i) * run.hpaStride];
    yield out;
  }
}
