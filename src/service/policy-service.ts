/**
 * The shell around the decision core: owns the state, stamps commands with the time, and
 * answers the read-only questions. One writer at a time is guaranteed by JavaScript itself:
 * every command runs to completion synchronously.
 */
import {
  applyCommand,
  createState,
  getVm,
  listPins,
  mustFlush,
  viewVm,
  type CoherencyState,
  type Command,
  type CommandResult,
  type FlushQueryAnswer,
  type FlushQueryRange,
  type PinnedRangeView,
  type PolicyDefaults,
  type Quirk,
  type VmId,
  type VmView
} from '../domain/index.js';

export interface PolicyServiceOptions {
  readonly defaults: PolicyDefaults;
  readonly quirks: readonly Quirk[];
  /** Milliseconds since the epoch; injectable for tests. */
  readonly clock?: () => number;
}

export class PolicyService {
  readonly state: CoherencyState;
  readonly #clock: () => number;

  constructor(options: PolicyServiceOptions) {
    this.state = createState(options.defaults, options.quirks);
    this.#clock = options.clock ?? Date.now;
  }

  get defaults(): PolicyDefaults {
    return this.state.defaults;
  }

  apply(cmd: Command): CommandResult {
    return applyCommand(this.state, cmd, this.#clock());
  }

  mustFlush(vmId: VmId, op: 'map' | 'unmap', ranges: readonly FlushQueryRange[]): FlushQueryAnswer {
    return mustFlush(this.state, vmId, op, ranges);
  }

  vm(vmId: VmId): VmView {
    return viewVm(this.state, getVm(this.state, vmId));
  }

  /** VMs in id order, after `after` (exclusive), at most `limit`. */
  listVms(after: string | undefined, limit: number): VmView[] {
    const ids = [...this.state.vms.keys()].sort();
    const start = after === undefined ? 0 : ids.findIndex((id) => id > after);
    if (start < 0) return [];
    return ids.slice(start, start + limit).map((id) => viewVm(this.state, getVm(this.state, id)));
  }

  pins(vmId: VmId, fromPage: number, limit: number): PinnedRangeView[] {
    return listPins(getVm(this.state, vmId), fromPage, limit);
  }

  quirks(): readonly Quirk[] {
    return this.state.quirks.quirks;
  }
}
