/**
 * A change decided: the core's result under the next sequence number, the flush jobs promised
 * for its decisions, what each VM's stream is told, and what the store keeps. Both commits
 * decide through here (the embedded one at once, the replicated one inside its transaction).
 */
import { flushPairs, flushRangeCount, waitsForReplays, type Command, type CommandResult, type Decision, type Vm, type VmId } from '../domain/index.js';
import type { FlushJobs, JobHeader } from '../jobs/flush-jobs.js';
import { AuditFolder, type StoredChange, type StoredJobPart } from '../store/state-store.js';
import { decideChange } from './change.js';
import type { Ledger } from './ledger.js';
import { withCovered } from './obligations.js';
import type { VmEventInput } from './vm-events.js';

/** A change waiting to be decided and kept. */
export interface PendingChange {
  readonly cmd: Command;
  readonly at: number;
  readonly actor: string;
}

/** A change decided: its result, sequence number, promised flushes, events, and what is stored. */
export interface Decided {
  readonly result: CommandResult;
  readonly seq: number;
  readonly reserved: Reservation[];
  readonly told: VmEventInput[];
  readonly change: StoredChange;
  /** Outstanding flush jobs of the VM its own flush covers (a teardown): settled once it is kept. */
  readonly covered: readonly string[];
}

/** A flush promised to a job before its change is durable. */
export interface Reservation {
  readonly id: string;
  readonly vmId: VmId;
  readonly header: JobHeader;
  /** This decision's flush, (hpa, pages) pairs, and their pages. */
  readonly pairs: Float64Array;
  readonly pages: number;
}

export class Decider {
  readonly #ledger: Ledger;
  readonly #jobs: FlushJobs | undefined;
  /** Chooses each change's audit record: its own, or its VM's fold window's summary. */
  readonly audit: AuditFolder;

  constructor(ledger: Ledger, jobs: FlushJobs | undefined, audit = new AuditFolder()) {
    this.#ledger = ledger;
    this.#jobs = jobs;
    this.audit = audit;
  }

  /**
   * Decides `p.cmd` on the current state under the next sequence number (`given` by a shared
   * store, unique across replicas), promising its flushes to jobs. `publish`: the change's
   * events go to the store too, for the other replicas' subscribers.
   */
  decide(p: PendingChange, publish: boolean, given?: number): Decided {
    const { cmd, at, actor } = p;
    const state = this.#ledger.state;
    // Teardown removes the VM: how it flushes is read before it is gone.
    const before = cmd.type === 'put-quirks' ? undefined : state.vms.get(cmd.vmId);
    const seq = given ?? this.#ledger.seq + 1;
    const decided = decideChange(state, cmd, at, seq);
    this.#ledger.advance(seq);
    let result = decided.result;
    // A teardown (the VM deleted, or its last domain removed) flushes, with its own flush, the
    // ranges of every flush of the VM still outstanding: those are settled once it is kept.
    let covered: string[] = [];
    if (this.#jobs !== undefined && (cmd.type === 'delete-vm' || (cmd.type === 'delete-domain' && state.vms.get(cmd.vmId)?.domains.size === 0))) {
      const outstanding = this.#jobs.outstandingPairs(cmd.vmId);
      if (outstanding.ids.length > 0) {
        result = { ...result, decision: withCovered(result.decision, outstanding.pairs, outstanding.ids.length) };
        covered = outstanding.ids;
      }
    }
    for (const e of decided.effects) this.#ledger.known.set(e.vmId, seq);
    const reserved = this.#reserve(cmd, result, before);
    const told = this.#eventsOf(cmd, result, seq, actor, reserved);
    const events = publish ? told.map((e) => ({ vmId: e.vmId, body: JSON.stringify(e) })) : undefined;
    const audit = this.audit.record(cmd, seq, at, actor, rulesOf(result));
    return {
      result,
      seq,
      reserved,
      told,
      covered,
      change: {
        seq,
        at,
        command: audit.command,
        ...(audit.auditSeq === undefined ? {} : { auditSeq: audit.auditSeq }),
        effects: decided.effects,
        jobs: reserved.map(jobPart),
        actor,
        rules: audit.rules,
        ...(events === undefined ? {} : { events })
      }
    };
  }

  /** A decided change that will not be kept: its promised jobs are dropped. */
  cancel(d: Decided): void {
    for (const r of d.reserved) this.#jobs?.cancel(r.id);
    // Its audit record may be a fold window's summary, which the store did not update.
    if (d.change.auditSeq !== undefined && 'vmId' in d.change.command) this.audit.forget(d.change.command.vmId);
  }

  /**
   * The outstanding flush jobs a decision about VM `vmId` depends on (`flush.after`): every
   * replay (F2) of the VM not acknowledged yet, whichever answer, caller or replica it came from,
   * when the change (`cmd`, when there is one) leaves a domain of the VM exposed
   * (waitsForReplays, one rule for changes, dry runs, map questions and ?wait=true). The
   * decision's own job (`own`) is not among them: its answer already says to flush first. Empty
   * for a VM no longer there, and for flushes promised where they count as done once answered
   * (FLUSH_ACKS=answered).
   */
  dependencies(vmId: VmId, decision: Decision, own?: string, cmd?: Command): string[] {
    const outstanding = this.#jobs?.outstanding(vmId, 'replay') ?? [];
    if (outstanding.length === 0) return [];
    const state = this.#ledger.state;
    const vm = state.vms.get(vmId);
    if (vm === undefined || !waitsForReplays(vm, state.quirks, decision, cmd)) return [];
    return outstanding.flatMap((job) => (job.id === own ? [] : [job.id]));
  }

  /** Promises each required flush of the command's decisions to a job (kept with the change). */
  #reserve(cmd: Command, result: CommandResult, before: Vm | undefined): Reservation[] {
    const jobs = this.#jobs;
    if (jobs === undefined) return [];
    const state = this.#ledger.state;
    const decisions: [Vm | undefined, Decision][] =
      cmd.type === 'put-quirks' ? [...(result.vms ?? new Map<VmId, Decision>())].map(([vmId, d]) => [state.vms.get(vmId), d]) : [[state.vms.get(cmd.vmId) ?? before, result.decision]];
    const out: Reservation[] = [];
    for (const [vm, decision] of decisions) {
      const flush = decision.flush;
      if (vm === undefined || !flush.required || flush.cause === null || flushRangeCount(flush) === 0) continue;
      const { id, header } = jobs.reserve(vm.id, vm.arch, vm.policy, flush.cause, flush.pages);
      out.push({ id, vmId: vm.id, header, pairs: flushPairs(flush), pages: flush.pages });
    }
    return out;
  }

  /**
   * What a change tells each VM's stream: its decision (`decision`, `policy` or `deleted`) with
   * the job carrying its flush and the outstanding jobs it depends on (`flush.after`).
   */
  #eventsOf(cmd: Command, result: CommandResult, seq: number, actor: string, reserved: readonly Reservation[]): VmEventInput[] {
    const jobOf = (vmId: VmId): { jobId?: string } => {
      const r = reserved.find((x) => x.vmId === vmId);
      return r === undefined ? {} : { jobId: r.id };
    };
    if (cmd.type === 'put-quirks') {
      return [...(result.vms ?? new Map<VmId, Decision>())].map(([vmId, decision]) => {
        const job = jobOf(vmId);
        const after = this.dependencies(vmId, decision, job.jobId);
        return { type: 'decision', vmId, revision: seq, command: cmd.type, actor, decision, ...job, ...(after.length === 0 ? {} : { after }) };
      });
    }
    if (this.#ledger.state.vms.get(cmd.vmId) === undefined && cmd.type !== 'delete-vm') return [];
    const job = jobOf(cmd.vmId);
    const after = this.dependencies(cmd.vmId, result.decision, job.jobId, cmd);
    const told = { vmId: cmd.vmId, revision: seq, actor, decision: result.decision, ...job, ...(after.length === 0 ? {} : { after }) };
    if (cmd.type === 'delete-vm') return [{ type: 'deleted', ...told }];
    if (cmd.type === 'put-vm') return [{ type: 'policy', ...told }];
    return [{ type: 'decision', ...told, command: cmd.type }];
  }
}

/** The rule ids a command's decisions named, once each, for the audit trail. */
function rulesOf(result: CommandResult): string[] {
  const rules = new Set(result.decision.reasons.map((r) => r.rule));
  for (const d of result.vms?.values() ?? []) for (const r of d.reasons) rules.add(r.rule);
  return [...rules];
}

/** A reservation as stored with its change: the job's header and this decision's ranges. */
function jobPart(r: Reservation): StoredJobPart {
  return { id: r.id, vmId: r.vmId, header: JSON.stringify(r.header), pairs: r.pairs };
}
