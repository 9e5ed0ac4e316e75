/**
 * Replays a trace through the decision core under one policy mode, playing the VMM (it performs
 * every flush a decision demands, writes every `hardwareValue` to the simulated device and
 * reports the bit it reads back) and the adversary (every device that can put No-Snoop on the
 * wire reads and writes every page it can reach, the moment it can), against the cache model.
 *
 * The VMM follows the VMM protocol and acts out of order where the protocol lets it: a replay
 * whose change is a guest's DEVCTL write is performed later (two events later or after, one per
 * event, newest first),
 * and a write that sets Enable No Snoop waits for its own replay and for every replay the
 * answer's `flush.after` would list (waitsForReplays, as the service decides it); writes to one
 * device stay in order; any other change waits for the replays it depends on before it takes
 * effect. `vmm: 'ignore-after'` plays a VMM that does not wait for `flush.after`.
 *
 * The result counts what the mode flushed and what it would cost, and every hazard the model saw:
 * a leak (a no-snoop read of a page the host zeroed through the cache and nobody flushed) or a
 * stale line (a page going back to the host with a clean line over newer DRAM). A safe policy
 * has none.
 */
import {
  flushPairs,
  applyCommand,
  attrMmio,
  attrSubset,
  coalescePairs,
  createState,
  DEFAULT_POLICY,
  DEVCTL_NOSNOOP_EN,
  DomainError,
  domainsOf,
  planFlush,
  waitsForReplays,
  type Arch,
  type CoherencyState,
  type Command,
  type CommandResult,
  type Decision,
  type DomainId,
  type FlushCause,
  type NoSnoopState,
  type PciAddress,
  type PinInput,
  type Policy,
  type PolicyDefaults,
  type PolicyMode,
  type Quirk,
  type RangeInput,
  type Vm,
  type VmId
} from '../domain/index.js';
import { CacheModel } from './coherency-model.js';
import type { Run, Trace, TraceEvent } from './trace.js';

/** Ranges per pin or unpin command: the API's batch limit. */
const BATCH = 10_000;
/** Flush chunk used for pricing, as the flush jobs use. */
const CHUNK_PAGES = 262_144;
const PAGE = 4096;
/** Events after which the VMM performs a replay it was answered for a DEVCTL write, at the earliest. */
const LATE_EVENTS = 2;
/** Violations kept as examples; the counts cover all of them. */
const SAMPLES = 5;

export interface ViolationSample {
  readonly kind: 'leak' | 'stale';
  /** 1-based index of the trace event during which the model saw it. */
  readonly event: number;
  readonly vm: string;
  readonly pages: number;
  readonly detail: string;
}

export interface ModeResult {
  readonly mode: PolicyMode;
  readonly events: number;
  /** Commands sent to the core (runs and batches expanded), and the ones it rejected by code. */
  readonly commands: number;
  readonly rejected: Readonly<Record<string, number>>;
  readonly flush: {
    /** Decisions that demanded a flush: one flush job each. */
    readonly jobs: number;
    readonly bytes: number;
    /** Bytes by cause. */
    readonly byCause: Readonly<Record<FlushCause, number>>;
    /** What the pessimistic policy would have flushed for the same decisions. */
    readonly pessimisticBytes: number;
  };
  /** Modelled with the per-architecture cost model the flush jobs price receipts with. */
  readonly cost: { readonly cycles: number; readonly seconds: number };
  readonly devctl: { readonly allow: number; readonly deny: number; readonly ignore: number };
  /** Whether KVM had to treat a VM as having non-coherent DMA at any point (K1). */
  readonly kvmNoncoherentDma: boolean;
  readonly violations: {
    readonly total: number;
    readonly leakPages: number;
    readonly stalePages: number;
    readonly samples: readonly ViolationSample[];
  };
}

export interface ReplayOptions {
  readonly quirks: readonly Quirk[];
  /** The server's policy defaults (each mode replaces `mode`); absent: the built-in defaults. */
  readonly defaults?: PolicyDefaults;
  /** Skip the n-th demanded flush (0-based), to show that the model notices. */
  readonly dropFlush?: number;
  /** How the VMM acts (see the top of this file); default 'protocol'. */
  readonly vmm?: 'protocol' | 'ignore-after';
}

/** A replay the VMM was answered and has not performed yet. */
interface LateFlush {
  readonly id: number;
  readonly vm: VmId;
  /** The event from which the VMM gets to it. */
  readonly due: number;
  readonly flush: Decision['flush'];
}

/** A DEVCTL write the VMM owes a device, waiting for replays (`needs`) or for earlier writes to it. */
interface OwedWrite {
  readonly vm: VmId;
  readonly bdf: PciAddress;
  readonly value: number;
  readonly needs: readonly number[];
}

interface HwDevice {
  readonly vm: VmId;
  readonly bdf: PciAddress;
  readonly fn: 'pf' | 'vf';
  readonly hardwired: boolean;
  /** The VMM cannot read the bit: it reports `unknown` and the hardware is assumed to be 1. */
  readonly unknown: boolean;
  /** The Enable No Snoop bit in hardware (a VF: its PF's bit as the host set it). */
  bit: 0 | 1;
}

/** Replays `trace` under `mode` with a fresh state. Deterministic: no clocks, no randomness. */
export function replay(trace: Trace, mode: PolicyMode, options: ReplayOptions): ModeResult {
  return new Replay(mode, options).run(trace.events);
}

class Replay {
  readonly #state: CoherencyState;
  readonly #mode: PolicyMode;
  readonly #cache = new CacheModel();
  readonly #devices = new Map<string, HwDevice>();
  /** Per VM: the non-coherent domains a no-snoop-capable device is attached to. */
  readonly #emitting = new Map<VmId, ReadonlySet<DomainId>>();
  readonly #dropFlush: number;
  readonly #honoursAfter: boolean;
  /** Replays answered and not performed yet, oldest first. */
  #late: LateFlush[] = [];
  /** Writes owed, oldest first. */
  #owed: OwedWrite[] = [];
  #event = 0;
  #now = 0;
  #commands = 0;
  readonly #rejected: Record<string, number> = {};
  #jobs = 0;
  #pages = 0;
  readonly #byCause: Record<FlushCause, number> = { pin: 0, unpin: 0, replay: 0, teardown: 0 };
  #pessimisticPages = 0;
  #cycles = 0;
  #ns = 0;
  readonly #devctl = { allow: 0, deny: 0, ignore: 0 };
  #kvm = false;
  #leakPages = 0;
  #stalePages = 0;
  #violations = 0;
  readonly #samples: ViolationSample[] = [];

  constructor(mode: PolicyMode, options: ReplayOptions) {
    this.#mode = mode;
    this.#state = createState({ ...(options.defaults ?? DEFAULT_POLICY), mode }, options.quirks);
    this.#dropFlush = options.dropFlush ?? -1;
    this.#honoursAfter = options.vmm !== 'ignore-after';
  }

  run(events: readonly TraceEvent[]): ModeResult {
    for (const e of events) {
      this.#event++;
      // Between two events the VMM gets to one replay it owes: the newest of those due.
      const late = this.#late.findLast((l) => l.due <= this.#event);
      if (late !== undefined) this.#performLate(late);
      this.#step(e);
    }
    while (this.#late.length > 0) this.#performLate(this.#late.pop() as LateFlush);
    return {
      mode: this.#mode,
      events: events.length,
      commands: this.#commands,
      rejected: { ...this.#rejected },
      flush: {
        jobs: this.#jobs,
        bytes: this.#pages * PAGE,
        byCause: {
          pin: this.#byCause.pin * PAGE,
          unpin: this.#byCause.unpin * PAGE,
          replay: this.#byCause.replay * PAGE,
          teardown: this.#byCause.teardown * PAGE
        },
        pessimisticBytes: this.#pessimisticPages * PAGE
      },
      cost: { cycles: this.#cycles, seconds: this.#ns / 1e9 },
      devctl: { ...this.#devctl },
      kvmNoncoherentDma: this.#kvm,
      violations: { total: this.#violations, leakPages: this.#leakPages, stalePages: this.#stalePages, samples: [...this.#samples] }
    };
  }

  #step(e: TraceEvent): void {
    switch (e.t) {
      case 'vm':
        this.#command({ type: 'put-vm', vmId: e.vm, arch: e.arch, policy: { ...e.policy, mode: this.#mode } });
        return;
      case 'delete-vm':
        this.#releasing(e.vm, () => this.#command({ type: 'delete-vm', vmId: e.vm }));
        this.#exposureChanged(e.vm);
        return;
      case 'domain':
        this.#command({ type: 'put-domain', vmId: e.vm, domainId: e.domain, enforceCacheCoherency: e.coherent });
        this.#exposureChanged(e.vm);
        return;
      case 'delete-domain':
        this.#releasing(e.vm, () => this.#command({ type: 'delete-domain', vmId: e.vm, domainId: e.domain }));
        this.#exposureChanged(e.vm);
        return;
      case 'device':
        this.#attach(e);
        this.#exposureChanged(e.vm);
        return;
      case 'delete-device':
        if (this.#command({ type: 'delete-device', vmId: e.vm, bdf: e.bdf }) !== undefined) this.#devices.delete(key(e.vm, e.bdf));
        this.#exposureChanged(e.vm);
        return;
      case 'reset':
        this.#reset(e.vm, e.bdf, e.restoresConfig);
        this.#exposureChanged(e.vm);
        return;
      case 'devctl': {
        const cmd: Command = { type: 'devctl', vmId: e.vm, bdf: e.bdf, write: { nosnoopEnable: e.nosnoopEnable } };
        const result = this.#command(cmd);
        const outcome = result?.decision.devctl;
        if (outcome !== undefined) {
          this.#devctl[outcome.decision]++;
          this.#owe(e.vm, e.bdf, outcome.hardwareValue, result?.needs ?? []);
        }
        this.#exposureChanged(e.vm);
        return;
      }
      case 'pin':
        this.#pin(e);
        return;
      case 'unpin':
        this.#unpin(e.vm, e.run);
        return;
      case 'dma':
        this.#dma(e);
        return;
    }
  }

  // ---- the VMM ---------------------------------------------------------------------------------

  /**
   * Runs a command and performs the flush it demands (a DEVCTL write's replay later: `needs` then
   * lists what its bit write waits for); a rejection is counted, not fatal.
   */
  #command(cmd: Command): (CommandResult & { needs?: readonly number[] }) | undefined {
    this.#commands++;
    // The VM as it was: a teardown is priced with the arch and policy of a VM no longer there.
    const before = 'vmId' in cmd ? this.#state.vms.get(cmd.vmId) : undefined;
    let result: CommandResult;
    try {
      result = applyCommand(this.#state, cmd, ++this.#now);
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      this.#rejected[err.code] = (this.#rejected[err.code] ?? 0) + 1;
      return undefined;
    }
    const vm = ('vmId' in cmd ? this.#state.vms.get(cmd.vmId) : undefined) ?? before;
    if (!('vmId' in cmd)) {
      this.#perform(result.decision, vm?.arch, vm?.policy);
      return result;
    }
    if (cmd.type === 'delete-vm') {
      // The VMM is gone with its VM: what it owed is moot (the teardown flushes what it must).
      this.#late = this.#late.filter((l) => l.vm !== cmd.vmId);
      this.#owed = this.#owed.filter((w) => w.vm !== cmd.vmId);
    }
    // The replays outstanding that the answer's `flush.after` lists (the service's rule).
    const current = this.#state.vms.get(cmd.vmId);
    const after =
      this.#honoursAfter && current !== undefined && waitsForReplays(current, this.#state.quirks, result.decision, cmd)
        ? this.#late.filter((l) => l.vm === cmd.vmId).map((l) => l.id)
        : [];
    const id = this.#perform(result.decision, vm?.arch, vm?.policy, cmd.type === 'devctl' ? cmd.vmId : undefined);
    let needs: readonly number[] = [];
    if (cmd.type === 'devctl') {
      needs = id === undefined ? after : [...after, id];
    } else {
      // Any other change takes effect now: the VMM performs what it depends on first.
      for (const l of this.#late.filter((x) => after.includes(x.id))) this.#performLate(l);
    }
    // Bits a policy, domain or device change tells the VMM to clear on other devices of its VM.
    for (const w of result.decision.devices ?? []) this.#owe(cmd.vmId, w.bdf, w.hardwareValue, needs);
    return { ...result, needs };
  }

  /**
   * Prices what the decision demands and flushes it on the model; a replay for `later` (a DEVCTL
   * write's) is left for the VMM to perform later: its id is returned.
   */
  #perform(decision: Decision, arch: Arch | undefined, policy: Policy | undefined, later?: VmId): number | undefined {
    this.#pessimisticPages += decision.pessimisticPages;
    if (decision.kvmNoncoherentDma) this.#kvm = true;
    const flush = decision.flush;
    if (!flush.required) return undefined;
    const job = this.#jobs++;
    this.#pages += flush.pages;
    if (flush.cause !== null) this.#byCause[flush.cause] += flush.pages;
    const pairs = flushPairs(flush);
    if (arch !== undefined && policy !== undefined) {
      const receipt = planFlush(coalescePairs(pairs), arch, policy, CHUNK_PAGES);
      this.#cycles += receipt.modeledCycles;
      this.#ns += receipt.modeledNs;
    }
    if (later !== undefined && flush.cause === 'replay') {
      this.#late.push({ id: job, vm: later, due: this.#event + LATE_EVENTS, flush });
      return job;
    }
    this.#flushModel(job, flush);
    return undefined;
  }

  #flushModel(job: number, flush: Decision['flush']): void {
    if (job === this.#dropFlush) return;
    const pairs = flushPairs(flush);
    for (let i = 0; i < pairs.length; i += 2) this.#cache.flush(pairs[i] as number, pairs[i + 1] as number);
  }

  /** The VMM performs a replay it owed, then the writes that waited for it. */
  #performLate(late: LateFlush): void {
    this.#late = this.#late.filter((l) => l !== late);
    this.#flushModel(late.id, late.flush);
    this.#writeOwed();
  }

  /** Owes a DEVCTL write: done now when nothing it waits for is outstanding and no earlier write to the device is owed. */
  #owe(vmId: VmId, bdf: PciAddress, value: number, needs: readonly number[]): void {
    this.#owed.push({ vm: vmId, bdf, value, needs });
    this.#writeOwed();
  }

  /** Writes every owed value whose replays are done, each device's in order. */
  #writeOwed(): void {
    const blocked = new Set<string>();
    for (const w of [...this.#owed]) {
      const k = key(w.vm, w.bdf);
      // A write made meanwhile (a device report below may owe and write again) is not made twice.
      if (blocked.has(k) || !this.#owed.includes(w)) continue;
      if (w.needs.some((id) => this.#late.some((l) => l.id === id))) {
        blocked.add(k);
        continue;
      }
      this.#owed = this.#owed.filter((x) => x !== w);
      this.#write(w.vm, w.bdf, w.value);
      this.#exposureChanged(w.vm);
    }
  }

  #attach(e: Extract<TraceEvent, { t: 'device' }>): void {
    const existing = this.#devices.get(key(e.vm, e.bdf));
    const hw: HwDevice = existing ?? {
      vm: e.vm,
      bdf: e.bdf,
      fn: e.function,
      hardwired: e.function === 'pf' && e.nosnoop === 'hardwired-zero',
      unknown: e.nosnoop === 'unknown',
      bit: e.nosnoop === 'enabled' || e.nosnoop === 'unknown' ? 1 : 0
    };
    const result = this.#command({
      type: 'put-device',
      vmId: e.vm,
      device: { bdf: e.bdf, domainId: e.domain, vendorId: e.vendorId, deviceId: e.deviceId, function: e.function, physfn: e.physfn, nosnoop: truthful(hw) }
    });
    if (result === undefined) return;
    this.#devices.set(key(e.vm, e.bdf), hw);
    const write = result.decision.devctl;
    if (existing === undefined) {
      // A new device has bus mastering off until the VMM, having written what the decision says,
      // hands it to the guest: it cannot DMA before that write.
      if (write !== undefined) this.#owe(e.vm, e.bdf, write.hardwareValue, result.needs ?? []);
      this.#exposureChanged(e.vm);
      return;
    }
    // A device already in the VM is live with its bit as found until the VMM writes.
    this.#exposureChanged(e.vm);
    if (write !== undefined) this.#owe(e.vm, e.bdf, write.hardwareValue, result.needs ?? []);
  }

  /**
   * FLR or bus reset (R1). A reset vfio-pci performs restores config space: the bit keeps its
   * value. One that does not returns it to its default 1 unless hardwired to 0.
   */
  #reset(vmId: VmId, bdf: PciAddress, restoresConfig: boolean): void {
    const hw = this.#devices.get(key(vmId, bdf));
    const result = this.#command({ type: 'reset-device', vmId, bdf, restoresConfig });
    if (result === undefined || hw === undefined) return;
    if (!restoresConfig && hw.fn === 'pf' && !hw.hardwired) hw.bit = 1;
    // Out of reset the bit is 1 until the VMM re-applies the policy.
    this.#exposureChanged(vmId);
    if (result.decision.devctl !== undefined) this.#owe(vmId, bdf, result.decision.devctl.hardwareValue, result.needs ?? []);
  }

  /**
   * The VMM writes DEVCTL (a VF's bit is reserved, a hardwired bit does not stick), then reads it
   * back and reports it when the core's view differs, as the API asks (W3).
   */
  #write(vmId: VmId, bdf: PciAddress, value: number): void {
    const hw = this.#devices.get(key(vmId, bdf));
    if (hw === undefined || hw.fn === 'vf' || hw.hardwired) return;
    hw.bit = (value & DEVCTL_NOSNOOP_EN) !== 0 ? 1 : 0;
    const current = this.#state.vms.get(vmId)?.devices.get(bdf);
    if (current === undefined || hw.unknown || (current.nosnoop === truthful(hw) && current.pendingNosnoop === null)) return;
    this.#command({ type: 'put-device', vmId, device: { ...current, devctl: value, nosnoop: truthful(hw) } });
  }

  #pin(e: Extract<TraceEvent, { t: 'pin' }>): void {
    for (const batch of batches(e.run)) {
      const ranges: PinInput[] = batch.map(([iova, hpa]) => ({ iova, hpa, pages: e.run.pages, memType: e.memType, mmio: e.mmio, domains: e.domains }));
      if (!e.mmio) for (const [, hpa] of batch) this.#cache.hostZero(hpa, e.run.pages);
      const result = this.#command({ type: 'pin', vmId: e.vm, ranges });
      if (result === undefined) {
        // Nothing was pinned: the host keeps its pages.
        if (!e.mmio) for (const [, hpa] of batch) this.#cache.flush(hpa, e.run.pages);
        continue;
      }
      const vm = this.#state.vms.get(e.vm);
      const emitting = this.#emitting.get(e.vm);
      if (vm === undefined || emitting === undefined || emitting.size === 0 || e.mmio) continue;
      for (const [iova] of batch) {
        const entry = vm.pins.get(iova);
        if (entry !== undefined && reaches(vm, entry.attr, emitting)) this.#adversary(e.vm, entry.hpa, entry.pages);
      }
    }
  }

  #unpin(vmId: VmId, run: Run): void {
    for (const batch of batches(run)) {
      const ranges: RangeInput[] = batch.map(([iova]) => ({ iova, pages: run.pages }));
      this.#releasing(vmId, () => this.#command({ type: 'unpin', vmId, ranges }), ranges);
    }
  }

  /**
   * Runs a command that may release pinned ranges (unpin, domain or VM removal) and checks each
   * released RAM page as it goes back to the host. `within` limits the candidates to those ranges.
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
      const stale = this.#cache.release(hpa, before[i + 1] as number);
      if (stale > 0) this.#violation('stale', vmId, stale, `host pages ${hex(hpa)}.. went back to the host with ${stale} page(s) under stale clean lines`);
    }
  }

  #dma(e: Extract<TraceEvent, { t: 'dma' }>): void {
    const vm = this.#state.vms.get(e.vm);
    const hw = this.#devices.get(key(e.vm, e.bdf));
    const domainId = vm?.devices.get(e.bdf)?.domainId ?? null;
    if (vm === undefined || hw === undefined || domainId === null) return;
    const noSnoop = e.noSnoop && vm.domains.get(domainId)?.enforceCacheCoherency === false && this.#emits(hw);
    const end = e.iova + e.pages;
    const parts: number[] = [];
    vm.pins.forEachOverlap(e.iova, end, (start, pages, hpa, attr) => {
      if (attrMmio(attr) || !domainsOf(vm, attrSubset(attr)).includes(domainId)) return undefined;
      const lo = Math.max(start, e.iova);
      parts.push(hpa + (lo - start), Math.min(start + pages, end) - lo);
      return undefined;
    });
    for (let i = 0; i < parts.length; i += 2) {
      const hpa = parts[i] as number;
      const pages = parts[i + 1] as number;
      if (!noSnoop) {
        if (e.write) this.#cache.snoopedWrite(hpa, pages);
      } else if (e.write) {
        this.#cache.noSnoopWrite(hpa, pages);
      } else {
        this.#leakCheck(e.vm, hpa, pages);
      }
    }
  }

  // ---- the adversary ---------------------------------------------------------------------------

  /**
   * Recomputes which domains of the VM a device can no-snoop into; when one was added, every page
   * mapped there meets the adversary at once (a replay must have flushed it already).
   */
  #exposureChanged(vmId: VmId): void {
    const vm = this.#state.vms.get(vmId);
    if (vm === undefined) {
      this.#emitting.delete(vmId);
      return;
    }
    const next = new Set<DomainId>();
    for (const device of vm.devices.values()) {
      const hw = this.#devices.get(key(vmId, device.bdf));
      if (device.domainId === null || hw === undefined) continue;
      if (vm.domains.get(device.domainId)?.enforceCacheCoherency === false && this.#emits(hw)) next.add(device.domainId);
    }
    const previous = this.#emitting.get(vmId) ?? new Set<DomainId>();
    this.#emitting.set(vmId, next);
    if (![...next].some((d) => !previous.has(d))) return;
    vm.pins.forEach((_start, pages, hpa, attr) => {
      if (!attrMmio(attr) && reaches(vm, attr, next)) this.#adversary(vmId, hpa, pages);
      return undefined;
    });
  }

  /** A device reads the pages with no-snoop, the guest caches them clean, the device overwrites DRAM. */
  #adversary(vmId: VmId, hpa: number, pages: number): void {
    this.#leakCheck(vmId, hpa, pages);
    this.#cache.noSnoopWrite(hpa, pages);
  }

  #leakCheck(vmId: VmId, hpa: number, pages: number): void {
    const leaked = this.#cache.noSnoopRead(hpa, pages);
    if (leaked > 0) this.#violation('leak', vmId, leaked, `a no-snoop read of host pages ${hex(hpa)}.. saw ${leaked} page(s) the host zeroed in cache only`);
  }

  #violation(kind: 'leak' | 'stale', vm: VmId, pages: number, detail: string): void {
    this.#violations++;
    if (kind === 'leak') this.#leakPages += pages;
    else this.#stalePages += pages;
    if (this.#samples.length < SAMPLES) this.#samples.push({ kind, event: this.#event, vm, pages, detail });
  }

  /**
   * Whether the hardware may put No-Snoop on the wire for this device. A VF follows its PF's real
   * bit wherever the PF is: in this VM, in another, or left on the host (where its reset default,
   * 1, is assumed); a PF quirked ignores-nosnoop-enable makes its VFs ignore the bit too.
   */
  #emits(hw: HwDevice): boolean {
    const device = this.#state.vms.get(hw.vm)?.devices.get(hw.bdf);
    const ignores = (vendorId: number, deviceId: number): boolean => this.#state.quirks.flagsFor(vendorId, deviceId).has('ignores-nosnoop-enable');
    if (device !== undefined && ignores(device.vendorId, device.deviceId)) return true;
    if (hw.fn === 'vf') {
      if (device?.physfn === null || device?.physfn === undefined) return true;
      const physfn = device.physfn;
      const pf = [...this.#devices.values()].find((d) => d.fn === 'pf' && d.bdf === physfn);
      if (pf === undefined) return true;
      const pfDevice = this.#state.vms.get(pf.vm)?.devices.get(pf.bdf);
      if (pfDevice !== undefined && ignores(pfDevice.vendorId, pfDevice.deviceId)) return true;
      return pf.bit === 1;
    }
    return hw.bit === 1;
  }
}

/** Whether a pinned range with `attr` maps into one of `domains`. */
function reaches(vm: Vm, attr: number, domains: ReadonlySet<DomainId>): boolean {
  for (const d of domainsOf(vm, attrSubset(attr))) if (domains.has(d)) return true;
  return false;
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

function truthful(hw: HwDevice): NoSnoopState {
  if (hw.unknown) return 'unknown';
  if (hw.hardwired) return 'hardwired-zero';
  return hw.bit === 1 ? 'enabled' : 'disabled';
}

function key(vm: VmId, bdf: PciAddress): string {
  return `${vm}/${bdf}`;
}

function hex(page: number): string {
  return `0x${(page * PAGE).toString(16)}`;
}
