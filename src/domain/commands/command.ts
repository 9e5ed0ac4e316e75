/**
 * The commands the core accepts, and what applying one answers. Commands are the only way state
 * changes (see index.ts for where each rule lives).
 */
import type { Decision } from '../decision.js';
import type { DevctlWrite } from '../devctl.js';
import type { DomainId, PciAddress, VmId } from '../ids.js';
import type { Arch, PolicyInput } from '../policy.js';
import type { Quirk } from '../quirks.js';
import type { CoherencyState, MemType, NoSnoopState } from '../state.js';

export interface PinInput {
  readonly iova: number;
  readonly pages: number;
  readonly hpa: number;
  readonly memType?: MemType;
  readonly mmio?: boolean;
  /** The domains the range maps into; absent or null: every domain of the VM. */
  readonly domains?: readonly DomainId[] | null;
}

export interface RangeInput {
  readonly iova: number;
  readonly pages: number;
}

export interface DeviceInput {
  readonly bdf: PciAddress;
  readonly domainId: DomainId | null;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly function: 'pf' | 'vf';
  readonly physfn?: PciAddress | null;
  readonly nosnoop: NoSnoopState;
  readonly pci?: boolean;
  readonly devctl?: number;
}

export type Command =
  | { readonly type: 'put-vm'; readonly vmId: VmId; readonly arch: Arch; readonly policy?: PolicyInput }
  | { readonly type: 'delete-vm'; readonly vmId: VmId }
  | { readonly type: 'put-domain'; readonly vmId: VmId; readonly domainId: DomainId; readonly enforceCacheCoherency: boolean; readonly iommu?: string | null }
  | { readonly type: 'delete-domain'; readonly vmId: VmId; readonly domainId: DomainId }
  | { readonly type: 'put-device'; readonly vmId: VmId; readonly device: DeviceInput }
  | { readonly type: 'delete-device'; readonly vmId: VmId; readonly bdf: PciAddress }
  | {
      readonly type: 'reset-device';
      readonly vmId: VmId;
      readonly bdf: PciAddress;
      /** vfio-pci saves and restores config space around every reset it performs: true (the default). */
      readonly restoresConfig?: boolean;
    }
  | { readonly type: 'pin'; readonly vmId: VmId; readonly ranges: readonly PinInput[] }
  | { readonly type: 'unpin'; readonly vmId: VmId; readonly ranges: readonly RangeInput[] }
  | { readonly type: 'devctl'; readonly vmId: VmId; readonly bdf: PciAddress; readonly write: DevctlWrite; readonly dryRun?: boolean }
  | {
      readonly type: 'put-quirks';
      readonly quirks: readonly Quirk[];
      /**
       * True (POST /v1/quirks): `quirks` are merged into the list in force when the change is
       * applied (mergeQuirks), not read before it, so concurrent merges, on any replica, all
       * keep their entries. Absent: `quirks` replace the list.
       */
      readonly merge?: boolean;
    };

export interface CommandResult {
  readonly state: CoherencyState;
  /** The decision for the VM the command names (for put-quirks: an empty decision, see `vms`). */
  readonly decision: Decision;
  /** put-quirks: the decision for every VM the change affected. */
  readonly vms?: ReadonlyMap<VmId, Decision>;
  /** put-quirks: the quirk list the change put in force (with `merge`, the list merged into). */
  readonly quirks?: readonly Quirk[];
  /** put-vm, put-domain, put-device: whether the resource was created. */
  readonly created?: boolean;
  /** delete-vm: the VM's last revision, since it is no longer in the state. */
  readonly revision?: number;
}
