/**
 * What a replay counts: the commands sent and rejected, what each decision demanded flushed and
 * what that would cost, the DEVCTL outcomes, and every hazard the hardware model saw. Flushes are
 * counted as decided, whether or not the VMM gets to perform them (a dropped flush still costs).
 */
import {
  coalescePairs,
  flushPairs,
  planFlush,
  type Arch,
  type Decision,
  type FlushCause,
  type Policy,
  type PolicyMode,
  type VmId
} from '../domain/index.js';

/** Flush chunk used for pricing, as the flush jobs use. */
const CHUNK_PAGES = 262_144;
const PAGE = 4096;
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

export class ReplayReport {
  #event = 0;
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

  /** 1-based index of the trace event being replayed. */
  get event(): number {
    return this.#event;
  }

  /** Moves on to the next trace event; returns its index. */
  nextEvent(): number {
    return ++this.#event;
  }

  command(): void {
    this.#commands++;
  }

  rejected(code: string): void {
    this.#rejected[code] = (this.#rejected[code] ?? 0) + 1;
  }

  devctl(outcome: NonNullable<Decision['devctl']>['decision']): void {
    this.#devctl[outcome]++;
  }

  /**
   * Counts a decision and prices the flush it demands with the VM's arch and policy (a VM already
   * gone has none: its flush is counted, not priced). Returns the flush job's id, if it demands one.
   */
  decided(decision: Decision, arch: Arch | undefined, policy: Policy | undefined): number | undefined {
    this.#pessimisticPages += decision.pessimisticPages;
    if (decision.kvmNoncoherentDma) this.#kvm = true;
    const flush = decision.flush;
    if (!flush.required) return undefined;
    const job = this.#jobs++;
    this.#pages += flush.pages;
    if (flush.cause !== null) this.#byCause[flush.cause] += flush.pages;
    if (arch !== undefined && policy !== undefined) {
      const receipt = planFlush(coalescePairs(flushPairs(flush)), arch, policy, CHUNK_PAGES);
      this.#cycles += receipt.modeledCycles;
      this.#ns += receipt.modeledNs;
    }
    return job;
  }

  violation(kind: 'leak' | 'stale', vm: VmId, pages: number, detail: string): void {
    this.#violations++;
    if (kind === 'leak') this.#leakPages += pages;
    else this.#stalePages += pages;
    if (this.#samples.length < SAMPLES) this.#samples.push({ kind, event: this.#event, vm, pages, detail });
  }

  result(mode: PolicyMode, events: number): ModeResult {
    return {
      mode,
      events,
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
}

/** A host page number as the byte address a finding names. */
export function hex(page: number): string {
  return `0x${(page * PAGE).toString(16)}`;
}
