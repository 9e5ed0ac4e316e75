/**
 * A small harness over the decision core: one state, ids parsed once, commands by name.
 */
import {
  applyCommand,
  createState,
  DEFAULT_POLICY,
  defaultQuirksFile,
  getVm,
  listPins,
  parseDomainId,
  parsePciAddress,
  parseQuirkFile,
  parseVmId,
  type Arch,
  type ChangeResult,
  type CoherencyState,
  type Command,
  type CommandResult,
  type Decision,
  type DeviceInput,
  type DevctlWrite,
  type MemType,
  type NoSnoopState,
  type PinInput,
  type PolicyInput,
  type Quirk
} from '../../src/domain/index.js';

export const IGPU = { vendorId: 0x8086, deviceId: 0x9a49 } as const; // needs-nosnoop by default
export const NIC = { vendorId: 0x15b3, deviceId: 0x1017 } as const;

export const GiB = 2 ** 30 / 4096; // pages
export const MiB2 = 512; // 2 MiB in pages

export interface DeviceOptions {
  domain?: string | null;
  nosnoop?: NoSnoopState;
  fn?: 'pf' | 'vf';
  physfn?: string;
  kind?: { vendorId: number; deviceId: number };
  pci?: boolean;
}

export interface PinOptions {
  hpa?: number;
  memType?: MemType;
  mmio?: boolean;
  domains?: string[];
}

export class Core {
  readonly state: CoherencyState;
  readonly vm = parseVmId('vm1');
  #now = 1_000;

  constructor(quirks: readonly Quirk[] = parseQuirkFile(defaultQuirksFile)) {
    this.state = createState(DEFAULT_POLICY, quirks);
  }

  static withVm(policy: PolicyInput = {}, arch: Arch = 'x86_64'): Core {
    const core = new Core();
    core.putVm(policy, arch);
    return core;
  }

  run(cmd: Command): CommandResult {
    return applyCommand(this.state, cmd, ++this.#now);
  }

  /** Applies `cmd` as change `revision` of a log: the core numbers what it changes and reports its effects. */
  runAs(cmd: Command, revision: number): ChangeResult {
    return applyCommand(this.state, cmd, ++this.#now, { revision });
  }

  putVm(policy: PolicyInput = {}, arch: Arch = 'x86_64'): Decision {
    return this.run({ type: 'put-vm', vmId: this.vm, arch, policy }).decision;
  }

  domain(id: string, coherent: boolean): Decision {
    return this.run({ type: 'put-domain', vmId: this.vm, domainId: parseDomainId(id), enforceCacheCoherency: coherent }).decision;
  }

  deleteDomain(id: string): Decision {
    return this.run({ type: 'delete-domain', vmId: this.vm, domainId: parseDomainId(id) }).decision;
  }

  device(bdf: string, o: DeviceOptions = {}): Decision {
    const input: DeviceInput = {
      bdf: parsePciAddress(bdf),
      domainId: o.domain === null ? null : parseDomainId(o.domain ?? 'd0'),
      ...(o.kind ?? NIC),
      function: o.fn ?? 'pf',
      physfn: o.physfn === undefined ? null : parsePciAddress(o.physfn),
      nosnoop: o.nosnoop ?? 'disabled',
      pci: o.pci ?? true
    };
    return this.run({ type: 'put-device', vmId: this.vm, device: input }).decision;
  }

  deleteDevice(bdf: string): Decision {
    return this.run({ type: 'delete-device', vmId: this.vm, bdf: parsePciAddress(bdf) }).decision;
  }

  /** R1; `restoresConfig` false is a reset that does not restore config space (the bit returns to 1). */
  reset(bdf: string, restoresConfig?: boolean): Decision {
    return this.run({ type: 'reset-device', vmId: this.vm, bdf: parsePciAddress(bdf), ...(restoresConfig === undefined ? {} : { restoresConfig }) }).decision;
  }

  devctl(bdf: string, write: DevctlWrite, dryRun = false): Decision {
    return this.run({ type: 'devctl', vmId: this.vm, bdf: parsePciAddress(bdf), write, dryRun }).decision;
  }

  pin(iova: number, pages: number, o: PinOptions = {}): Decision {
    return this.pinBatch([{ iova, pages, ...o }]);
  }

  pinBatch(ranges: (PinOptions & { iova: number; pages: number })[]): Decision {
    const input: PinInput[] = ranges.map((r) => ({
      iova: r.iova,
      pages: r.pages,
      hpa: r.hpa ?? 0x100000 + r.iova,
      memType: r.memType ?? 'WB',
      mmio: r.mmio ?? false,
      domains: r.domains === undefined ? null : r.domains.map((d) => parseDomainId(d))
    }));
    return this.run({ type: 'pin', vmId: this.vm, ranges: input }).decision;
  }

  unpin(iova: number, pages: number): Decision {
    return this.run({ type: 'unpin', vmId: this.vm, ranges: [{ iova, pages }] }).decision;
  }

  deleteVm(): Decision {
    return this.run({ type: 'delete-vm', vmId: this.vm }).decision;
  }

  /** flushOnUnpin of the pinned range at `iova`. */
  flagged(iova: number): boolean | undefined {
    return listPins(getVm(this.state, this.vm), iova, 1).find((r) => r.iova === iova)?.flushOnUnpin;
  }
}

export function rules(decision: Decision): string[] {
  return decision.reasons.map((r) => r.rule);
}
