/**
 * What the concurrent-callers model's VMM (concurrent-host.ts) still owes: each answer's own
 * flush, performed by the caller that got it (exactly the ranges the answer listed, or the job's
 * ranges when `rangesTruncated`) and then acknowledged; and each change waiting at its gate (its
 * own flush performed, every job of `flush.after` acknowledged), made in answer order per device.
 */
import type { Answer, Dev, Gate, Obligation, Pin } from './concurrent-answers.js';
import type { VmHardware } from './concurrent-hardware.js';
import type { WireJobs } from './concurrent-jobs.js';
import { hex, showRanges, type ServiceLink, type WireAnswer } from './concurrent-wire.js';
import { DEVCTL_NOSNOOP_EN } from './player/pci-function.js';

export interface WorkContext {
  readonly link: ServiceLink;
  readonly jobs: WireJobs;
  readonly hw: VmHardware;
  readonly devs: readonly Dev[];
  /** The ranges the VMM holds (the list is replaced as unpins are answered). */
  readonly pins: () => readonly Pin[];
  readonly stats: { afterWaits: number };
  readonly trace: string[];
  readonly rules: string[];
  /** A careless VMM that makes changes once their own flush is performed, not waiting for `flush.after`. */
  readonly ignoreAfter: boolean;
}

export class Obligations {
  readonly #ctx: WorkContext;
  readonly #owed: Obligation[] = [];
  /** Gates a change found closed for want of a job of `flush.after`. */
  readonly #waited = new Set<Gate>();

  constructor(context: WorkContext) {
    this.#ctx = context;
  }

  /** The answer's own flush, which the caller performs later (a `flush` action, or at the end), due `expected`. */
  oblige(answer: Answer, body: WireAnswer, expected: 'before-map' | 'after-unmap', release: Pin | null): Obligation | null {
    const f = body.flush;
    if (!f.required) return null;
    if (f.when !== expected) this.#ctx.rules.push(`#${answer.index} ${answer.what}: flush.when ${f.when} where ${expected} is due`);
    const ob: Obligation = { caller: answer.caller, answer: answer.index, jobId: f.jobId, ranges: answer.ranges, truncated: f.rangesTruncated === true, when: expected, performed: false, release };
    this.#owed.push(ob);
    return ob;
  }

  /** The oldest flush not performed yet (of `caller`, if given). */
  next(caller?: number): Obligation | undefined {
    return this.#owed.find((o) => (caller === undefined || o.caller === caller) && !o.performed);
  }

  /** Performs an answer's own flush: exactly the ranges it listed; then acknowledges it. */
  async perform(ob: Obligation): Promise<void> {
    if (ob.performed) return;
    ob.performed = true;
    const { link, hw, jobs, trace } = this.#ctx;
    let ranges = ob.ranges;
    if (ob.truncated && ob.jobId !== undefined) ranges = await link.fetchRanges(ob.jobId);
    hw.memory.flush(ranges);
    trace.push(`  c${ob.caller} flushes #${ob.answer}'s ${showRanges(ranges)}${ob.jobId === undefined ? '' : ` and acks ${ob.jobId.slice(0, 11)}`}`);
    if (ob.release !== null) hw.release(ob.release, ob.answer);
    if (ob.jobId !== undefined) await jobs.ack(ob.jobId);
  }

  /** The VMM owes `dev` a DEVCTL write of `value` once `gate` opens. */
  queueWrite(dev: Dev, value: number, gate: Gate, answer: Answer): void {
    if (dev.hardwired && (value & DEVCTL_NOSNOOP_EN) !== 0) this.#ctx.rules.push(`#${answer.index}: hardwareValue ${hex(value)} sets bit 11 on hardwired-zero ${dev.bdf}`);
    dev.ops.push({ kind: 'write', value, gate });
    dev.intendedBit = dev.hardwired || (value & DEVCTL_NOSNOOP_EN) === 0 ? 0 : 1;
  }

  /** Writes an answer asks of other devices of the VM (`devices`). */
  queueDevices(body: WireAnswer, gate: Gate, answer: Answer): void {
    for (const w of body.devices ?? []) {
      const dev = this.#ctx.devs.find((d) => d.bdf === w.bdf);
      if (dev === undefined) this.#ctx.rules.push(`#${answer.index}: asks for a write to ${w.bdf}, not a device of the VM`);
      else this.queueWrite(dev, Number(w.hardwareValue), gate, answer);
    }
  }

  async #open(gate: Gate): Promise<boolean> {
    if (gate.own !== null && !gate.own.performed) return false;
    if (this.#ctx.ignoreAfter) return true;
    for (const id of gate.after) {
      if (!(await this.#ctx.jobs.acknowledged(id))) {
        this.#waited.add(gate);
        return false;
      }
    }
    return true;
  }

  /** Makes every change whose answer allows it now, devices in answer order. */
  async apply(): Promise<void> {
    const { hw, jobs, stats, trace } = this.#ctx;
    for (let progress = true; progress; ) {
      progress = false;
      for (const pin of this.#ctx.pins()) {
        if (pin.mapped || pin.gate === null || !(await this.#open(pin.gate))) continue;
        if (this.#waited.delete(pin.gate)) stats.afterWaits++;
        pin.mapped = true;
        pin.gate = null;
        trace.push(`  hw: maps ${showRanges([{ hpa: pin.hpa, pages: pin.pages }])}${pin.doms === null ? '' : ` into ${pin.doms.map((d) => `d${d}`).join(',')}`}`);
        progress = true;
      }
      for (const dev of this.#ctx.devs) {
        for (let op = dev.ops[0]; op !== undefined && (await this.#open(op.gate)); op = dev.ops[0]) {
          if (this.#waited.delete(op.gate)) stats.afterWaits++;
          dev.ops.shift();
          if (op.kind === 'write') {
            dev.write(op.value);
            trace.push(`  hw: ${dev.bdf} DEVCTL <- ${hex(op.value)} (#${op.gate.answer})`);
          } else {
            dev.dom = op.dom;
            trace.push(`  hw: ${dev.bdf} attached to d${op.dom} (#${op.gate.answer})`);
          }
          progress = true;
        }
      }
    }
    if (hw.settleQuirks((id) => jobs.book.isDone(id))) trace.push('  hw: the bad device ignores its bit (the quirk list is true now)');
  }
}
