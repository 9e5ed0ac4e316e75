/**
 * A whole host under the policy service, as an adversary sees it: several VMs, each with its own
 * VMM, share one set of PCI functions and one pool of host pages, and the hardware does what
 * hardware does, whatever the service believes.
 *
 * - Functions exist once on the host, by BDF: physical functions (PFs), some with virtual
 *   functions (VFs). Each is on the host or assigned to exactly one VM, in one of that VM's IOMMU
 *   domains or in none yet. A PF and its VF may sit in different VMs, and a PF may stay on (or go
 *   back to) the host while its VF is assigned.
 * - A PF's Enable No Snoop bit is a register: reset default 1 unless hardwired to 0, written only
 *   by the VMM of the VM the PF is assigned to, or by the host while the PF is on the host. A VF's
 *   own bit is reserved (RsvdP): the VF puts No-Snoop on the wire iff its PF's real bit is 1,
 *   wherever that PF is, or an ignores-nosnoop-enable quirk names the VF or its PF. A PF whose
 *   bit the VMM cannot read counts as having it set. The quirk table that is true is the one the
 *   service acknowledged last (its start-up file, then every put-quirks), never a file it is
 *   restarted with.
 * - Each VMM acts on the answers meant for its own VM: it flushes what a decision demands, when it
 *   says (before-map: before the change takes effect; after-unmap: after the IOMMU unmap, before
 *   the pages go back to the host), and writes each hardwareValue to its own devices only, late
 *   (queued, applied at a later step) unless told otherwise. Before it reports a device again
 *   (a device PUT: attach, move or confirmation) it finishes its queued writes to that device, so
 *   what it reports is what the hardware reads after every write it was told to do.
 * - A device new to a VM, put into a domain with an answer that carries a hardwareValue, keeps bus
 *   mastering off until its VMM has written that value (SPEC W3: "written before the guest gets
 *   the device"); nothing else waits for the VMM. A device moved between domains of its VM keeps
 *   running (iommufd can replace a live device's domain), a VF keeps running while its PF waits,
 *   and a device reset without restoring config is back at once with its bit at 1.
 * - The service may restart between any two steps, over the same store, with other server
 *   defaults and another quirk file: it must come back with exactly the state it acknowledged.
 * - With `protocol` the VMMs follow the VMM protocol (SPEC, flush jobs): a flush is a job the VMM
 *   performs and then acknowledges, at a later step and in any order (a `vmm` event picks one);
 *   a change made by someone else (an admin's policy change, an operator's quirk list) reaches
 *   the VMM only on its VM's event stream; a device write that sets Enable No Snoop waits for
 *   the write's own flush and for every job its answer lists in `flush.after`, while other
 *   writes go ahead in any order; after a restart the stream says `reset` and the VMM re-reads
 *   its outstanding jobs. A quirk list is the truth about the devices once the replays it causes,
 *   and the jobs outstanding when it was put, are performed (before then nobody could have known),
 *   except that a flag it takes away is gone at once. `ignore-after` plays a VMM that does
 *   not wait for `flush.after`, to show the model notices.
 *
 * After every step, every function that can put No-Snoop on the wire in a non-coherent domain
 * reads every page it can reach (a leak shows at once). The first time it reaches a page (again
 * after each flush of it) the guest CPU caches the page clean and the device overwrites it with
 * No-Snoop, so a stale line shows at release unless the service had the page flushed then.
 */
import fc from 'fast-check';
import {
  DEVCTL_NOSNOOP_EN,
  DEVCTL_RESET_DEFAULT,
  DomainError,
  defaultQuirksFile,
  parseDomainId,
  parsePciAddress,
  parseQuirkFile,
  parseVmId,
  POLICY_MODES,
  QuirkTable,
  type Arch,
  type Command,
  type Decision,
  type DeviceInput,
  type DomainId,
  type MemType,
  type NoSnoopState,
  type OnEnable,
  type PciAddress,
  type PolicyDefaults,
  type PolicyInput,
  type PolicyMode,
  type Quirk,
  type VmId
} from '../../src/domain/index.js';
import plan from '../../src/jobs/flush-worker.js';
import type { JobPool } from '../../src/jobs/job-pool.js';
import { PolicyService, type Applied } from '../../src/service/policy-service.js';
import { createRuntime, type Runtime } from '../../src/service/runtime.js';
import type { VmEvent } from '../../src/service/vm-events.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { CoherencyModel } from './coherency-model.js';
import { HostPages } from './host-pages.js';
import { checkFlagInvariant, digest } from './simulation.js';

// ---- the host's hardware ---------------------------------------------------------------------

export type FnKind = 'igpu' | 'nic' | 'bad';

/** What a VMM reads back from a VF's reserved bit: 0 (RsvdP), its PF's bit, or nothing it trusts. */
export type VfReport = 'disabled' | 'pf-bit' | 'unknown';

export interface PfSpec {
  readonly kind: FnKind;
  readonly hardwired: boolean;
  /** The VMM cannot read the bit: it reports `unknown`, and the bit counts as set. */
  readonly unreadable: boolean;
  /** The bit as the host left it. */
  readonly bit: 0 | 1;
  /** One entry per VF of this PF: what the VMM reports for it. */
  readonly vfs: readonly VfReport[];
}

/** Vendor and device ids of each kind's PF and VF (SR-IOV VFs usually have a device id of their own). */
const IDS: Record<FnKind, { pf: readonly [number, number]; vf: readonly [number, number] }> = {
  igpu: { pf: [0x8086, 0x9a49], vf: [0x8086, 0x9a49] }, // needs-nosnoop in the default quirk file
  nic: { pf: [0x15b3, 0x1017], vf: [0x15b3, 0x1018] },
  bad: { pf: [0x1d0f, 0x0001], vf: [0x1d0f, 0x0002] }
};

function quirk(ids: readonly [number, number], flag: Quirk['flags'][number]): Quirk {
  return { vendorId: ids[0], deviceId: ids[1], deviceMask: 0xffff, flags: [flag] };
}

const DEFAULT_QUIRKS = parseQuirkFile(defaultQuirksFile);
const BAD_PF_IGNORES = quirk(IDS.bad.pf, 'ignores-nosnoop-enable');
const BAD_VF_IGNORES = quirk(IDS.bad.vf, 'ignores-nosnoop-enable');
const NIC_PF_IGNORES = quirk(IDS.nic.pf, 'ignores-nosnoop-enable');

/**
 * The quirk tables a service may start with, be restarted with, or be given by put-quirks. Table
 * 0 quirks only the bad PF (its VFs follow it); table 4 quirks the NIC PF, whose VFs may sit in
 * other VMs; table 3 is empty, not even the iGPU is needs-nosnoop.
 */
export const HOST_QUIRK_TABLES: readonly (readonly Quirk[])[] = [
  [...DEFAULT_QUIRKS, BAD_PF_IGNORES],
  DEFAULT_QUIRKS,
  [...DEFAULT_QUIRKS, BAD_PF_IGNORES, BAD_VF_IGNORES, quirk(IDS.nic.pf, 'needs-nosnoop'), quirk(IDS.nic.vf, 'needs-nosnoop')],
  [],
  [...DEFAULT_QUIRKS, NIC_PF_IGNORES]
];

export const VM_IDS: readonly VmId[] = ['vm0', 'vm1', 'vm2'].map(parseVmId);
const ARCHES: readonly Arch[] = ['x86_64', 'aarch64', 'x86_64'];
export const DOMAIN_IDS: readonly DomainId[] = ['d0', 'd1', 'd2'].map(parseDomainId);
/** How many functions the generated topologies have: PF0 with 2 VFs, PF1 with 1, PF2 with none. */
export const FUNCTIONS = 6;
const DEVCTL_BCR_FLR = 0x8000;

/** One PCI function of the host, as the hardware has it. */
interface HostFn {
  readonly index: number;
  readonly bdf: PciAddress;
  readonly fn: 'pf' | 'vf';
  /** A VF's PF. */
  readonly pf: HostFn | null;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly hardwired: boolean;
  readonly unreadable: boolean;
  /** A VF: what its VMM reports for it. */
  readonly report: VfReport | null;
  /** A PF: the real Enable No Snoop bit. */
  bit: 0 | 1;
  /** A PF: the real DEVCTL register. */
  devctl: number;
  /** The VM it is assigned to (index into VM_IDS); null: on the host. */
  vm: number | null;
  /** Its IOMMU domain in that VM; null: none yet. */
  domain: number | null;
  /** Handed to the guest: bus mastering may be on. */
  live: boolean;
}

interface HostVm {
  exists: boolean;
  /** Domain index -> enforces cache coherency. */
  readonly domains: Map<number, boolean>;
}

interface HostPin {
  readonly vm: number;
  readonly iova: number;
  readonly pages: number;
  readonly hpa: number;
  readonly mmio: boolean;
  /** The domains it maps into; null: every domain of the VM, present and future (VFIO type1). */
  domains: number[] | null;
  /** Pages the adversary has already cached clean and overwritten with No-Snoop. */
  readonly probed: Set<number>;
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

/** Plans flush jobs on the calling thread: the simulation starts a service per restart. */
const INLINE_POOL: JobPool = { plan: (task) => Promise.resolve(plan(task)), queueSize: 0, utilization: 0, threads: 0, close: () => Promise.resolve() };

/** Who makes a command: the VM's own VMM, or an admin (policies, the quirk list). */
function actorOf(cmd: Command): string {
  return cmd.type === 'put-vm' || cmd.type === 'put-quirks' ? 'admin' : `vmm-${VM_IDS.indexOf(cmd.vmId)}`;
}

/** Ranges of a planned job ([hpa page, pages] pairs). */
function rangesOf(pairs: Float64Array | null): { hpa: number; pages: number }[] {
  const out: { hpa: number; pages: number }[] = [];
  for (let i = 0; pairs !== null && i < pairs.length; i += 2) out.push({ hpa: pairs[i] as number, pages: pairs[i + 1] as number });
  return out;
}

// ---- what the VMM reads from an answer --------------------------------------------------------

/**
 * The parts of a decision a VMM acts on, typed here so this model reads fields the core may add
 * (`flush.when`, `devices`) whatever its Decision type says today.
 */
interface VmmDecision {
  readonly flush: {
    readonly required: boolean;
    readonly ranges: readonly { readonly hpa: number; readonly pages: number }[];
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

// ---- events ------------------------------------------------------------------------------------

export type HostEvent =
  /** put-vm: create, or change a live VM's policy. A null field is left to the server defaults. */
  | { t: 'vm'; vm: number; mode: PolicyMode | null; onEnable: OnEnable | null; exempt: boolean | null }
  | { t: 'delete-vm'; vm: number }
  /** put-domain: create, or flip coherent <-> non-coherent. */
  | { t: 'domain'; vm: number; dom: number; coherent: boolean }
  | { t: 'delete-domain'; vm: number; dom: number }
  /** Put a function into a VM and domain (null: none), from the host, another VM, or another domain. */
  | { t: 'assign'; fn: number; vm: number; dom: number | null }
  /** delete-device: the function goes back to the host. */
  | { t: 'unassign'; fn: number }
  /** The host sets the bit of a PF that is on the host. */
  | { t: 'host-bit'; fn: number; bit: 0 | 1 }
  /** A guest DEVCTL write (nosnoopEnable, or a whole 16-bit value), or its dry run. */
  | { t: 'devctl'; fn: number; enable: boolean; dryRun: boolean; value: number | null }
  | { t: 'reset'; fn: number; restoresConfig: boolean }
  /** A VMM performs the oldest queued write to one device. */
  | { t: 'hw-write'; pick: number }
  /** A VMM finishes its writes to a device and reports what it reads back (device PUT). */
  | { t: 'confirm'; fn: number }
  /** With the protocol: a VMM performs one of the flush jobs it was told of (any one) and acknowledges it. */
  | { t: 'vmm'; pick: number }
  | { t: 'pin'; vm: number; slot: number; pages: number; doms: number[] | null; mmio: MemType | null }
  | { t: 'unpin'; vm: number; pick: number; how: 'exact' | 'span' | 'random' }
  | { t: 'dma'; fn: number; pick: number; off: number; write: boolean; ns: boolean }
  | { t: 'cpu'; vm: number; pick: number; off: number; write: boolean }
  | { t: 'evict'; page: number }
  | { t: 'quirks'; table: number }
  /** The service restarts over the same store with these server defaults and quirk file. */
  | { t: 'restart'; defaults: PolicyDefaults; table: number };

export interface HostConfig {
  /** Server defaults the service starts with. */
  readonly defaults: PolicyDefaults;
  /** Index into HOST_QUIRK_TABLES: the quirk file the service starts with. */
  readonly table: number;
}

export interface Scenario {
  readonly pfs: readonly PfSpec[];
  readonly config: HostConfig;
  readonly events: readonly HostEvent[];
}

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

/** What a run counts, to show the sequences exercise what they claim to. */
export interface HostStats {
  restarts: number;
  lateWrites: number;
  confirms: number;
  coldResets: number;
  quirkChanges: number;
  /** Attaches whose answer made the device wait for its VMM's write. */
  attachWaits: number;
  /** Steps with a VF handed to a guest whose PF is in another VM or on the host. */
  split: number;
  policyChanges: number;
  /** Pages a device cached clean and overwrote with No-Snoop: each needs a flush before release. */
  probes: number;
  /** Protocol: decisions the VMM heard of only on its event stream (someone else's change). */
  heard: number;
  /** Protocol: flush jobs performed at a later step than their answer. */
  lateFlushes: number;
  /** Protocol: device writes that had to wait for a job of `flush.after`. */
  afterWaits: number;
  /** Protocol: streams that said `reset` (after a restart), so the VMM re-read its outstanding jobs. */
  rereads: number;
}

export class HostSimulation {
  readonly model = new CoherencyModel();
  /** Released pages are reused first, so a leak shows another VM's data. */
  readonly #pages = new HostPages();
  /** Pages of every demanded flush, in order, the dropped one included. */
  readonly flushes: number[] = [];
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
    probes: 0,
    heard: 0,
    lateFlushes: 0,
    afterWaits: 0,
    rereads: 0
  };
  /** The last accepted command's answer (for the named cases). */
  last: Applied | undefined;

  readonly #store = new MemoryStore();
  #service: PolicyService;
  readonly #fns: HostFn[] = [];
  readonly #byBdf = new Map<string, HostFn>();
  readonly #vms: HostVm[] = VM_IDS.map(() => ({ exists: false, domains: new Map<number, boolean>() }));
  #pins: HostPin[] = [];
  #queue: PendingWrite[] = [];
  /** Devices a lying VMM is about to report clear. */
  #lies: HostFn[] = [];
  #lying = false;
  /** The quirk table that is true: the one the service acknowledged last. */
  #quirks: QuirkTable;
  #now = 0;
  readonly #drop: number;
  readonly #writes: 'late' | 'immediate';
  readonly #earlyConfirm: boolean;
  readonly #protocol: 'off' | 'honour' | 'ignore-after';
  /** Protocol: the service with its flush jobs and event streams. */
  #runtime: Runtime | null = null;
  /** Protocol: jobs the VMMs were told of and have not performed, with the ranges they were told. */
  readonly #told = new Map<string, { vm: number; ranges: { hpa: number; pages: number }[] }>();
  /** Protocol: jobs performed and acknowledged, or made moot (their VM was deleted). */
  readonly #done = new Set<string>();
  /** Protocol: each VMM's event stream: the last event id, what it has not handled, how to stop it. */
  readonly #cursor: (string | undefined)[] = VM_IDS.map(() => undefined);
  #inbox: [number, VmEvent][] = [];
  #unsubscribe: (() => void)[] = [];
  /** Protocol: quirk lists acknowledged whose replays are not all performed yet, oldest first. */
  readonly #switches: { table: QuirkTable; jobs: readonly string[] }[] = [];

  constructor(pfs: readonly PfSpec[], config: HostConfig, options: HostOptions = {}) {
    this.#drop = options.drop ?? -1;
    this.#writes = options.writes ?? 'late';
    this.#earlyConfirm = options.earlyConfirm ?? false;
    this.#protocol = options.protocol ?? 'off';
    pfs.forEach((spec, p) => {
      const pf = this.#addFn(`0000:0${p + 1}:00.0`, 'pf', null, IDS[spec.kind].pf, spec, null);
      spec.vfs.forEach((report, v) => this.#addFn(`0000:0${p + 1}:00.${v + 1}`, 'vf', pf, IDS[spec.kind].vf, spec, report));
    });
    const quirks = tableOf(config.table);
    this.#quirks = new QuirkTable(quirks);
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
    return this.#fn(index).bdf;
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
    await this.#tellLies();
    this.#checkBeliefs();
    this.#sweep();
  }

  async finish(): Promise<this> {
    await this.#started();
    if (this.#protocol !== 'off') {
      // Every VMM catches up: it performs every job it was told of, then every write it owes.
      await this.#hear();
      for (const id of [...this.#told.keys()]) await this.#performJob(id);
      for (const f of this.#fns) await this.#drain(f);
    }
    for (let vm = 0; vm < VM_IDS.length; vm++) if (this.#vms[vm]?.exists === true) await this.#deleteVm(vm);
    return this;
  }

  #addFn(bdf: string, fn: 'pf' | 'vf', pf: HostFn | null, ids: readonly [number, number], spec: PfSpec, report: VfReport | null): HostFn {
    const hardwired = fn === 'pf' && spec.hardwired;
    const bit = hardwired ? 0 : spec.bit;
    const f: HostFn = {
      index: this.#fns.length,
      bdf: parsePciAddress(bdf),
      fn,
      pf,
      vendorId: ids[0],
      deviceId: ids[1],
      hardwired,
      unreadable: fn === 'pf' && spec.unreadable,
      report,
      bit,
      devctl: bit === 1 ? DEVCTL_RESET_DEFAULT : DEVCTL_RESET_DEFAULT & ~DEVCTL_NOSNOOP_EN,
      vm: null,
      domain: null,
      live: false
    };
    this.#fns.push(f);
    this.#byBdf.set(f.bdf, f);
    return f;
  }

  #newService(defaults: PolicyDefaults, quirks: readonly Quirk[]): PolicyService {
    // One clock across restarts: a restarted service must not go back in time.
    const clock = (): number => ++this.#now;
    if (this.#protocol === 'off') return new PolicyService({ defaults, quirks, store: this.#store, clock });
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
    this.#follow();
  }

  /** Each VMM follows its VM's event stream from the last event it saw. */
  #follow(): void {
    for (const stop of this.#unsubscribe) stop();
    const events = this.#service.events;
    this.#unsubscribe = VM_IDS.map((id, vm) =>
      events.subscribe(id, this.#cursor[vm], (e) => {
        this.#cursor[vm] = e.id;
        this.#inbox.push([vm, e]);
      })
    );
  }

  #fn(index: number): HostFn {
    return this.#fns[index % this.#fns.length] as HostFn;
  }

  #vm(index: number): HostVm {
    return this.#vms[index % this.#vms.length] as HostVm;
  }

  // ---- what the hardware does ------------------------------------------------------------------

  /** A quirk list still waiting for its replays (protocol) takes away a flag at once, and adds one only once they are done. */
  #ignores(f: HostFn): boolean {
    const ignores = (table: QuirkTable): boolean => table.flagsFor(f.vendorId, f.deviceId).has('ignores-nosnoop-enable');
    return ignores(this.#quirks) && this.#switches.every((next) => ignores(next.table));
  }

  /** A PF's bit as the hardware has it; one the VMM cannot read counts as set. */
  #bitSet(pf: HostFn): boolean {
    return pf.unreadable || (!pf.hardwired && pf.bit === 1);
  }

  /** Whether the function may set the No-Snoop attribute on its transactions. */
  #emits(f: HostFn): boolean {
    if (this.#ignores(f)) return true;
    if (f.pf !== null) return this.#ignores(f.pf) || this.#bitSet(f.pf);
    return this.#bitSet(f);
  }

  /** Handed to a guest, in a domain that does not force snooping, and able to emit No-Snoop. */
  #noSnoops(f: HostFn): boolean {
    if (!f.live || f.vm === null || f.domain === null) return false;
    return this.#vm(f.vm).domains.get(f.domain) === false && this.#emits(f);
  }

  #maps(pin: HostPin, vm: number, domain: number): boolean {
    return pin.vm === vm && this.#vm(vm).domains.has(domain) && (pin.domains === null || pin.domains.includes(domain));
  }

  /** RAM pins the function's DMA reaches. */
  #reachable(f: HostFn): HostPin[] {
    const vm = f.vm;
    const domain = f.domain;
    if (!f.live || vm === null || domain === null) return [];
    return this.#pins.filter((p) => !p.mmio && this.#maps(p, vm, domain));
  }

  /** What the VMM reads back from the function. */
  #readBack(f: HostFn): NoSnoopState {
    if (f.pf !== null) {
      if (f.report === 'pf-bit') return this.#readBack(f.pf);
      return f.report ?? 'unknown';
    }
    if (f.unreadable) return 'unknown';
    if (f.hardwired) return 'hardwired-zero';
    return f.bit === 1 ? 'enabled' : 'disabled';
  }

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
      nosnoop: lie ?? this.#readBack(f),
      ...(readable ? { devctl } : {})
    };
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
        return this.#assign(this.#fn(e.fn), e.vm % VM_IDS.length, e.dom);
      case 'unassign':
        return this.#unassign(this.#fn(e.fn));
      case 'host-bit': {
        // Only while the PF is on the host: then nobody's VMM owns it, and the host may set anything.
        const f = this.#fn(e.fn);
        if (f.fn === 'pf' && f.vm === null && !f.hardwired) this.#setBit(f, e.bit === 1 ? f.devctl | DEVCTL_NOSNOOP_EN : f.devctl & ~DEVCTL_NOSNOOP_EN);
        return;
      }
      case 'devctl':
        return this.#devctl(e);
      case 'reset':
        return this.#reset(e);
      case 'vmm': {
        const id = pick([...this.#told.keys()], e.pick);
        if (id === undefined) return;
        this.stats.lateFlushes++;
        return this.#performJob(id);
      }
      case 'hw-write': {
        // Writes to one device go in order; a device whose next write waits for a flush is skipped.
        const owing = [...new Set(this.#queue.map((w) => w.fn))].filter((f) => this.#ready(this.#queue.find((x) => x.fn === f) as PendingWrite));
        const f = owing[e.pick % Math.max(1, owing.length)];
        const w = this.#queue.find((x) => x.fn === f);
        if (w !== undefined) this.#perform(w);
        return;
      }
      case 'confirm': {
        const f = this.#fn(e.fn);
        if (f.vm === null) return;
        this.stats.confirms++;
        return this.#put(f, f.vm, f.domain);
      }
      case 'pin':
        return this.#pin(e);
      case 'unpin':
        return this.#unpin(e);
      case 'dma':
        return this.#dma(e);
      case 'cpu': {
        const vmId = VM_IDS[e.vm % VM_IDS.length] as VmId;
        const pin = pick(this.#pins.filter((p) => p.vm === e.vm % VM_IDS.length && !p.mmio), e.pick);
        if (pin === undefined) return;
        const page = pin.hpa + (e.off % pin.pages);
        if (e.write) this.model.cpuWrite(page, vmId);
        else this.model.cpuRead(page);
        return;
      }
      case 'evict':
        this.model.evict(this.#pages.anyRam(e.page));
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
      return this.last;
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      this.rejected.set(err.code, (this.rejected.get(err.code) ?? 0) + 1);
      return undefined;
    } finally {
      await this.#hear();
    }
  }

  /**
   * Carries out answers, each for the VMM of its VM: the before-map flushes, then the change
   * itself (`change` returns the pins it unmapped), then the after-unmap flushes, then the pages
   * go back to the host, then the device writes the answers ask of each VMM are queued.
   *
   * With the protocol, `own` is the VMM's own answer: its flush is a job the VMM performs and
   * acknowledges, and an honouring VMM first performs the jobs of `flush.after`. With `defer` (a
   * DEVCTL write, whose change is the bit reaching the hardware) nothing is performed now: the
   * returned jobs are what the device writes wait for.
   */
  async #act(answers: readonly (readonly [number, Decision])[], change: () => readonly HostPin[] = () => [], own?: Applied, defer = false): Promise<string[]> {
    const decisions = answers.map(([vm, d]) => [vm, d as VmmDecision] as const);
    let needs: string[] = [];
    const protocol = this.#protocol !== 'off' && own !== undefined;
    const jobId = protocol ? own.jobId : undefined;
    for (const [, d] of decisions) if (jobId === undefined && whenOf(d.flush) === 'before-map') this.#flush(d.flush);
    if (protocol) {
      const [vm, d] = decisions[0] as (typeof decisions)[number];
      needs = this.#tell(vm, jobId, d.flush, own.after);
      if (!defer) for (const id of needs) await this.#performJob(id);
    }
    const unmapped = change();
    for (const [, d] of decisions) {
      if (whenOf(d.flush) !== 'after-unmap') continue;
      if (jobId === undefined) this.#flush(d.flush);
      else await this.#performJob(jobId);
    }
    for (const pin of unmapped) {
      if (pin.mmio) continue;
      for (let p = pin.hpa; p < pin.hpa + pin.pages; p++) {
        this.model.release(p);
        this.#pages.release(p);
      }
    }
    for (const [vm, d] of decisions) this.#queueWrites(vm, d, needs);
    return needs;
  }

  /** Queues the device writes a decision asks of the VMM of `vm`, each waiting for `needs`. */
  #queueWrites(vm: number, d: VmmDecision, needs: readonly string[]): void {
    for (const w of d.devices ?? []) {
      const f = this.#byBdf.get(w.bdf);
      // A VMM cannot write another VM's device: an answer that asks it to misplaces the device.
      if (f === undefined || f.vm !== vm) this.ruleViolations.push(`an answer asks the VMM of ${VM_IDS[vm]} to write ${w.bdf}, which is not in that VM`);
      else this.#queueWrite(f, vm, w.hardwareValue, false, needs);
    }
  }

  // ---- the VMM protocol: jobs performed and acknowledged, streams followed -------------------------

  /**
   * The VMM of `vm` is told of job `jobId` carrying `flush`; returns what must be done before the
   * decision's change takes effect: the job itself when it flushes before the change, and the jobs
   * of `flush.after` (an honouring VMM only).
   */
  #tell(vm: number, jobId: string | undefined, flush: VmmDecision['flush'], after: readonly string[] = []): string[] {
    const honoured = this.#protocol === 'honour' ? after.filter((id) => !this.#done.has(id)) : [];
    if (honoured.length > 0) this.stats.afterWaits++;
    if (jobId === undefined) return honoured;
    const told = this.#told.get(jobId);
    if (told === undefined) this.#told.set(jobId, { vm, ranges: [...flush.ranges] });
    else told.ranges.push(...flush.ranges);
    // A job answered again after its acknowledgement is outstanding again (SPEC: an ack covers what was answered before it).
    this.#done.delete(jobId);
    return [...(whenOf(flush) === 'before-map' ? [jobId] : []), ...honoured];
  }

  /** Performs job `id` (flushes what the VMM was told, or reads its ranges) and acknowledges it. */
  async #performJob(id: string): Promise<void> {
    if (this.#done.has(id)) return;
    let told = this.#told.get(id);
    if (told === undefined) {
      // Named in `flush.after` before the VMM heard of it: it reads the job's ranges (GET /v1/flush-jobs/{id}/ranges).
      const job = await this.#service.settledFlushJob(id);
      if (job === undefined) {
        this.ruleViolations.push(`flush.after names job ${id}, which the service does not know`);
        this.#done.add(id);
        return;
      }
      told = { vm: VM_IDS.indexOf(job.vmId), ranges: rangesOf(job.ranges) };
    }
    this.#told.delete(id);
    this.#flush({ required: true, cause: 'replay', ranges: told.ranges });
    const acked = await this.#service.acknowledgeFlushJob(id, {});
    if (acked === undefined) this.ruleViolations.push(`job ${id} of ${VM_IDS[told.vm]} was told to its VMM, then unknown to the service`);
    this.#done.add(id);
    this.#switchQuirks();
  }

  /** Handles what the VMMs' streams brought: decisions made by someone else, and resets. */
  async #hear(): Promise<void> {
    while (this.#inbox.length > 0) {
      const [vm, e] = this.#inbox.shift() as [number, VmEvent];
      if (e.type === 'reset') {
        await this.#reread(vm);
        continue;
      }
      if (e.type === 'deleted') {
        // The VM is gone, and its VMM with it: its jobs are moot.
        for (const [id, told] of this.#told) if (told.vm === vm) this.#done.add(id);
        for (const id of this.#done) this.#told.delete(id);
        this.#switchQuirks();
        continue;
      }
      if ((e.type !== 'decision' && e.type !== 'policy') || e.actor === `vmm-${vm}`) continue;
      this.stats.heard++;
      const d = e.decision as VmmDecision;
      const after = 'after' in e ? e.after : undefined;
      const needs = this.#tell(vm, e.jobId, d.flush, after);
      if (e.jobId === undefined && whenOf(d.flush) !== null) this.#flush(d.flush);
      this.#queueWrites(vm, d, needs);
    }
  }

  /** After a `reset` the VMM re-reads its VM's outstanding jobs (GET /v1/vms/{id}/flush-jobs) and their ranges. */
  async #reread(vm: number): Promise<void> {
    this.stats.rereads++;
    for (const job of this.#service.flushJobs(VM_IDS[vm] as VmId, undefined, 100_000)) {
      if (job.state === 'acknowledged' || job.state === 'done' || job.state === 'failed' || (job.acknowledgedAt ?? null) !== null) continue;
      const planned = await this.#service.settledFlushJob(job.id);
      const ranges = rangesOf(planned?.ranges ?? null);
      this.#done.delete(job.id);
      this.#told.set(job.id, { vm, ranges });
    }
  }

  /** A quirk list becomes the truth about the devices once the replays it caused are performed. */
  #switchQuirks(): void {
    for (let next = this.#switches[0]; next !== undefined; next = this.#switches[0]) {
      if (!next.jobs.every((id) => this.#done.has(id))) return;
      this.#switches.shift();
      this.#quirks = next.table;
    }
  }

  /** Whether every job a queued write waits for is done. */
  #ready(w: PendingWrite): boolean {
    return w.needs.every((id) => this.#done.has(id));
  }

  #flush(flush: VmmDecision['flush']): void {
    const index = this.flushes.length;
    this.flushes.push(flush.ranges.reduce((n, r) => n + r.pages, 0));
    if (index === this.#drop) return;
    for (const r of flush.ranges) {
      for (let p = r.hpa; p < r.hpa + r.pages; p++) this.model.flush(p);
      // A flushed page has no line left: let the adversary cache it clean and overwrite it again.
      for (const pin of this.#pins) {
        if (pin.hpa < r.hpa + r.pages && r.hpa < pin.hpa + pin.pages) for (let p = r.hpa; p < r.hpa + r.pages; p++) pin.probed.delete(p);
      }
    }
  }

  // ---- the VMM's device writes -------------------------------------------------------------------

  #queueWrite(f: HostFn, vm: number, value: number, attach: boolean, needs: readonly string[] = []): void {
    if ((value & DEVCTL_NOSNOOP_EN) !== 0 && this.#readBack(f) === 'hardwired-zero') {
      this.ruleViolations.push(`hardwareValue 0x${value.toString(16)} sets bit 11 on ${f.bdf}, which is hardwired-zero`);
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

  /** The VMM writes DEVCTL: a VF's bit is reserved, a hardwired bit does not stick, Initiate FLR is never stored. */
  #perform(w: PendingWrite): void {
    this.#queue = this.#queue.filter((x) => x !== w);
    const f = w.fn;
    if (f.vm !== w.vm) return;
    if (this.#writes === 'late') this.stats.lateWrites++;
    if (f.fn === 'pf') this.#setBit(f, w.value);
    if (w.attach && f.domain !== null && !this.#queue.some((x) => x.fn === f && x.attach)) f.live = true;
  }

  #setBit(f: HostFn, value: number): void {
    const bit = f.hardwired || (value & DEVCTL_NOSNOOP_EN) === 0 ? 0 : 1;
    f.bit = bit;
    f.devctl = (value & ~(DEVCTL_BCR_FLR | DEVCTL_NOSNOOP_EN)) | (bit === 1 ? DEVCTL_NOSNOOP_EN : 0);
  }

  /** The VMM finishes every write it owes the device, oldest first (performing first the jobs each waits for). */
  async #drain(f: HostFn): Promise<void> {
    for (let w = this.#queue.find((x) => x.fn === f); w !== undefined; w = this.#queue.find((x) => x.fn === f)) {
      for (const id of w.needs) await this.#performJob(id);
      this.#perform(w);
    }
  }

  /** A lying VMM reports each clear it was told to write as done, before writing it. */
  async #tellLies(): Promise<void> {
    while (this.#lies.length > 0) {
      const f = this.#lies.shift() as HostFn;
      if (f.vm === null) continue;
      this.#lying = true;
      try {
        await this.#put(f, f.vm, f.domain, 'disabled');
      } finally {
        this.#lying = false;
      }
    }
  }

  #toHost(f: HostFn): void {
    // The VMM closed the device: what it still owed the device, it will never write.
    this.#queue = this.#queue.filter((w) => w.fn !== f);
    f.vm = null;
    f.domain = null;
    f.live = false;
  }

  // ---- commands, each with what the real world does around it ----------------------------------

  async #putVm(e: Extract<HostEvent, { t: 'vm' }>): Promise<void> {
    const vm = e.vm % VM_IDS.length;
    const policy: PolicyInput = {
      ...(e.mode === null ? {} : { mode: e.mode }),
      ...(e.onEnable === null ? {} : { onEnable: e.onEnable }),
      ...(e.exempt === null ? {} : { exemptNeedsNoSnoop: e.exempt })
    };
    const existed = this.#vm(vm).exists;
    const result = await this.#command({ type: 'put-vm', vmId: VM_IDS[vm] as VmId, arch: ARCHES[vm] as Arch, policy });
    if (result === undefined) return;
    if (existed) this.stats.policyChanges++;
    if (this.#protocol !== 'off') {
      // An admin's change: the VMM hears of it on its stream (#hear), not from this answer.
      this.#vm(vm).exists = true;
      return;
    }
    await this.#act([[vm, result.decision]], () => {
      this.#vm(vm).exists = true;
      return [];
    });
  }

  async #deleteVm(vm: number): Promise<void> {
    const result = await this.#command({ type: 'delete-vm', vmId: VM_IDS[vm] as VmId });
    if (result === undefined) return;
    await this.#act([[vm, result.decision]], () => {
      for (const f of this.#fns) if (f.vm === vm) this.#toHost(f);
      this.#vm(vm).exists = false;
      this.#vm(vm).domains.clear();
      return this.#unmap((p) => p.vm === vm);
    }, result);
  }

  async #putDomain(e: Extract<HostEvent, { t: 'domain' }>): Promise<void> {
    const vm = e.vm % VM_IDS.length;
    const dom = e.dom % DOMAIN_IDS.length;
    const result = await this.#command({ type: 'put-domain', vmId: VM_IDS[vm] as VmId, domainId: DOMAIN_IDS[dom] as DomainId, enforceCacheCoherency: e.coherent });
    if (result === undefined) return;
    // A flip to non-coherent exposes at once: its replay flush comes first (#act), then the flip.
    await this.#act([[vm, result.decision]], () => {
      this.#vm(vm).domains.set(dom, e.coherent);
      return [];
    }, result);
  }

  async #deleteDomain(e: Extract<HostEvent, { t: 'delete-domain' }>): Promise<void> {
    const vm = e.vm % VM_IDS.length;
    const dom = e.dom % DOMAIN_IDS.length;
    const result = await this.#command({ type: 'delete-domain', vmId: VM_IDS[vm] as VmId, domainId: DOMAIN_IDS[dom] as DomainId });
    if (result === undefined) return;
    await this.#act([[vm, result.decision]], () => {
      for (const f of this.#fns) {
        if (f.vm !== vm || f.domain !== dom) continue;
        this.ruleViolations.push(`domain ${DOMAIN_IDS[dom]} of ${VM_IDS[vm]} was removed with ${f.bdf} still attached`);
        f.domain = null;
        f.live = false;
      }
      const domains = this.#vm(vm).domains;
      domains.delete(dom);
      // The last domain unmaps everything (VFIO type1); otherwise only pins that named nothing else.
      return this.#unmap((p) => {
        if (p.vm !== vm) return false;
        if (domains.size === 0) return true;
        if (p.domains === null) return false;
        p.domains = p.domains.filter((d) => d !== dom);
        return p.domains.length === 0;
      });
    }, result);
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
    if (lie === undefined) await this.#drain(f);
    const attach = dom !== null && f.vm !== vm;
    const move = dom !== null && f.vm === vm && f.domain !== dom;
    const result = await this.#command({ type: 'put-device', vmId: VM_IDS[vm] as VmId, device: this.#deviceInput(f, dom, lie) });
    if (result === undefined) return;
    const out = (result.decision as VmmDecision).devctl;
    const needs = await this.#act([[vm, result.decision]], () => {
      f.vm = vm;
      f.domain = dom;
      // New to the VM with a value to write: bus mastering stays off until the VMM wrote it.
      if (dom === null) f.live = false;
      else if (attach) f.live = out === undefined;
      else if (move) f.live = true;
      return [];
    }, result);
    if (out === undefined) return;
    if (attach) this.stats.attachWaits++;
    this.#queueWrite(f, vm, out.hardwareValue, attach, needs);
  }

  async #unassign(f: HostFn): Promise<void> {
    const vm = f.vm;
    if (vm === null) return;
    const result = await this.#command({ type: 'delete-device', vmId: VM_IDS[vm] as VmId, bdf: f.bdf });
    if (result === undefined) return;
    // Back on the host the PF keeps the bit it had; a host-bit event may change it from there.
    await this.#act([[vm, result.decision]], () => {
      this.#toHost(f);
      return [];
    }, result);
  }

  async #devctl(e: Extract<HostEvent, { t: 'devctl' }>): Promise<void> {
    const f = this.#fn(e.fn);
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
    const out = (result.decision as VmmDecision).devctl;
    // An allowed enable replays first (#act): the bit reaches the hardware only after the flush
    // (with the protocol, the write waits for the replay's job and those of `flush.after`).
    const needs = await this.#act([[vm, result.decision]], undefined, result, true);
    if (out === undefined) {
      this.ruleViolations.push(`a devctl decision for ${f.bdf} without a devctl outcome`);
      return;
    }
    this.#queueWrite(f, vm, out.hardwareValue, false, needs);
  }

  async #reset(e: Extract<HostEvent, { t: 'reset' }>): Promise<void> {
    const f = this.#fn(e.fn);
    const vm = f.vm;
    if (vm === null) return;
    const cmd = { type: 'reset-device', vmId: VM_IDS[vm] as VmId, bdf: f.bdf, restoresConfig: e.restoresConfig } as Command;
    const result = await this.#command(cmd);
    if (result === undefined) return;
    if (!e.restoresConfig) this.stats.coldResets++;
    // vfio-pci restores config around its own resets (the bit keeps its value, no DMA meanwhile);
    // a reset that does not restore it leaves a PF's bit at its default 1 (a VF's FLR leaves the PF alone).
    const needs = await this.#act([[vm, result.decision]], () => {
      if (!e.restoresConfig && f.fn === 'pf') this.#setBit(f, DEVCTL_RESET_DEFAULT);
      return [];
    }, result);
    const out = (result.decision as VmmDecision).devctl;
    if (out !== undefined) this.#queueWrite(f, vm, out.hardwareValue, false, needs);
  }

  async #pin(e: Extract<HostEvent, { t: 'pin' }>): Promise<void> {
    const vm = e.vm % VM_IDS.length;
    const vmId = VM_IDS[vm] as VmId;
    const mmio = e.mmio !== null;
    const hpa = mmio ? this.#pages.mmio(e.pages) : this.#pages.ram(e.pages);
    // The host hands the pages over zeroed through the cache: dirty lines, old data in DRAM.
    if (!mmio) for (let p = hpa; p < hpa + e.pages; p++) this.model.hostZero(p, vmId);
    const iova = e.slot * 3;
    const domains = e.doms === null ? null : [...new Set(e.doms.map((d) => d % DOMAIN_IDS.length))];
    const result = await this.#command({
      type: 'pin',
      vmId,
      ranges: [{ iova, pages: e.pages, hpa, mmio, memType: e.mmio ?? 'WB', domains: domains?.map((d) => DOMAIN_IDS[d] as DomainId) ?? null }]
    });
    if (result === undefined) {
      if (!mmio) for (let p = hpa; p < hpa + e.pages; p++) this.#pages.release(p);
      return;
    }
    await this.#act([[vm, result.decision]], () => {
      this.#pins.push({ vm, iova, pages: e.pages, hpa, mmio, domains, probed: new Set() });
      return [];
    }, result);
  }

  async #unpin(e: Extract<HostEvent, { t: 'unpin' }>): Promise<void> {
    const vm = e.vm % VM_IDS.length;
    const mine = this.#pins.filter((p) => p.vm === vm).sort((a, b) => a.iova - b.iova);
    let iova = e.pick % 100;
    let pages = 1 + (e.pick % 3);
    const a = pick(mine, e.pick);
    if (e.how !== 'random' && a !== undefined) {
      iova = a.iova;
      pages = a.pages;
      const b = mine[mine.indexOf(a) + 1];
      if (e.how === 'span' && b !== undefined) pages = b.iova + b.pages - a.iova;
    }
    const result = await this.#command({ type: 'unpin', vmId: VM_IDS[vm] as VmId, ranges: [{ iova, pages }] });
    if (result === undefined) return;
    await this.#act(
      [[vm, result.decision]],
      () => this.#unmap((p) => p.vm === vm && p.iova >= iova && p.iova + p.pages <= iova + pages),
      result
    );
  }

  /** Removes the pins `gone` selects from the IOMMU; they are released once #act has flushed. */
  #unmap(gone: (p: HostPin) => boolean): HostPin[] {
    const out: HostPin[] = [];
    this.#pins = this.#pins.filter((p) => {
      if (!gone(p)) return true;
      out.push(p);
      return false;
    });
    return out;
  }

  #dma(e: Extract<HostEvent, { t: 'dma' }>): void {
    const f = this.#fn(e.fn);
    const pin = pick(this.#reachable(f), e.pick);
    if (pin === undefined || f.vm === null) return;
    const page = pin.hpa + (e.off % pin.pages);
    const noSnoop = e.ns && this.#noSnoops(f);
    const vmId = VM_IDS[f.vm] as VmId;
    if (e.write) this.model.dmaWrite(page, vmId, noSnoop);
    else this.model.dmaRead(page, vmId, noSnoop);
  }

  async #putQuirks(table: number): Promise<void> {
    const quirks = tableOf(table);
    const result = await this.#command({ type: 'put-quirks', quirks });
    if (result === undefined) return;
    this.stats.quirkChanges++;
    const answers = [...(result.vms ?? new Map<VmId, Decision>())].map(([id, d]) => [VM_IDS.indexOf(id), d] as const);
    // The table is the truth about the devices: it takes effect after the replays it causes.
    if (this.#protocol !== 'off') {
      // Each VMM hears of its VM's replay on its stream (#hear) and performs it when it gets to it.
      // Pages the service did not know to be exposed are in those replays, or in jobs told earlier
      // and not performed yet (a domain already exposed gets no new replay).
      this.#switches.push({ table: new QuirkTable(quirks), jobs: [...(result.vmJobIds?.values() ?? []), ...this.#told.keys()] });
      this.#switchQuirks();
      return;
    }
    await this.#act(answers, () => {
      this.#quirks = new QuirkTable(quirks);
      return [];
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
      this.#follow();
      await this.#hear();
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
      const host = devices(this.#fns.filter((f) => f.vm === vm).map((f) => [f.bdf, f.domain === null ? null : (DOMAIN_IDS[f.domain] ?? null)]));
      const held = devices([...(core?.devices.values() ?? [])].map((d) => [d.bdf, d.domainId]));
      if (host !== held) this.ruleViolations.push(`${id}: the service holds devices ${held}, the host has ${host}`);
      const pins: string[] = [];
      core?.pins.forEach((start, pages, hpa) => {
        pins.push(`${start}+${pages}@${hpa}`);
        return undefined;
      });
      const mine = this.#pins.filter((p) => p.vm === vm).map((p) => `${p.iova}+${p.pages}@${p.hpa}`);
      if (JSON.stringify(pins.sort()) !== JSON.stringify(mine.sort())) this.ruleViolations.push(`${id}: the service holds pins ${pins.join(' ')}, the host maps ${mine.join(' ')}`);
    });
    if (this.#fns.some((f) => f.live && f.pf !== null && f.pf.vm !== f.vm)) this.stats.split++;
  }

  /**
   * The strongest reader: every function that can put No-Snoop on the wire reads every page it
   * reaches. The first time it reaches a page, the guest caches it clean and the device
   * overwrites DRAM with No-Snoop: only a flush before release removes that stale line.
   */
  #sweep(): void {
    for (const f of this.#fns) {
      if (f.vm === null || !this.#noSnoops(f)) continue;
      const vmId = VM_IDS[f.vm] as VmId;
      for (const pin of this.#reachable(f)) {
        for (let p = pin.hpa; p < pin.hpa + pin.pages; p++) {
          this.model.dmaRead(p, vmId, true);
          if (pin.probed.has(p)) continue;
          pin.probed.add(p);
          this.stats.probes++;
          this.model.cpuRead(p);
          this.model.dmaWrite(p, vmId, true);
        }
      }
    }
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

function tableOf(index: number): readonly Quirk[] {
  return HOST_QUIRK_TABLES[index % HOST_QUIRK_TABLES.length] ?? [];
}

function pick<T>(list: readonly T[], n: number): T | undefined {
  return list.length === 0 ? undefined : list[n % list.length];
}

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

// ---- generators --------------------------------------------------------------------------------

const vmIdx = fc.nat(VM_IDS.length - 1);
/** d0 and d1 exist from the start; d2 only once an event creates it. */
const domIdx = fc.constantFrom(0, 0, 1, 1, 2);
const fnIdx = fc.nat(FUNCTIONS - 1);
const onEnables = fc.constantFrom<OnEnable>('allow', 'deny', 'allow-needs-nosnoop');
const tableIdx = fc.nat(HOST_QUIRK_TABLES.length - 1);

/** `usual` `weight` times as often as `unusual`. */
function weighted<T>(usual: T, unusual: T, weight = 5): fc.Arbitrary<T> {
  return fc.oneof({ weight, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: fc.constant(unusual) });
}

/** A value one time in three, null otherwise. */
function sometimes<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> {
  return rarely(arb, 3);
}

/** A value one time in `n`, null otherwise. */
function rarely<T>(arb: fc.Arbitrary<T>, n: number): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: 1, arbitrary: arb }, { weight: n - 1, arbitrary: fc.constant(null) });
}

/**
 * PF0 with 2 VFs, PF1 with 1, PF2 with none (FUNCTIONS = 6): kinds, hardwired and unreadable bits,
 * VF reports. `clearBits` favours hosts whose VMMs cleared Enable No Snoop and can read it back
 * (mostly NICs, bits readable, VFs reporting 0 or their PF's bit): their domains start unexposed,
 * so that guests' enables replay pinned pages.
 */
export function topology(clearBits = false): fc.Arbitrary<PfSpec[]> {
  const kinds: FnKind[] = clearBits ? ['nic', 'nic', 'igpu', 'bad'] : ['igpu', 'nic', 'bad'];
  const reports: VfReport[] = clearBits ? ['disabled', 'pf-bit', 'pf-bit', 'unknown'] : ['disabled', 'pf-bit', 'unknown'];
  const pf = (vfs: number): fc.Arbitrary<PfSpec> =>
    fc.record({
      kind: fc.constantFrom<FnKind>(...kinds),
      hardwired: weighted(false, true),
      unreadable: weighted(false, true, clearBits ? 20 : 7),
      // Enable No Snoop resets to 1 and most devices keep it ("NoSnoop+" in lspci).
      bit: clearBits ? weighted<0 | 1>(0, 1, 3) : weighted<0 | 1>(1, 0, 3),
      vfs: fc.array(fc.constantFrom<VfReport>(...reports), { minLength: vfs, maxLength: vfs })
    });
  return fc.tuple(pf(2), pf(1), pf(0)).map((t) => [...t]);
}

export function policyDefaults(mode?: PolicyMode): fc.Arbitrary<PolicyDefaults> {
  return fc.record({ mode: mode === undefined ? fc.constantFrom(...POLICY_MODES) : fc.constant(mode), onEnable: onEnables, exemptNeedsNoSnoop: fc.boolean() });
}

export interface EventWeights {
  readonly restart?: number;
  /** `vmm` events (a VMM performs a flush job it was told of); none by default. */
  readonly vmm?: number;
  /** Guest DEVCTL writes (default 8). */
  readonly devctl?: number;
  /** Functions moved between VMs and domains (default 8). */
  readonly assign?: number;
}

/** Any event, valid or not, weighted towards the ones that make hazards; live policy changes favour `mode`. */
export function hostEvent(mode: PolicyMode, weights: EventWeights = {}): fc.Arbitrary<HostEvent> {
  const modes = fc.oneof({ weight: 3, arbitrary: fc.constant(mode) }, { weight: 2, arbitrary: fc.constantFrom(...POLICY_MODES) });
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ t: fc.constant('vm' as const), vm: vmIdx, mode: sometimes(modes), onEnable: sometimes(onEnables), exempt: sometimes(fc.boolean()) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('delete-vm' as const), vm: vmIdx }) },
    { weight: 5, arbitrary: fc.record({ t: fc.constant('domain' as const), vm: vmIdx, dom: domIdx, coherent: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('delete-domain' as const), vm: vmIdx, dom: domIdx }) },
    { weight: weights.assign ?? 8, arbitrary: fc.record({ t: fc.constant('assign' as const), fn: fnIdx, vm: vmIdx, dom: fc.option(domIdx, { freq: 6, nil: null }) }) }, // null 1 in 6
    { weight: 2, arbitrary: fc.record({ t: fc.constant('unassign' as const), fn: fnIdx }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('host-bit' as const), fn: fnIdx, bit: fc.constantFrom<0 | 1>(0, 1) }) },
    {
      weight: weights.devctl ?? 8,
      arbitrary: fc.record({
        t: fc.constant('devctl' as const),
        fn: fnIdx,
        enable: fc.boolean(),
        dryRun: weighted(false, true, 4),
        value: sometimes(fc.constantFrom(0x2010, 0x0010, 0x20f0, 0xa010, 0x2210))
      })
    },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('reset' as const), fn: fnIdx, restoresConfig: fc.boolean() }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('hw-write' as const), pick: fc.nat() }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('confirm' as const), fn: fnIdx }) },
    {
      weight: 12,
      arbitrary: fc.record({
        t: fc.constant('pin' as const),
        vm: vmIdx,
        slot: fc.nat(31),
        pages: fc.integer({ min: 1, max: 4 }),
        doms: rarely(fc.uniqueArray(domIdx, { minLength: 1, maxLength: 2 }), 3),
        mmio: rarely(fc.constantFrom<MemType>('WB', 'UC', 'WC', 'UC-', 'WT'), 6)
      })
    },
    { weight: 5, arbitrary: fc.record({ t: fc.constant('unpin' as const), vm: vmIdx, pick: fc.nat(), how: fc.constantFrom<'exact' | 'span' | 'random'>('exact', 'exact', 'span', 'random') }) },
    { weight: 6, arbitrary: fc.record({ t: fc.constant('dma' as const), fn: fnIdx, pick: fc.nat(), off: fc.nat(3), write: fc.boolean(), ns: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('cpu' as const), vm: vmIdx, pick: fc.nat(), off: fc.nat(3), write: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('evict' as const), page: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('quirks' as const), table: tableIdx }) },
    { weight: weights.restart ?? 1, arbitrary: fc.record({ t: fc.constant('restart' as const), defaults: policyDefaults(), table: tableIdx }) },
    ...(weights.vmm === undefined ? [] : [{ weight: weights.vmm, arbitrary: fc.record({ t: fc.constant('vmm' as const), pick: fc.nat() }) }])
  );
}

/**
 * A host whose VMs (up to three) start in `mode` (by the server defaults or explicitly), each with
 * a non-coherent d0 and a d1 of either kind, and most functions already assigned somewhere (a VF
 * half the time in its PF's VM, otherwise anywhere), then random events.
 */
export function hostScenario(mode: PolicyMode, options: { maxLength?: number; clearBits?: boolean; onEnable?: OnEnable } & EventWeights = {}): fc.Arbitrary<Scenario> {
  const onEnable = options.onEnable === undefined ? sometimes(onEnables) : fc.constant(options.onEnable);
  const vmSetup = fc.record({ explicit: fc.boolean(), onEnable, exempt: sometimes(fc.boolean()), coherent: fc.boolean() });
  // On the host 1 in 4; a VF with `withPf` goes to its PF's VM.
  const placement = fc.option(fc.record({ vm: vmIdx, dom: fc.nat(1), withPf: fc.boolean() }), { freq: 4, nil: null });
  return fc
    .record({
      pfs: topology(options.clearBits),
      config: fc.record({ defaults: policyDefaults(mode), table: tableIdx }),
      // Lengths may shrink to nothing, so a counterexample keeps only the events it needs.
      vms: fc.array(vmSetup, { minLength: 1, maxLength: VM_IDS.length, size: 'max' }),
      placements: fc.array(placement, { maxLength: FUNCTIONS, size: 'max' }).map((ps) => (options.clearBits === true ? ps.map((p) => (p === null ? null : { ...p, withPf: true })) : ps)),
      tail: fc.array(hostEvent(mode, options), { maxLength: options.maxLength ?? 300, size: 'max' })
    })
    .map(({ pfs, config, vms, placements, tail }) => {
      const head: HostEvent[] = [];
      vms.forEach((v, vm) => {
        head.push({ t: 'vm', vm, mode: v.explicit ? mode : null, onEnable: v.onEnable, exempt: v.exempt });
        head.push({ t: 'domain', vm, dom: 0, coherent: false }, { t: 'domain', vm, dom: 1, coherent: v.coherent });
      });
      // Functions are numbered PF first, then its VFs (HostSimulation's constructor).
      let pfVm: number | null = null;
      let fn = 0;
      for (const pf of pfs) {
        for (let i = 0; i <= pf.vfs.length; i++, fn++) {
          const p = placements[fn] ?? null;
          const vm: number | null = p === null ? null : i > 0 && p.withPf && pfVm !== null ? pfVm : p.vm;
          if (i === 0) pfVm = vm;
          if (p !== null && vm !== null) head.push({ t: 'assign', fn, vm, dom: p.dom });
        }
      }
      return { pfs, config, events: [...head, ...tail] };
    });
}

/**
 * For the VMM protocol: hosts where guests' enables replay pinned pages. Up to three VMs in trap
 * mode that allow enables, non-coherent domains, every PF with its VFs in one VM and domain, bits
 * mostly clear and readable (so domains start unexposed and pages are pinned without a flush),
 * then random events rich in DEVCTL writes and in `vmm` events (a VMM performing a job late).
 */
export function protocolScenario(maxLength = 150): fc.Arbitrary<Scenario> {
  return fc
    .record({
      pfs: topology(true),
      config: fc.record({ defaults: policyDefaults('trap'), table: tableIdx }),
      // Often one VM with every PF in d0: two guests' enables then meet in one domain.
      vms: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: VM_IDS.length })),
      groups: fc.array(fc.record({ vm: vmIdx, dom: fc.oneof(fc.constant(0), fc.nat(1)) }), { minLength: 3, maxLength: 3 }),
      tail: fc.array(hostEvent('trap', { vmm: 5, devctl: 24, assign: 1, restart: 2 }), { maxLength, size: 'max' })
    })
    .map(({ pfs, config, vms, groups, tail }) => {
      const head: HostEvent[] = [];
      for (let vm = 0; vm < vms; vm++) {
        head.push({ t: 'vm', vm, mode: 'trap', onEnable: 'allow', exempt: null });
        head.push({ t: 'domain', vm, dom: 0, coherent: false }, { t: 'domain', vm, dom: 1, coherent: false });
      }
      let fn = 0;
      pfs.forEach((pf, p) => {
        const g = groups[p] as { vm: number; dom: number };
        for (let i = 0; i <= pf.vfs.length; i++, fn++) head.push({ t: 'assign', fn, vm: g.vm % vms, dom: g.dom });
      });
      // Pages pinned before any enable: an allowed enable replays them.
      for (let vm = 0; vm < vms; vm++) for (const slot of [20, 24]) head.push({ t: 'pin', vm, slot, pages: 2, doms: null, mmio: null });
      return { pfs, config, events: [...head, ...tail] };
    });
}
