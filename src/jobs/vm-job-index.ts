/**
 * The jobs of each VM: every one still remembered, in the order they were promised (what GET
 * lists, paged by job id), those that may be open, and how many await their VMM's
 * acknowledgement (what backpressure counts). A VM's jobs are read per VM on every change to it,
 * so none of this is found by scanning all jobs.
 */
import type { VmId } from '../domain/index.js';
import { isSettled, type FlushJob } from './flush-job.js';

export class VmJobIndex {
  /** The job of an id, while it is remembered. */
  readonly #lookup: (id: string) => FlushJob | undefined;
  readonly #byVm = new Map<VmId, string[]>();
  /** Per VM, the ids of its jobs that may not be finished yet (a superset: `open` prunes it). */
  readonly #openByVm = new Map<VmId, Set<string>>();
  /** Per VM, its planned jobs still waiting for their acknowledgement. */
  readonly #pendingByVm = new Map<VmId, number>();
  /** Open jobs of VMs deleted since (see `detach`): listed and counted for no VM. */
  readonly #detached = new Set<string>();

  constructor(lookup: (id: string) => FlushJob | undefined) {
    this.#lookup = lookup;
  }

  /** Lists the job under its VM, and as open unless `open` is false (it is settled already). */
  add(job: FlushJob, open: boolean): void {
    let list = this.#byVm.get(job.vmId);
    if (list === undefined) {
      list = [];
      this.#byVm.set(job.vmId, list);
    }
    list.push(job.id);
    if (!open) return;
    let ids = this.#openByVm.get(job.vmId);
    if (ids === undefined) {
      ids = new Set();
      this.#openByVm.set(job.vmId, ids);
    }
    ids.add(job.id);
  }

  /** The ids of a VM's jobs, oldest first. */
  ids(vmId: VmId): readonly string[] {
    return this.#byVm.get(vmId) ?? [];
  }

  /** Jobs of a VM not finished yet, oldest first (those found finished since are dropped from the set here). */
  open(vmId: VmId): FlushJob[] {
    const ids = this.#openByVm.get(vmId);
    if (ids === undefined) return [];
    const jobs: FlushJob[] = [];
    for (const id of ids) {
      const job = this.#lookup(id);
      if (job === undefined || isSettled(job)) ids.delete(id);
      else jobs.push(job);
    }
    if (ids.size === 0) this.#openByVm.delete(vmId);
    return jobs;
  }

  /** Counts a job entering (+1) or leaving (-1) the `pending` state. */
  countPending(job: FlushJob, delta: 1 | -1): void {
    if (this.#detached.has(job.id)) return;
    const n = (this.#pendingByVm.get(job.vmId) ?? 0) + delta;
    if (n <= 0) this.#pendingByVm.delete(job.vmId);
    else this.#pendingByVm.set(job.vmId, n);
  }

  /** Planned jobs of a VM still waiting for their acknowledgement. */
  unacknowledged(vmId: VmId): number {
    return this.#pendingByVm.get(vmId) ?? 0;
  }

  /**
   * The VM is gone: what is still open of it (the teardown's own flush) stays the VMM's to
   * perform and acknowledge by id, but no longer counts for a VM made again under its id.
   */
  detach(vmId: VmId): void {
    for (const id of this.#byVm.get(vmId) ?? []) {
      const job = this.#lookup(id);
      if (job === undefined || isSettled(job) || job.coveredBy !== undefined) continue;
      if (job.state === 'pending') this.countPending(job, -1);
      this.#detached.add(id);
    }
    this.#byVm.delete(vmId);
    this.#openByVm.delete(vmId);
  }

  /** Drops a job nobody was told of (its change was not kept). */
  withdraw(job: FlushJob): void {
    this.#openByVm.get(job.vmId)?.delete(job.id);
    this.#unlist(job, this.#byVm.get(job.vmId)?.lastIndexOf(job.id));
  }

  /** Drops a settled job from its VM's listing (it is forgotten). */
  forget(job: FlushJob): void {
    this.#detached.delete(job.id);
    this.#unlist(job, this.#byVm.get(job.vmId)?.indexOf(job.id));
  }

  #unlist(job: FlushJob, at: number | undefined): void {
    const list = this.#byVm.get(job.vmId);
    if (list === undefined || at === undefined) return;
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.#byVm.delete(job.vmId);
  }
}
