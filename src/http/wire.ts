/**
 * Between wire and core: hex strings in, page numbers inside, hex strings out.
 */
import {
  firstFlushRanges,
  flushRangeCount,
  formatHex16,
  formatPages,
  parseDomainId,
  parseHex16,
  parsePageAddress,
  parsePageLength,
  parsePciAddress,
  parseVmId,
  type Decision,
  type DomainId,
  type PciAddress,
  type PinInput,
  type PinnedRangeView,
  type Policy,
  type RangeInput,
  type VmId,
  type VmView
} from '../domain/index.js';
import type { z } from 'zod';
import type { Flush } from '../contract/common.js';
import type { DeviceDecision } from '../contract/decision.js';
import { HttpError } from './errors.js';

/** A flush as answered (the Flush schema). */
export type FlushWire = z.output<typeof Flush>;
/** A decision as answered: every decision answer's fields, and a device's DEVCTL outcome when it has one (the DeviceDecision schema). */
export type DecisionWire = z.output<typeof DeviceDecision>;

type HexIn = string | number;

export function vmIdOf(params: { vmId: string }): VmId {
  return parseVmId(params.vmId);
}

export function bdfOf(params: { bdf: string }): PciAddress {
  return parsePciAddress(params.bdf);
}

export function domainIds(list: readonly string[] | undefined | null): DomainId[] | null {
  return list === undefined || list === null ? null : list.map((d) => parseDomainId(d));
}

export function pinInput(r: { iova: HexIn; hpa: HexIn; length: HexIn; memType?: PinInput['memType']; mmio?: boolean; domains?: string[] }): PinInput {
  return {
    iova: parsePageAddress(r.iova, 'iova'),
    hpa: parsePageAddress(r.hpa, 'hpa'),
    pages: parsePageLength(r.length, 'length'),
    ...(r.memType === undefined ? {} : { memType: r.memType }),
    ...(r.mmio === undefined ? {} : { mmio: r.mmio }),
    domains: domainIds(r.domains)
  };
}

export function rangeInput(r: { iova: HexIn; length: HexIn }): RangeInput {
  return { iova: parsePageAddress(r.iova, 'iova'), pages: parsePageLength(r.length, 'length') };
}

/** A single range or `{ranges}`; a batch over the limit is 413, not 400. */
export function batchOf<T extends object>(body: T | { ranges: T[] }, limit: number): T[] {
  const ranges = 'ranges' in body ? body.ranges : [body];
  checkBatch(ranges.length, limit);
  return ranges;
}

/** A batch of `count` ranges over the limit is 413, not 400. */
export function checkBatch(count: number, limit: number): void {
  if (count > limit) throw new HttpError('BATCH_TOO_LARGE', `a batch holds at most ${limit} ranges; this one has ${count}`, { limit, count });
}

export function hex16(value: string | number, field: string): number {
  return parseHex16(value, field);
}

/**
 * Ranges listed in an answer. A batch (at most 10,000 ranges) is always listed whole; a replay or
 * teardown of a large VM can be hundreds of thousands of ranges, which its flush job lists
 * (GET /v1/flush-jobs/{jobId}/ranges) instead of one huge answer blocking the service.
 */
export const LISTED_RANGES_MAX = 10_000;

/** A listed flush range as answered. */
export interface HostRangeWire {
  readonly hpa: string;
  readonly length: string;
}

/** The first ranges of a flush as answered: at most LISTED_RANGES_MAX. */
export function listedRanges(decision: Decision): HostRangeWire[] {
  return firstFlushRanges(decision.flush, LISTED_RANGES_MAX).map((r) => ({ hpa: formatPages(r.hpa), length: formatPages(r.pages) }));
}

/** What a decision's answer carries besides the decision: its flush job, and the jobs it waits for. */
export interface DecisionJobs {
  readonly jobId?: string | undefined;
  readonly after?: readonly string[] | undefined;
}

/** The same, and (byte writers) a stand-in for the listed ranges. */
export interface DecisionExtras extends DecisionJobs {
  readonly ranges?: HostRangeWire[];
}

/**
 * A decision's flush as answered, with its job and the jobs it waits for. `ranges` stands for its
 * listed ranges when given: the byte writers give a marker the serializer writes in their place
 * (decision-bytes.ts). Built by assignment rather than spreads: answers are written many times a
 * second, and an object of one shape is cheaper to make and to serialize.
 */
export function flushWire(decision: Decision, ranges: HostRangeWire[] = listedRanges(decision), jobs: DecisionJobs = {}): FlushWire {
  const f = decision.flush;
  const count = flushRangeCount(f);
  const wire: FlushWire = { required: f.required, bytes: formatPages(f.pages), ranges, rangeCount: count, rangesTruncated: Math.min(count, LISTED_RANGES_MAX) < count };
  if (f.cause !== null) wire.cause = f.cause;
  if (f.when !== null) wire.when = f.when;
  if (jobs.jobId !== undefined) wire.jobId = jobs.jobId;
  if (jobs.after !== undefined) wire.after = [...jobs.after];
  return wire;
}

/**
 * A decision as answered, with the flush job that carries its flush and the outstanding jobs it
 * must wait for (`flush.jobId`, `flush.after`) when there are any.
 */
export function decisionWire(decision: Decision, revision: number, extras: DecisionExtras = {}): DecisionWire {
  const wire: DecisionWire = { flush: flushWire(decision, extras.ranges, extras), reasons: [...decision.reasons], kvmNoncoherentDma: decision.kvmNoncoherentDma, revision };
  if (decision.devices !== undefined) {
    wire.devices = decision.devices.map((d) => ({
      bdf: d.bdf,
      decision: d.decision === 'ignore' ? ('deny' as const) : d.decision,
      hardwareValue: formatHex16(d.hardwareValue),
      guestValue: formatHex16(d.guestValue)
    }));
  }
  if (decision.devctl !== undefined) {
    wire.decision = decision.devctl.decision;
    wire.hardwareValue = formatHex16(decision.devctl.hardwareValue);
    wire.guestValue = formatHex16(decision.devctl.guestValue);
  }
  return wire;
}

/** A policy as answered: the core's fields as they are, the WBINVD threshold in bytes. */
export function policyWire(p: Policy) {
  const { wbinvdAbovePages, ...choices } = p;
  return { ...choices, wbinvdAbove: wbinvdAbovePages === null ? null : formatPages(wbinvdAbovePages) };
}

export function vmWire(v: VmView, openFlushJobs: readonly string[] = []) {
  return {
    id: v.id,
    arch: v.arch,
    policy: policyWire(v.policy),
    domains: v.domains.map((d) => ({ ...d, devices: [...d.devices] })),
    devices: v.devices.map((d) => ({
      ...d,
      vendorId: formatHex16(d.vendorId),
      deviceId: formatHex16(d.deviceId),
      devctl: formatHex16(d.devctl),
      quirks: [...d.quirks]
    })),
    pinned: { ranges: v.pinned.ranges, bytes: formatPages(v.pinned.pages), flushOnUnpinBytes: formatPages(v.pinned.flushOnUnpinPages) },
    kvmNoncoherentDma: v.kvmNoncoherentDma,
    openFlushJobs: [...openFlushJobs],
    revision: v.revision,
    createdAt: new Date(v.createdAt).toISOString(),
    updatedAt: new Date(v.updatedAt).toISOString()
  };
}

export function pinnedWire(r: PinnedRangeView) {
  return {
    iova: formatPages(r.iova),
    length: formatPages(r.pages),
    hpa: formatPages(r.hpa),
    memType: r.memType,
    mmio: r.mmio,
    flushOnUnpin: r.flushOnUnpin,
    domains: r.domains === null ? null : [...r.domains]
  };
}

// ---- cursors: opaque to clients, base64url of the position to resume from ----------------------

export function encodeCursor(position: string): string {
  return Buffer.from(position, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (text.length === 0 || encodeCursor(text) !== cursor) throw new HttpError('INVALID_CURSOR', 'cursor is not one this service issued');
  return text;
}
