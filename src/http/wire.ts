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
  type PolicyInput,
  type RangeInput,
  type VmId,
  type VmView
} from '../domain/index.js';
import { HttpError } from './errors.js';

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

export function policyInput(p: { mode?: Policy['mode']; onEnable?: Policy['onEnable']; exemptNeedsNoSnoop?: boolean; flushMethod?: Policy['flushMethod']; wbinvdAbove?: HexIn | null } | undefined): PolicyInput {
  if (p === undefined) return {};
  return {
    ...(p.mode === undefined ? {} : { mode: p.mode }),
    ...(p.onEnable === undefined ? {} : { onEnable: p.onEnable }),
    ...(p.exemptNeedsNoSnoop === undefined ? {} : { exemptNeedsNoSnoop: p.exemptNeedsNoSnoop }),
    ...(p.flushMethod === undefined ? {} : { flushMethod: p.flushMethod }),
    ...(p.wbinvdAbove === undefined ? {} : { wbinvdAbovePages: p.wbinvdAbove === null ? null : parsePageLength(p.wbinvdAbove, 'policy.wbinvdAbove') })
  };
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

export function flushWire(decision: Decision) {
  const f = decision.flush;
  const count = flushRangeCount(f);
  const listed = firstFlushRanges(f, LISTED_RANGES_MAX);
  return {
    required: f.required,
    bytes: formatPages(f.pages),
    ranges: listed.map((r) => ({ hpa: formatPages(r.hpa), length: formatPages(r.pages) })),
    rangeCount: count,
    rangesTruncated: listed.length < count,
    ...(f.cause === null ? {} : { cause: f.cause }),
    ...(f.when === null ? {} : { when: f.when })
  };
}

/**
 * A decision as answered, with the flush job that carries its flush and the outstanding jobs it
 * must wait for (`flush.jobId`, `flush.after`) when there are any.
 */
export function decisionWire(decision: Decision, revision: number, jobs: { readonly jobId?: string | undefined; readonly after?: readonly string[] | undefined } = {}) {
  const { jobId, after } = jobs;
  return {
    flush: { ...flushWire(decision), ...(jobId === undefined ? {} : { jobId }), ...(after === undefined ? {} : { after: [...after] }) },
    reasons: [...decision.reasons],
    kvmNoncoherentDma: decision.kvmNoncoherentDma,
    revision,
    ...(decision.devices === undefined
      ? {}
      : {
          devices: decision.devices.map((d) => ({
            bdf: d.bdf,
            decision: d.decision === 'ignore' ? ('deny' as const) : d.decision,
            hardwareValue: formatHex16(d.hardwareValue),
            guestValue: formatHex16(d.guestValue)
          }))
        }),
    ...(decision.devctl === undefined
      ? {}
      : {
          decision: decision.devctl.decision,
          hardwareValue: formatHex16(decision.devctl.hardwareValue),
          guestValue: formatHex16(decision.devctl.guestValue)
        })
  };
}

export function policyWire(p: Policy) {
  return {
    mode: p.mode,
    onEnable: p.onEnable,
    exemptNeedsNoSnoop: p.exemptNeedsNoSnoop,
    flushMethod: p.flushMethod,
    wbinvdAbove: p.wbinvdAbovePages === null ? null : formatPages(p.wbinvdAbovePages)
  };
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
