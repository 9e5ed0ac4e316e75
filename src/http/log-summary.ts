/**
 * What the hot routes (decisions, pins, unpins, flush-job acks) did, per VM, written as one
 * `vm activity` line per VM at `info` every period (LOG_SUMMARY_INTERVAL) instead of one line per
 * request; and the refusals folded into it once a caller has had its first few of a code logged
 * one by one in the period.
 *
 * Bounded memory: one record per VM active in the current or the previous period (at most
 * MAX_VMS; beyond, the rest count as `(other VMs)`), zeroed rather than reallocated at each
 * period's end, dropped after a period without activity or when the VM is deleted; refusal
 * counts per client are forgotten at each period's end (at most MAX_CLIENTS a period). On the
 * hot path, counting is a map lookup and an increment: nothing is allocated.
 */
import type { FastifyBaseLogger } from 'fastify';
import { formatPages } from '../domain/index.js';

/** VMs tracked at once; beyond, activity counts under OTHER_VMS. */
export const MAX_VMS = 10_000;
const OTHER_VMS = '(other VMs)';
/** Clients whose refusals are counted apart in one period; beyond, under OTHER_CLIENTS. */
export const MAX_CLIENTS = 1_000;
const OTHER_CLIENTS = '(other clients)';
/** Refusals of one code to one client logged one by one in a period; the rest are folded. */
export const REFUSALS_LOGGED_PER_PERIOD = 5;

/** One VM's counters for the current period. */
class VmActivity {
  decisions = 0;
  pins = 0;
  unpins = 0;
  acks = 0;
  /** Changes that required a flush... */
  flushes = 0;
  /** ...the distinct flush jobs they joined, and their pages and host ranges. */
  flushJobs = 0;
  flushPages = 0;
  flushRanges = 0;
  /** The job the last flush joined: decisions within one flush window share a job. */
  lastJob: string | undefined = undefined;
  /** Refusals by code (allocated at the VM's first refusal). */
  refusals: Map<string, number> | null = null;

  get active(): boolean {
    return this.decisions + this.pins + this.unpins + this.acks + this.flushes > 0 || (this.refusals !== null && this.refusals.size > 0);
  }

  reset(): void {
    this.decisions = this.pins = this.unpins = this.acks = 0;
    this.flushes = this.flushJobs = this.flushPages = this.flushRanges = 0;
    this.refusals?.clear();
  }
}

/** One client's refusals of one code in the current period. */
class Refusals {
  count = 0;
  constructor(readonly status: number) {}
}

export class LogSummary {
  readonly #log: FastifyBaseLogger;
  readonly #intervalMs: number;
  readonly #vms = new Map<string, VmActivity>();
  readonly #clients = new Map<string, Map<string, Refusals>>();
  readonly #timer: NodeJS.Timeout | null;
  #periodStart = Date.now();

  /** `intervalMs`: how often the summary is written; 0: never by itself (tests call `write()`). */
  constructor(log: FastifyBaseLogger, intervalMs: number) {
    this.#log = log;
    this.#intervalMs = intervalMs;
    this.#timer = intervalMs > 0 ? setInterval(() => this.write(), intervalMs).unref() : null;
  }

  #vm(vmId: string): VmActivity {
    let vm = this.#vms.get(vmId);
    if (vm === undefined) {
      const key = this.#vms.size < MAX_VMS ? vmId : OTHER_VMS;
      vm = this.#vms.get(key);
      if (vm === undefined) {
        vm = new VmActivity();
        this.#vms.set(key, vm);
      }
    }
    return vm;
  }

  /** A read-only decision (POST /v1/vms/{vmId}/decisions/flush) answered. */
  decided(vmId: string): void {
    this.#vm(vmId).decisions++;
  }

  /** A pin (`unpin` false) or unpin applied. */
  changed(vmId: string, unpin: boolean): void {
    const vm = this.#vm(vmId);
    if (unpin) vm.unpins++;
    else vm.pins++;
  }

  /** A change that required a flush of `pages` pages in `ranges` host ranges, joined to job `jobId`. */
  flushed(vmId: string, pages: number, ranges: number, jobId: string | undefined): void {
    const vm = this.#vm(vmId);
    vm.flushes++;
    vm.flushPages += pages;
    vm.flushRanges += ranges;
    if (jobId !== undefined && jobId !== vm.lastJob) {
      vm.flushJobs++;
      vm.lastJob = jobId;
    }
  }

  /** A flush job of the VM acknowledged. */
  acked(vmId: string): void {
    this.#vm(vmId).acks++;
  }

  /**
   * A refusal (code `code`, HTTP `status`) to `client`, about VM `vmId` when the request named
   * one. Returns whether it is to be logged on its own line: the first few of a code to a client
   * in a period are; the rest are counted and reported at the period's end.
   */
  refused(vmId: string | undefined, client: string, code: string, status: number): boolean {
    if (vmId !== undefined) {
      const vm = this.#vm(vmId);
      vm.refusals ??= new Map();
      vm.refusals.set(code, (vm.refusals.get(code) ?? 0) + 1);
    }
    let codes = this.#clients.get(client);
    if (codes === undefined) {
      const key = this.#clients.size < MAX_CLIENTS ? client : OTHER_CLIENTS;
      codes = this.#clients.get(key);
      if (codes === undefined) {
        codes = new Map<string, Refusals>();
        this.#clients.set(key, codes);
      }
    }
    let r = codes.get(code);
    if (r === undefined) {
      r = new Refusals(status);
      codes.set(code, r);
    }
    return ++r.count <= REFUSALS_LOGGED_PER_PERIOD;
  }

  /** The VM is deleted: its last activity is written now and its record dropped. */
  forget(vmId: string): void {
    const vm = this.#vms.get(vmId);
    if (vm === undefined) return;
    if (vm.active) this.#line(vmId, vm, (Date.now() - this.#periodStart) / 1000);
    this.#vms.delete(vmId);
  }

  /**
   * Ends the period: one line per VM with activity in it, one per client and code whose
   * refusals were folded; VMs without activity are dropped, the rest zeroed.
   */
  write(): void {
    const now = Date.now();
    const periodS = (now - this.#periodStart) / 1000;
    this.#periodStart = now;
    for (const [vmId, vm] of this.#vms) {
      if (!vm.active) {
        this.#vms.delete(vmId);
        continue;
      }
      this.#line(vmId, vm, periodS);
      vm.reset();
    }
    for (const [client, codes] of this.#clients) {
      for (const [code, r] of codes) {
        if (r.count <= REFUSALS_LOGGED_PER_PERIOD) continue;
        const fields = { client, code, statusCode: r.status, refused: r.count, logged: REFUSALS_LOGGED_PER_PERIOD, folded: r.count - REFUSALS_LOGGED_PER_PERIOD, periodS: round(periodS) };
        if (r.status >= 500) this.#log.warn(fields, 'refusals folded');
        else this.#log.info(fields, 'refusals folded');
      }
    }
    this.#clients.clear();
  }

  #line(vmId: string, vm: VmActivity, periodS: number): void {
    this.#log.info(
      {
        vmId,
        periodS: round(periodS),
        decisions: vm.decisions,
        pins: vm.pins,
        unpins: vm.unpins,
        acks: vm.acks,
        flushes: vm.flushes,
        flushJobs: vm.flushJobs,
        flushBytes: formatPages(vm.flushPages),
        flushRanges: vm.flushRanges,
        ...(vm.refusals === null || vm.refusals.size === 0 ? {} : { refusals: Object.fromEntries(vm.refusals) })
      },
      'vm activity'
    );
  }

  /** Records held: VMs with counters, clients with refusal counts (their bound is the point). */
  get tracked(): { vms: number; clients: number } {
    return { vms: this.#vms.size, clients: this.#clients.size };
  }

  /** The period configured (ms). */
  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Stops the timer and writes the last period's summary (on close: no activity goes unreported). */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.write();
  }
}

function round(seconds: number): number {
  return Math.round(seconds * 10) / 10;
}
