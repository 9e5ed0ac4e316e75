/**
 * What-if simulations: a trace replayed under every policy mode, each mode in its own task of a
 * piscina pool, so the server's event loop stays free while terabytes are modelled. Results are
 * kept in memory (the most recent `keep`), addressed by id; they can always be recomputed from
 * the trace, which is deterministic.
 */
import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { CodedError, DEFAULT_POLICY, POLICY_MODES, quirkToWire, type OnEnable, type PolicyDefaults, type PolicyMode, type Quirk } from '../domain/index.js';
import { workerFile } from '../worker-file.js';
import type { ModeResult } from './replay.js';
import { simulateTask, type SimulateOutcome, type SimulateTask, type TraceInfo, type TraceSource } from './simulate.js';
import { TraceError } from './trace.js';

export interface SimulationResult {
  readonly id: string;
  readonly createdAt: string;
  readonly trace: TraceInfo;
  /** The policy defaults and quirk list the trace was replayed under (the server's, by default). */
  readonly config: { readonly onEnable: OnEnable; readonly exemptNeedsNoSnoop: boolean; readonly quirks: number };
  /** One entry per mode, in the order asked. */
  readonly modes: readonly ModeResult[];
  readonly summary: {
    /** No mode let the model see a leak or a stale line. */
    readonly safe: boolean;
    /** Per mode: share of the pessimistic mode's flushed bytes it did not flush (0..1). */
    readonly bytesSavedVsPessimistic: Readonly<Partial<Record<PolicyMode, number>>>;
  };
  /** Wall-clock figures: the only part of a result that differs between identical runs. */
  readonly timing: { readonly wallMs: number; readonly replayMs: Readonly<Partial<Record<PolicyMode, number>>> };
}

export interface SimulatorOptions {
  /** Worker threads; 0 runs the replays inline (tests, tiny traces). Default: the CPU count. */
  readonly threads?: number;
  /** Results kept for GET; older ones are forgotten first. Default 64. */
  readonly keep?: number;
  /** Simulations waiting for a thread before new ones are refused. Default 16. */
  readonly maxQueue?: number;
}

/** Thrown when the pool's queue is full: overload is refused by name, with a time after which to retry. */
export class SimulatorBusyError extends CodedError<'OVERLOADED'> {
  override readonly name = 'SimulatorBusyError';

  constructor() {
    super('OVERLOADED', 'too many simulations are waiting; retry shortly', { retryAfterSeconds: 5 });
  }
}

export class Simulator {
  readonly #pool: Piscina | null;
  readonly #keep: number;
  readonly #results = new Map<string, SimulationResult>();

  constructor(options: SimulatorOptions = {}) {
    const threads = options.threads ?? availableParallelism();
    this.#keep = options.keep ?? 64;
    if (threads === 0) {
      this.#pool = null;
      return;
    }
    this.#pool = new Piscina({
      ...workerFile(import.meta.url, 'sim-worker'),
      minThreads: 0,
      maxThreads: threads,
      idleTimeout: 30_000,
      maxQueue: (options.maxQueue ?? 16) * POLICY_MODES.length
    });
  }

  /**
   * Replays the trace under each mode, with `defaults` (the server's) for what a VM leaves unset.
   * Throws TraceError for a trace that does not parse, SimulatorBusyError when too many wait.
   */
  async run(source: TraceSource, quirks: readonly Quirk[], modes: readonly PolicyMode[] = POLICY_MODES, defaults: PolicyDefaults = DEFAULT_POLICY): Promise<SimulationResult> {
    const started = performance.now();
    const wire = quirks.map(quirkToWire);
    const outcomes = await Promise.all(modes.map((mode) => this.#task({ source, mode, quirks: wire, defaults })));
    const done: Extract<SimulateOutcome, { ok: true }>[] = [];
    for (const o of outcomes) {
      if (!o.ok) throw new TraceError(o.line, o.detail);
      done.push(o);
    }
    const first = done[0];
    if (first === undefined) throw new TraceError(0, 'no policy mode to simulate');
    const results = done.map((o) => o.result);
    const pessimistic = results.find((r) => r.mode === 'pessimistic')?.flush.bytes;
    const saved: Partial<Record<PolicyMode, number>> = {};
    const replayMs: Partial<Record<PolicyMode, number>> = {};
    for (const o of done) {
      replayMs[o.result.mode] = Math.round(o.replayMs * 10) / 10;
      if (pessimistic !== undefined) saved[o.result.mode] = pessimistic === 0 ? 0 : 1 - o.result.flush.bytes / pessimistic;
    }
    const result: SimulationResult = {
      id: randomUUID(),
      createdAt: new Date().toISOString(),
      trace: first.trace,
      config: { onEnable: defaults.onEnable, exemptNeedsNoSnoop: defaults.exemptNeedsNoSnoop, quirks: quirks.length },
      modes: results,
      summary: { safe: results.every((r) => r.violations.total === 0), bytesSavedVsPessimistic: saved },
      timing: { wallMs: Math.round((performance.now() - started) * 10) / 10, replayMs }
    };
    this.#results.set(result.id, result);
    while (this.#results.size > this.#keep) {
      const oldest = this.#results.keys().next().value;
      if (oldest === undefined) break;
      this.#results.delete(oldest);
    }
    return result;
  }

  get(id: string): SimulationResult | undefined {
    return this.#results.get(id);
  }

  async close(): Promise<void> {
    await this.#pool?.close();
  }

  async #task(task: SimulateTask): Promise<SimulateOutcome> {
    if (this.#pool === null) return simulateTask(task);
    if (this.#pool.queueSize >= this.#pool.options.maxQueue) throw new SimulatorBusyError();
    return (await this.#pool.run(task)) as SimulateOutcome;
  }
}
