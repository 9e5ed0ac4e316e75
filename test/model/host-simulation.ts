/**
 * A whole host under the policy service, as an adversary sees it: several VMs, each with its own
 * VMM (host-vmms.ts), share one set of PCI functions and one pool of host pages, and the hardware
 * does what hardware does, whatever the service believes (host-hardware.ts, on the player of
 * test/model/player).
 *
 * - A device new to a VM, put into a domain with an answer that carries a hardwareValue, keeps bus
 *   mastering off until its VMM has written that value (SPEC W3: "written before the guest gets
 *   the device"); nothing else waits for the VMM. A device moved between domains of its VM keeps
 *   running (iommufd can replace a live device's domain), a VF keeps running while its PF waits,
 *   and a device reset without restoring config is back at once with its bit at 1.
 * - The service may restart between any two steps, over the same store, with other server
 *   defaults and another quirk file: it must come back with exactly the state it acknowledged.
 * - With `protocol` the VMMs follow the VMM protocol (host-vmms.ts); a change made by an admin
 *   (a policy) or an operator (the quirk list) reaches them on their VMs' event streams only.
 *
 * After every step, every function that can put No-Snoop on the wire in a non-coherent domain
 * reads every page it can reach (a leak shows at once). The first time it reaches a page (again
 * after each flush of it) the guest CPU caches the page clean and the device overwrites it with
 * No-Snoop, so a stale line shows at release unless the service had the page flushed then.
 */
import {
  DomainError,
  type Arch,
  type Command,
  type Decision,
  type DeviceInput,
  type DomainId,
  type NoSnoopState,
  type PciAddress,
  type PolicyDefaults,
  type PolicyInput,
  type Quirk,
  type VmId
} from '../../src/domain/index.js';
import { PolicyService, type Applied } from '../../src/service/policy-service.js';
import { createRuntime, type Runtime } from '../../src/service/runtime.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { CoherencyModel } from './coherency-model.js';
import { checkFlagInvariant, digest } from './core-state.js';
import { HostHardware, type HostFn } from './host-hardware.js';
import { ARCHES, DOMAIN_IDS, HOST_QUIRK_TABLES, tableOf, VM_IDS, type HostConfig, type HostEvent, type PfSpec, type Scenario } from './host-topology.js';
import { HostVmms, type HostOptions, type VmmStats } from './host-vmms.js';
import { INLINE_POOL } from './inline-pool.js';
import { DEVCTL_NOSNOOP_EN } from './player/pci-function.js';

/** What a run counts, to show the sequences exercise what they claim to. */
export interface HostStats extends VmmStats {
  restarts: number;
  confirms: number;
  coldResets: number;
  quirkChanges: number;
  /** Attaches whose answer made the device wait for its VMM's write. */
  attachWaits: number;
  /** Steps with a VF handed to a guest whose PF is in another VM or on the host. */
  split: number;
  policyChanges: number;
  /** Answers a per-device override (W8) decided. */
  overrideVerdicts: number;
  /** Pages a device cached clean and overwrote with No-Snoop: each needs a flush before release. */
  probes: number;
}

/** Who makes a command: the VM's own VMM, or an admin (policies, the quirk list). */
function actorOf(cmd: Command): string {
  return cmd.type === 'put-vm' || cmd.type === 'put-quirks' ? 'admin' : `vmm-${VM_IDS.indexOf(cmd.vmId)}`;
}

export class HostSimulation {
  readonly model: CoherencyModel;
  /** Pages of every demanded flush, in order, the dropped one included. */
  readonly flushes: readonly number[];
  /** Answers that break a rule outright, whether or not the hardware noticed. */
  readonly ruleViolations: string[] = [];
  /** Restarts after which the service held another state than the one it had acknowledged. */
  readonly restartMismatches: string[] = [];
  /** Commands the service refused, by error code. */
  readonly rejected = new Map<string, number>();
  readonly stats: HostStats = {
    restarts: 0,
    lateWrites: 0,
    confirms: 0,
    coldResets: 0,
    quirkChanges: 0,
    attachWaits: 0,
    split: 0,
    policyChanges: 0,
    overrideVerdicts: 0,
    probes: 0,
    heard: 0,
    lateFlushes: 0,
    afterWaits: 0,
    rereads: 0
  };
  /** The last accepted command's answer (for the named cases). */
  last: Applied | undefined;

  readonly #store = new MemoryStore();
  readonly #hw: HostHardware;
  readonly #vmms: HostVmms;
  #service: PolicyService;
  /** Protocol: the service with its flush jobs and event streams. */
  #runtime: Runtime | null = null;
  #now = 0;

  constructor(pfs: readonly PfSpec[], config: HostConfig, options: HostOptions = {}) {
    const quirks = tableOf(config.table);
    this.#hw = new HostHardware(pfs, quirks);
    this.#vmms = new HostVmms({ hardware: this.#hw, options, stats: this.stats, rules: this.ruleViolations, service: () => this.#service });
    this.model = this.#hw.memory.model;
    this.flushes = this.#vmms.log.flushes;
    this.#service = this.#newService(config.defaults, quirks);
  }

  /** Plays a whole scenario and tears every VM down, so every page goes back to the host and is checked. */
  static async play(scenario: Scenario, options: HostOptions = {}): Promise<HostSimulation> {
    const sim = new HostSimulation(scenario.pfs, scenario.config, options);
    try {
      await sim.run(scenario.events);
      await sim.finish();
    } finally {
      await sim.#runtime?.close();
    }
    return sim;
  }

  get service(): PolicyService {
    return this.#service;
  }

  /** The BDF of function `index` (PFs first, each followed by its VFs). */
  bdf(index: number): PciAddress {
    return this.#hw.fn(index).bdf;
  }

  /** No leak, no stale line, no broken rule, no restart that changed the state. */
  get clean(): boolean {
    return this.model.violations.length === 0 && this.ruleViolations.length === 0 && this.restartMismatches.length === 0;
  }

  async run(events: readonly HostEvent[]): Promise<this> {
    for (const e of events) await this.step(e);
    return this;
  }

  async step(e: HostEvent): Promise<void> {
    await this.#started();
    await this.#dispatch(e);
    await this.#vmms.tellLies((f, vm, lie) => this.#put(f, vm, f.domain, lie));
    this.#checkBeliefs();
    this.stats.probes += this.#hw.sweep();
  }

  async finish(): Promise<this> {
    await this.#started();
    if (this.#vmms.protocol !== 'off') await this.#vmms.catchUp();
    for (let vm = 0; vm < VM_IDS.length; vm++) if (this.#hw.vm(vm).exists) await this.#deleteVm(vm);
    return this;
  }

  #newService(defaults: PolicyDefaults, quirks: readonly Quirk[]): PolicyService {
    // One clock across restarts: a restarted service must not go back in time.
    const clock = (): number => ++this.#now;
    if (this.#vmms.protocol === 'off') return new PolicyService({ defaults, quirks, store: this.#store, clock });
    this.#runtime = createRuntime({ defaults, quirks, store: this.#store, pool: INLINE_POOL, windowMs: 0, clock, simThreads: 0 });
    return this.#runtime.service;
  }

  /** A service with a store answers nothing before it has loaded it; with the protocol, each VMM then follows its VM's stream. */
  async #started(): Promise<void> {
    if (this.#service.ready.state) return;
    if (this.#runtime === null) {
      await this.#service.restore();
      return;
    }
    await this.#runtime.start();
    this.#vmms.follow();
  }

  // ---- events ----------------------------------------------------------------------------------

  async #dispatch(e: HostEvent): Promise<void> {
    switch (e.t) {
      case 'vm':
        return this.#putVm(e);
      case 'delete-vm':
        return this.#deleteVm(e.vm % VM_IDS.length);
      case 'domain':
        return this.#putDomain(e);
      case 'delete-domain':
        return this.#deleteDomain(e);
      case 'assign':
        return this.#assign(this.#hw.fn(e.fn), e.vm % VM_IDS.length, e.dom);
      case 'unassign':
        return this.#unassign(this.#hw.fn(e.fn));
      case 'host-bit': {
        // Only while the PF is on the host: then nobody's VMM owns it, and the host may set anything.
        const f = this.#hw.fn(e.fn);
        if (f.fn === 'pf' && f.vm === null && !f.hardwired) f.write(e.bit === 1 ? f.devctl | DEVCTL_NOSNOOP_EN : f.devctl & ~DEVCTL_NOSNOOP_EN);
        return;
      }
      case 'devctl':
        return this.#devctl(e);
      case 'reset':
        return this.#reset(e);
      case 'vmm':
        return this.#vmms.performOne(e.pick);
      case 'hw-write':
        this.#vmms.writeOne(e.pick);
        return;
      case 'confirm': {
        const f = this.#hw.fn(e.fn);
        if (f.vm === null) return;
        this.stats.confirms++;
        return this.#put(f, f.vm, f.domain);
      }
      case 'pin':
        return this.#pin(e);
      case 'unpin':
        return this.#unpin(e);
      case 'dma':
        this.#hw.dma(e);
        return;
      case 'cpu': {
        const vm = e.vm % VM_IDS.length;
        const page = this.#hw.pins.guestPage(vm, e.pick, e.off);
        if (page !== undefined) this.#hw.memory.cpu(page, VM_IDS[vm] as VmId, e.write);
        return;
      }
      case 'evict':
        this.#hw.memory.evict(e.page);
        return;
      case 'quirks':
        return this.#putQuirks(e.table);
      case 'restart':
        return this.#restart(e.defaults, e.table);
    }
  }

  /** Runs a command on the service; a refusal (DomainError) changes nothing, on either side. */
  async #command(cmd: Command): Promise<Applied | undefined> {
    try {
      this.last = await this.#service.apply(cmd, actorOf(cmd));
      if (this.last.decision.reasons.some((r) => r.rule === 'W8')) this.stats.overrideVerdicts++;
      return this.last;
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      this.rejected.set(err.code, (this.rejected.get(err.code) ?? 0) + 1);
      return undefined;
    } finally {
      await this.#vmms.hear();
    }
  }

  /** What the VMM reports for a device PUT: what it reads back (a lying VMM: `lie`, and DEVCTL with the bit clear). */
  #deviceInput(f: HostFn, domain: number | null, lie?: NoSnoopState): DeviceInput {
    const readable = f.fn === 'pf' && !f.unreadable;
    const devctl = lie === undefined ? f.devctl : f.devctl & ~DEVCTL_NOSNOOP_EN;
    return {
      bdf: f.bdf,
      domainId: domain === null ? null : (DOMAIN_IDS[domain] as DomainId),
      vendorId: f.vendorId,
      deviceId: f.deviceId,
      function: f.fn,
      physfn: f.pf?.bdf ?? null,
      nosnoop: lie ?? f.readBack(),
      ...(readable ? { devctl } : {})
    };
  }

  #toHost(f: HostFn): void {
    this.#vmms.closed(f);
    f.toHost();
  }

  // ---- commands, each with what the real world does around it ----------------------------------

  async #putVm(e: Extract<HostEvent, { t: 'vm' }>): Promise<void> {
    const vm = e.vm % VM_IDS.length;
    const policy: PolicyInput = {
      ...(e.mode === null ? {} : { mode: e.mode }),
      ...(e.onEnable === null ? {} : { onEnable: e.onEnable }),
      ...(e.exempt === null ? {} : { exemptNeedsNoSnoop: e.exempt }),
      // W8: the last override named for a function counts.
      ...(e.overrides === null || e.overrides === undefined ? {} : { devices: Object.fromEntries(e.overrides.map((o) => [this.#hw.fn(o.fn).bdf, { onEnable: o.onEnable }])) })
    };
    const existed = this.#hw.vm(vm).exists;
    const result = await this.#command({ type: 'put-vm', vmId: VM_IDS[vm] as VmId, arch: ARCHES[vm] as Arch, policy });
    if (result === undefined) return;
    if (existed) this.stats.policyChanges++;
    if (this.#vmms.protocol !== 'off') {
      // An admin's change: the VMM hears of it on its stream, not from this answer.
      this.#hw.vm(vm).exists = true;
      return;
    }
    await this.#vmms.act([[vm, result.decision]], {
      change: () => {
        this.#hw.vm(vm).exists = true;
        return [];
      }
    });
  }

  async #deleteVm(vm: number): Promise<void> {
    const result = await this.#command({ type: 'delete-vm', vmId: VM_IDS[vm] as VmId });
    if (result === undefined) return;
    await this.#vmms.act([[vm, result.decision]], {
      change: () => {
        for (const f of this.#hw.fns) if (f.vm === vm) this.#toHost(f);
        this.#hw.vm(vm).exists = false;
        this.#hw.vm(vm).domains.clear();
        return this.#hw.pins.unmap((p) => p.vm === vm);
      },
      own: result
    });
  }

  async #putDomain(e: Extract<HostEvent, { t: 'domain' }>): Promise<void> {
    const vm = e.vm % VM_IDS.length;
    const dom = e.dom % DOMAIN_IDS.length;
    const result = await this.#command({ type: 'put-domain', vmId: VM_IDS[vm] as VmId, domainId: DOMAIN_IDS[dom] as DomainId, enforceCacheCoherency: e.coherent });
    if (result === undefined) return;
    // A flip to non-coherent exposes at once: its replay flush comes first, then the flip.
    await this.#vmms.act([[vm, result.decision]], {
      change: () => {
        this.#hw.vm(vm).domains.set(dom, e.coherent);
        return [];
      },
      own: result
    });
  }

  async #deleteDomain(e: Extract<HostEvent, { t: 'delete-domain' }>): Promise<void> {
    const vm = e.vm % VM_IDS.length;
    const dom = e.dom % DOMAIN_IDS.length;
    const result = await this.#command({ type: 'delete-domain', vmId: VM_IDS[vm] as VmId, domainId: DOMAIN_IDS[dom] as DomainId });
    if (result === undefined) return;
    await this.#vmms.act([[vm, result.decision]], {
      change: () => {
        for (const f of this.#hw.fns) {
          if (f.vm !== vm || f.domain !== dom) continue;
          this.ruleViolations.push(`domain ${DOMAIN_IDS[dom]} of ${VM_IDS[vm]} was removed with ${f.bdf} still attached`);
          f.domain = null;
          f.live = false;
        }
        const domains = this.#hw.vm(vm).domains;
        domains.delete(dom);
        // The last domain unmaps everything (VFIO type1); otherwise only pins that named nothing else.
        return this.#hw.pins.unmap((p) => {
          if (p.vm !== vm) return false;
          if (domains.size === 0) return true;
          if (p.domains === null) return false;
          p.domains = p.domains.filter((d) => d !== dom);
          return p.domains.length === 0;
        });
      },
      own: result
    });
  }

  async #assign(f: HostFn, vm: number, dom: number | null): Promise<void> {
    if (f.vm !== null && f.vm !== vm) {
      await this.#unassign(f);
      if (f.vm !== null) return;
    }
    await this.#put(f, vm, dom);
  }

  /**
   * A device PUT: attach (from the host), move to another domain, or report again. The VMM first
   * finishes what it owes the device, then reports what it reads (a lying VMM reports `lie`).
   */
  async #put(f: HostFn, vm: number, dom: number | null, lie?: NoSnoopState): Promise<void> {
    if (lie === undefined) await this.#vmms.drain(f);
    const attach = dom !== null && f.vm !== vm;
    const move = dom !== null && f.vm === vm && f.domain !== dom;
    const result = await this.#command({ type: 'put-device', vmId: VM_IDS[vm] as VmId, device: this.#deviceInput(f, dom, lie) });
    if (result === undefined) return;
    const out = result.decision.devctl;
    const needs = await this.#vmms.act([[vm, result.decision]], {
      change: () => {
        f.vm = vm;
        f.domain = dom;
        // New to the VM with a value to write: bus mastering stays off until the VMM wrote it.
        if (dom === null) f.live = false;
        else if (attach) f.live = out === undefined;
        else if (move) f.live = true;
        return [];
      },
      own: result
    });
    if (out === undefined) return;
    if (attach) this.stats.attachWaits++;
    this.#vmms.queueWrite(f, vm, { value: out.hardwareValue, attach, needs });
  }

  async #unassign(f: HostFn): Promise<void> {
    const vm = f.vm;
    if (vm === null) return;
    const result = await this.#command({ type: 'delete-device', vmId: VM_IDS[vm] as VmId, bdf: f.bdf });
    if (result === undefined) return;
    // Back on the host the PF keeps the bit it had; a host-bit event may change it from there.
    await this.#vmms.act([[vm, result.decision]], {
      change: () => {
        this.#toHost(f);
        return [];
      },
      own: result
    });
  }

  async #devctl(e: Extract<HostEvent, { t: 'devctl' }>): Promise<void> {
    const f = this.#hw.fn(e.fn);
    const vm = f.vm;
    if (vm === null) return;
    const write = e.value === null ? { nosnoopEnable: e.enable } : { value: e.enable ? e.value | DEVCTL_NOSNOOP_EN : e.value & ~DEVCTL_NOSNOOP_EN };
    const cmd: Command = { type: 'devctl', vmId: VM_IDS[vm] as VmId, bdf: f.bdf, write, dryRun: e.dryRun };
    if (e.dryRun) {
      const before = this.#snapshot();
      const result = await this.#command(cmd);
      if (result !== undefined && this.#snapshot() !== before) this.ruleViolations.push(`a dry-run devctl on ${f.bdf} changed the state`);
      return;
    }
    const result = await this.#command(cmd);
    if (result === undefined) return;
    const out = result.decision.devctl;
    // An allowed enable replays first: the bit reaches the hardware only after the flush (with
    // the protocol, the write waits for the replay's job and those of `flush.after`).
    const needs = await this.#vmms.act([[vm, result.decision]], { own: result, defer: true });
    if (out === undefined) {
      this.ruleViolations.push(`a devctl decision for ${f.bdf} without a devctl outcome`);
      return;
    }
    this.#vmms.queueWrite(f, vm, { value: out.hardwareValue, needs });
  }

  async #reset(e: Extract<HostEvent, { t: 'reset' }>): Promise<void> {
    const f = this.#hw.fn(e.fn);
    const vm = f.vm;
    if (vm === null) return;
    const cmd = { type: 'reset-device', vmId: VM_IDS[vm] as VmId, bdf: f.bdf, restoresConfig: e.restoresConfig } as Command;
    const result = await this.#command(cmd);
    if (result === undefined) return;
    if (!e.restoresConfig) this.stats.coldResets++;
    // vfio-pci restores config around its own resets (the bit keeps its value, no DMA meanwhile);
    // a reset that does not restore it leaves a PF's bit at its default 1 (a VF's FLR leaves the PF alone).
    const needs = await this.#vmms.act([[vm, result.decision]], {
      change: () => {
        if (!e.restoresConfig) f.coldReset();
        return [];
      },
      own: result
    });
    const out = result.decision.devctl;
    if (out !== undefined) this.#vmms.queueWrite(f, vm, { value: out.hardwareValue, needs });
  }

  async #pin(e: Extract<HostEvent, { t: 'pin' }>): Promise<void> {
    const vm = e.vm % VM_IDS.length;
    const vmId = VM_IDS[vm] as VmId;
    const mmio = e.mmio !== null;
    // The host hands the pages over zeroed through the cache: dirty lines, old data in DRAM.
    const hpa = mmio ? this.#hw.memory.mmio(e.pages) : this.#hw.memory.handOut(e.pages, vmId);
    const iova = e.slot * 3;
    const domains = e.doms === null ? null : [...new Set(e.doms.map((d) => d % DOMAIN_IDS.length))];
    const result = await this.#command({
      type: 'pin',
      vmId,
      ranges: [{ iova, pages: e.pages, hpa, mmio, memType: e.mmio ?? 'WB', domains: domains?.map((d) => DOMAIN_IDS[d] as DomainId) ?? null }]
    });
    if (result === undefined) {
      if (!mmio) this.#hw.memory.unused({ hpa, pages: e.pages });
      return;
    }
    await this.#vmms.act([[vm, result.decision]], {
      change: () => {
        this.#hw.pins.add({ vm, iova, pages: e.pages, hpa, mmio, domains });
        return [];
      },
      own: result
    });
  }

  async #unpin(e: Extract<HostEvent, { t: 'unpin' }>): Promise<void> {
    const vm = e.vm % VM_IDS.length;
    const { iova, pages } = this.#hw.pins.unpinRange(vm, e.pick, e.how);
    const result = await this.#command({ type: 'unpin', vmId: VM_IDS[vm] as VmId, ranges: [{ iova, pages }] });
    if (result === undefined) return;
    await this.#vmms.act([[vm, result.decision]], {
      change: () => this.#hw.pins.unmap((p) => p.vm === vm && p.iova >= iova && p.iova + p.pages <= iova + pages),
      own: result
    });
  }

  async #putQuirks(table: number): Promise<void> {
    const quirks = tableOf(table);
    const result = await this.#command({ type: 'put-quirks', quirks });
    if (result === undefined) return;
    this.stats.quirkChanges++;
    // The table is the truth about the devices: it takes effect after the replays it causes.
    if (this.#vmms.protocol !== 'off') {
      // Each VMM hears of its VM's replay on its stream and performs it when it gets to it.
      this.#vmms.putQuirks(quirks, [...(result.vmJobIds?.values() ?? [])]);
      return;
    }
    const answers = [...(result.vms ?? new Map<VmId, Decision>())].map(([id, d]) => [VM_IDS.indexOf(id), d] as const);
    await this.#vmms.act(answers, {
      change: () => {
        this.#hw.setQuirks(quirks);
        return [];
      }
    });
  }

  async #restart(defaults: PolicyDefaults, table: number): Promise<void> {
    const before = this.#snapshot();
    // With the protocol the old instance stops first (its accepted jobs planned and kept).
    const old = this.#runtime;
    await old?.close();
    const service = this.#newService(defaults, tableOf(table));
    try {
      if (this.#runtime === null) await service.restore();
      else await this.#runtime.start();
    } catch (err) {
      // The old instance stands in, so the run goes on; the failure is recorded.
      this.restartMismatches.push(`restore failed: ${err instanceof Error ? err.message : String(err)}`);
      this.#runtime = old;
      return;
    }
    this.#service = service;
    this.stats.restarts++;
    // Each VMM resumes its stream from its last event id: a new instance says `reset`.
    if (this.#runtime !== null) {
      this.#vmms.follow();
      await this.#vmms.hear();
    }
    const after = this.#snapshot();
    if (after !== before) {
      const why = differences(JSON.parse(before), JSON.parse(after), '', []).slice(0, 6).join('; ');
      this.restartMismatches.push(`restart with defaults ${JSON.stringify(defaults)} and quirk table ${table % HOST_QUIRK_TABLES.length}: ${why}`);
    }
  }

  /** Everything a restart must keep: the core's state, each VM's view, the pinned ranges, the quirk list. */
  #snapshot(): string {
    const s = this.#service;
    const vms: Record<string, unknown> = {};
    for (const id of [...s.state.vms.keys()].sort()) vms[id] = { view: s.vm(id), pins: s.pins(id, 0, 1_000_000) };
    return JSON.stringify({ core: digest(s.state), quirks: s.quirks(), vms });
  }

  // ---- after every step ------------------------------------------------------------------------

  /**
   * The service's own bookkeeping (every range mapped into a domain it calls exposed is flagged),
   * and where it places things: the same devices in the same domains, the same pinned ranges, as
   * the host has. A difference there would make every other check meaningless.
   */
  #checkBeliefs(): void {
    const state = this.#service.state;
    try {
      checkFlagInvariant(state);
    } catch (err) {
      this.ruleViolations.push(err instanceof Error ? err.message : String(err));
    }
    VM_IDS.forEach((id, vm) => {
      const core = state.vms.get(id);
      const devices = (entries: [string, string | null][]): string => JSON.stringify(entries.sort());
      const host = devices(this.#hw.assigned(vm));
      const held = devices([...(core?.devices.values() ?? [])].map((d) => [d.bdf, d.domainId]));
      if (host !== held) this.ruleViolations.push(`${id}: the service holds devices ${held}, the host has ${host}`);
      const pins: string[] = [];
      core?.pins.forEach((start, pages, hpa) => {
        pins.push(`${start}+${pages}@${hpa}`);
        return undefined;
      });
      const mine = this.#hw.pins.all.filter((p) => p.vm === vm).map((p) => `${p.iova}+${p.pages}@${p.hpa}`);
      if (JSON.stringify(pins.sort()) !== JSON.stringify(mine.sort())) this.ruleViolations.push(`${id}: the service holds pins ${pins.join(' ')}, the host maps ${mine.join(' ')}`);
    });
    if (this.#hw.split) this.stats.split++;
  }
}

/** What a failed run shows: the hazards, the broken rules and the restarts that changed the state. */
export function findings(sim: HostSimulation): { hazards: string[]; rules: string[]; restarts: string[] } {
  return {
    hazards: sim.model.violations.map((v) => `${v.kind} at page ${v.page}: ${v.detail}`),
    rules: sim.ruleViolations,
    restarts: sim.restartMismatches
  };
}

/** What a clean run shows. */
export const NONE = { hazards: [], rules: [], restarts: [] };

/** Paths where two JSON values differ, with both values (shortened), for a readable failure. */
function differences(a: unknown, b: unknown, path: string, out: string[]): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return out;
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && path.split('.').length < 6) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) differences((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path === '' ? k : `${path}.${k}`, out);
    return out;
  }
  const show = (v: unknown): string => (JSON.stringify(v) ?? 'undefined').slice(0, 120);
  out.push(`${path}: ${show(a)} -> ${show(b)}`);
  return out;
}
