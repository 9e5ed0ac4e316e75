/**
 * Every job remembered here, by id and by VM: from the moment it is promised (an id handed out)
 * until it is forgotten (job-retention.ts). Jobs not planned yet are counted (the queue that
 * backpressure bounds), and whoever waits for one to be planned is told here.
 */
import type { FlushCause, VmId } from '../domain/index.js';
import { deferred, type Deferred } from './deferred.js';
import { acksOf, isAcknowledged, isSettled, type FlushAcks, type FlushJob } from './flush-job.js';
import { VmJobIndex } from './vm-job-index.js';

export class JobRegistry {
  /** The acknowledgement mode of this process, for records that name none. */
  readonly #acks: FlushAcks;
  /** In the order they were promised: the oldest are forgotten first. */
  readonly #jobs = new Map<string, FlushJob>();
  readonly #vms = new VmJobIndex((id) => this.#jobs.get(id));
  /** Jobs another replica promised (adopt): their records are that replica's to keep. */
  readonly #remote = new Set<string>();
  /** Waiters for jobs not planned yet, by job id. */
  readonly #planned = new Map<string, Deferred<FlushJob>>();
  #pending = 0;
  /**
   * Jobs in the `pending` state (planned, waiting for their VMM's ack), of any VM, deleted ones'
   * too, but not other replicas' (each job counts on the replica that promised it, so that a sum
   * over replicas counts it once).
   */
  #awaitingAck = 0;

  constructor(acks: FlushAcks) {
    this.#acks = acks;
  }

  get(id: string): FlushJob | undefined {
    return this.#jobs.get(id);
  }

  has(id: string): boolean {
    return this.#jobs.has(id);
  }

  get size(): number {
    return this.#jobs.size;
  }

  /** Every job, oldest first; one may be forgotten while this is read. */
  entries(): IterableIterator<[string, FlushJob]> {
    return this.#jobs.entries();
  }

  /** Jobs queued or running. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Planned jobs this replica promised waiting for their VMM's acknowledgement, of every VM:
   * unlike `unacknowledged` (what backpressure counts per VM), those of deleted VMs too, which
   * their VMM still acknowledges.
   */
  get awaitingAck(): number {
    return this.#awaitingAck;
  }

  /** A job promised now: listed, open, and to be planned. */
  register(job: FlushJob): void {
    this.#jobs.set(job.id, job);
    this.#vms.add(job, true);
    this.#planned.set(job.id, deferred());
    this.#pending++;
  }

  /** A job planned before a restart, back as it was (a pending one still waiting for its VMM). */
  restore(job: FlushJob): void {
    if (job.state === 'pending') this.countPending(job, 1);
    this.#jobs.set(job.id, job);
    this.#vms.add(job, !isSettled(job));
  }

  /** Forgets a job nobody was told of (its change was not kept). */
  unregister(job: FlushJob): void {
    this.#jobs.delete(job.id);
    this.#vms.withdraw(job);
    this.#pending--;
    this.#planned.delete(job.id);
  }

  /** The job is planned: no longer queued, and pending its acknowledgement where one is due. */
  landed(job: FlushJob): void {
    this.#pending--;
    if (job.state === 'pending') this.countPending(job, 1);
  }

  /** Tells whoever waits for the job that it is planned. */
  release(job: FlushJob): void {
    this.#planned.get(job.id)?.resolve(job);
    this.#planned.delete(job.id);
  }

  /** Resolves once the job (registered, not planned yet) is planned. */
  whenPlanned(id: string): Promise<FlushJob> {
    return (this.#planned.get(id) as Deferred<FlushJob>).promise;
  }

  /** Drops a settled job (its tombstone is retention's). */
  forget(job: FlushJob): void {
    this.#jobs.delete(job.id);
    this.#remote.delete(job.id);
    this.#vms.forget(job);
  }

  /** A VM's jobs, oldest first, starting after job `afterId` (exclusive). */
  list(vmId: VmId, afterId: string | undefined, limit: number): FlushJob[] {
    const ids = this.#vms.ids(vmId);
    const at = afterId === undefined ? -1 : ids.indexOf(afterId);
    // A cursor naming a job already forgotten ends the listing rather than starting it over.
    if (afterId !== undefined && at < 0) return [];
    return ids.slice(at + 1, at + 1 + limit).flatMap((id) => this.#jobs.get(id) ?? []);
  }

  /** Jobs of a VM not finished yet, oldest first. */
  open(vmId: VmId): FlushJob[] {
    return this.#vms.open(vmId);
  }

  /**
   * Jobs of a VM whose flush the service cannot count as done: not acknowledged by the VMM yet
   * (none of those promised where acks are not required: they count as done once answered), of
   * `cause` if given.
   */
  outstanding(vmId: VmId, cause?: FlushCause): FlushJob[] {
    return this.open(vmId).filter((job) => acksOf(job, this.#acks) === 'required' && !isAcknowledged(job) && job.coveredBy === undefined && (cause === undefined || job.cause === cause));
  }

  /** Counts a job entering (+1) or leaving (-1) the `pending` state. */
  countPending(job: FlushJob, delta: 1 | -1): void {
    // A job is marked remote before it is registered or restored, and stays so until forgotten.
    if (!this.#remote.has(job.id)) this.#awaitingAck += delta;
    this.#vms.countPending(job, delta);
  }

  /** Planned jobs of a VM still waiting for their acknowledgement. */
  unacknowledged(vmId: VmId): number {
    return this.#vms.unacknowledged(vmId);
  }

  /** The VM is gone: its listing starts afresh (see VmJobIndex.detach). */
  detach(vmId: VmId): void {
    this.#vms.detach(vmId);
  }

  /** The job's record is another replica's to keep. */
  markRemote(id: string): void {
    this.#remote.add(id);
  }

  isRemote(id: string): boolean {
    return this.#remote.has(id);
  }

  /** Jobs other replicas promised that are still outstanding here. */
  remoteOutstanding(): string[] {
    const ids: string[] = [];
    for (const id of this.#remote) {
      const job = this.#jobs.get(id);
      if (job !== undefined && !isSettled(job) && !isAcknowledged(job)) ids.push(id);
    }
    return ids;
  }
}
