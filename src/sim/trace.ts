/**
 * The trace format: JSON Lines, one event per line, as a VMM's control plane would see them.
 * An optional first line `{"t":"trace",...}` names the trace. Addresses are hex strings as in the
 * API; a pin or unpin may stand for `repeat.count` ranges laid out at fixed strides, so a 1 TiB
 * boot of 2 MiB pins is one line rather than half a million.
 *
 * The policy mode is not part of a trace: the simulator replays the same trace under each mode.
 */
import { z } from 'zod';
import { PolicyInput as VmPolicyInput } from '../contract/vm.js';
import {
  ARCHES,
  DEVICE_FUNCTIONS,
  DomainError,
  MEM_TYPES,
  NOSNOOP_STATES,
  parseDomainId,
  parseHex16,
  parsePageAddress,
  parsePageLength,
  parsePciAddress,
  parseVmId,
  type Arch,
  type DomainId,
  type MemType,
  type NoSnoopState,
  type PciAddress,
  type PolicyInput,
  type VmId
} from '../domain/index.js';

export const TRACE_VERSION = 1;

const Hex = z.string().regex(/^0x[0-9a-fA-F]{1,16}$/, 'a hex string like "0x1000"');
const Id = z.string().min(1).max(64);
const Repeat = z.strictObject({
  count: z.number().int().min(1).max(16_777_216),
  /** Distance between consecutive ranges' IOVAs; default: the length (back to back). */
  iovaStride: Hex.optional(),
  /** Distance between consecutive ranges' host addresses; default: the length. */
  hpaStride: Hex.optional()
});

export const TraceHeader = z.strictObject({
  t: z.literal('trace'),
  version: z.literal(TRACE_VERSION),
  name: z.string().min(1).max(128),
  description: z.string().max(2000).optional(),
  seed: z.number().int().optional()
});
export type TraceHeader = z.infer<typeof TraceHeader>;

/** One line of a trace, as written. */
export const TraceLine = z.discriminatedUnion('t', [
  z.strictObject({
    t: z.literal('vm'),
    vm: Id,
    arch: z.enum(ARCHES),
    // The API's VM policy without the mode: the simulator replays the trace under each mode.
    policy: VmPolicyInput.pick({ onEnable: true, exemptNeedsNoSnoop: true, flushMethod: true }).strict().optional()
  }),
  z.strictObject({ t: z.literal('delete-vm'), vm: Id }),
  z.strictObject({ t: z.literal('domain'), vm: Id, domain: Id, coherent: z.boolean() }),
  z.strictObject({ t: z.literal('delete-domain'), vm: Id, domain: Id }),
  z.strictObject({
    t: z.literal('device'),
    vm: Id,
    bdf: Id,
    domain: Id.nullable(),
    vendorId: z.string(),
    deviceId: z.string(),
    function: z.enum(DEVICE_FUNCTIONS).optional(),
    physfn: Id.optional(),
    /** The Enable No Snoop bit as the hardware holds it when the device is attached. */
    nosnoop: z.enum(NOSNOOP_STATES)
  }),
  z.strictObject({ t: z.literal('delete-device'), vm: Id, bdf: Id }),
  /** restoresConfig: false for a reset that does not restore config space (default true, as vfio-pci's resets do). */
  z.strictObject({ t: z.literal('reset'), vm: Id, bdf: Id, restoresConfig: z.boolean().optional() }),
  z.strictObject({ t: z.literal('devctl'), vm: Id, bdf: Id, nosnoopEnable: z.boolean() }),
  z.strictObject({
    t: z.literal('pin'),
    vm: Id,
    iova: Hex,
    hpa: Hex,
    length: Hex,
    memType: z.enum(MEM_TYPES).optional(),
    mmio: z.boolean().optional(),
    domains: z.array(Id).max(64).nullable().optional(),
    repeat: Repeat.optional()
  }),
  z.strictObject({ t: z.literal('unpin'), vm: Id, iova: Hex, length: Hex, repeat: Repeat.omit({ hpaStride: true }).optional() }),
  z.strictObject({ t: z.literal('dma'), vm: Id, bdf: Id, iova: Hex, length: Hex, write: z.boolean(), noSnoop: z.boolean() })
]);
export type TraceLine = z.infer<typeof TraceLine>;

/** A range run: `count` ranges of `pages`, the i-th at iova + i * iovaStride, hpa + i * hpaStride. */
export interface Run {
  readonly iova: number;
  readonly hpa: number;
  readonly pages: number;
  readonly count: number;
  readonly iovaStride: number;
  readonly hpaStride: number;
}

/** A trace event with ids and addresses parsed (pages, not bytes). */
export type TraceEvent =
  | { readonly t: 'vm'; readonly vm: VmId; readonly arch: Arch; readonly policy: PolicyInput }
  | { readonly t: 'delete-vm'; readonly vm: VmId }
  | { readonly t: 'domain'; readonly vm: VmId; readonly domain: DomainId; readonly coherent: boolean }
  | { readonly t: 'delete-domain'; readonly vm: VmId; readonly domain: DomainId }
  | {
      readonly t: 'device';
      readonly vm: VmId;
      readonly bdf: PciAddress;
      readonly domain: DomainId | null;
      readonly vendorId: number;
      readonly deviceId: number;
      readonly function: 'pf' | 'vf';
      readonly physfn: PciAddress | null;
      readonly nosnoop: NoSnoopState;
    }
  | { readonly t: 'delete-device'; readonly vm: VmId; readonly bdf: PciAddress }
  | { readonly t: 'reset'; readonly vm: VmId; readonly bdf: PciAddress; readonly restoresConfig: boolean }
  | { readonly t: 'devctl'; readonly vm: VmId; readonly bdf: PciAddress; readonly nosnoopEnable: boolean }
  | { readonly t: 'pin'; readonly vm: VmId; readonly run: Run; readonly memType: MemType; readonly mmio: boolean; readonly domains: readonly DomainId[] | null }
  | { readonly t: 'unpin'; readonly vm: VmId; readonly run: Run }
  | { readonly t: 'dma'; readonly vm: VmId; readonly bdf: PciAddress; readonly iova: number; readonly pages: number; readonly write: boolean; readonly noSnoop: boolean };

export interface Trace {
  readonly header: TraceHeader | null;
  readonly events: readonly TraceEvent[];
  /** Pinned and unpinned ranges in all, repeats expanded. */
  readonly ranges: number;
}

/** A trace that does not parse: the line (1-based) and what is wrong with it. */
export class TraceError extends Error {
  constructor(
    readonly line: number,
    readonly detail: string
  ) {
    super(`trace line ${line}: ${detail}`);
    this.name = 'TraceError';
  }
}

export const MAX_TRACE_EVENTS = 2_000_000;
/** Pinned and unpinned ranges in all, repeats expanded: bounds the work one simulation can ask for. */
export const MAX_TRACE_RANGES = 4_194_304;

/** Parses JSON Lines text; blank lines are skipped. Throws TraceError naming the first bad line. */
export function parseTrace(text: string): Trace {
  let header: TraceHeader | null = null;
  const events: TraceEvent[] = [];
  let ranges = 0;
  let lineNo = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const raw = text.slice(start, end).trim();
    start = end + 1;
    lineNo++;
    if (raw === '') continue;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new TraceError(lineNo, 'not a JSON object');
    }
    if (events.length === 0 && header === null && typeof json === 'object' && json !== null && (json as { t?: unknown }).t === 'trace') {
      const parsed = TraceHeader.safeParse(json);
      if (!parsed.success) throw new TraceError(lineNo, describe(parsed.error));
      header = parsed.data;
      continue;
    }
    const parsed = TraceLine.safeParse(json);
    if (!parsed.success) throw new TraceError(lineNo, describe(parsed.error));
    if (events.length >= MAX_TRACE_EVENTS) throw new TraceError(lineNo, `a trace holds at most ${MAX_TRACE_EVENTS} events`);
    try {
      const event = toEvent(parsed.data);
      if (event.t === 'pin' || event.t === 'unpin') ranges += event.run.count;
      if (ranges > MAX_TRACE_RANGES) throw new TraceError(lineNo, `a trace pins and unpins at most ${MAX_TRACE_RANGES.toLocaleString('en-US')} ranges in all`);
      events.push(event);
    } catch (err) {
      if (err instanceof DomainError) throw new TraceError(lineNo, err.message);
      throw err;
    }
  }
  if (events.length === 0) throw new TraceError(lineNo, 'the trace has no events');
  return { header, events, ranges };
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'invalid event';
  const path = issue.path.join('.');
  return path === '' ? issue.message : `${path}: ${issue.message}`;
}

/** Converts one written line to an event; throws DomainError for ids or addresses out of range. */
export function toEvent(line: TraceLine): TraceEvent {
  switch (line.t) {
    case 'vm':
      return { t: 'vm', vm: parseVmId(line.vm), arch: line.arch, policy: { ...line.policy } };
    case 'delete-vm':
      return { t: 'delete-vm', vm: parseVmId(line.vm) };
    case 'domain':
      return { t: 'domain', vm: parseVmId(line.vm), domain: parseDomainId(line.domain), coherent: line.coherent };
    case 'delete-domain':
      return { t: 'delete-domain', vm: parseVmId(line.vm), domain: parseDomainId(line.domain) };
    case 'device':
      return {
        t: 'device',
        vm: parseVmId(line.vm),
        bdf: parsePciAddress(line.bdf),
        domain: line.domain === null ? null : parseDomainId(line.domain),
        vendorId: parseHex16(line.vendorId, 'vendorId'),
        deviceId: parseHex16(line.deviceId, 'deviceId'),
        function: line.function ?? 'pf',
        physfn: line.physfn === undefined ? null : parsePciAddress(line.physfn),
        nosnoop: line.nosnoop
      };
    case 'delete-device':
      return { t: 'delete-device', vm: parseVmId(line.vm), bdf: parsePciAddress(line.bdf) };
    case 'reset':
      return { t: 'reset', vm: parseVmId(line.vm), bdf: parsePciAddress(line.bdf), restoresConfig: line.restoresConfig ?? true };
    case 'devctl':
      return { t: 'devctl', vm: parseVmId(line.vm), bdf: parsePciAddress(line.bdf), nosnoopEnable: line.nosnoopEnable };
    case 'pin':
      return {
        t: 'pin',
        vm: parseVmId(line.vm),
        run: runOf(line.iova, line.hpa, line.length, line.repeat),
        memType: line.memType ?? 'WB',
        mmio: line.mmio ?? false,
        domains: line.domains === undefined || line.domains === null ? null : line.domains.map(parseDomainId)
      };
    case 'unpin':
      return { t: 'unpin', vm: parseVmId(line.vm), run: runOf(line.iova, '0x0', line.length, line.repeat) };
    case 'dma':
      return {
        t: 'dma',
        vm: parseVmId(line.vm),
        bdf: parsePciAddress(line.bdf),
        iova: parsePageAddress(line.iova, 'iova'),
        pages: parsePageLength(line.length, 'length'),
        write: line.write,
        noSnoop: line.noSnoop
      };
  }
}

function runOf(iova: string, hpa: string, length: string, repeat: { count: number; iovaStride?: string; hpaStride?: string } | undefined): Run {
  const pages = parsePageLength(length, 'length');
  const run: Run = {
    iova: parsePageAddress(iova, 'iova'),
    hpa: parsePageAddress(hpa, 'hpa'),
    pages,
    count: repeat?.count ?? 1,
    iovaStride: repeat?.iovaStride === undefined ? pages : parsePageAddress(repeat.iovaStride, 'repeat.iovaStride'),
    hpaStride: repeat?.hpaStride === undefined ? pages : parsePageAddress(repeat.hpaStride, 'repeat.hpaStride')
  };
  if (run.count > 1 && (run.iovaStride < pages || run.hpaStride < pages)) {
    throw new DomainError('INVALID_LENGTH', 'repeat strides must be at least the length, so the ranges do not overlap', { field: 'repeat' });
  }
  const lastIova = run.iova + (run.count - 1) * run.iovaStride + pages;
  const lastHpa = run.hpa + (run.count - 1) * run.hpaStride + pages;
  if (!Number.isSafeInteger(lastIova) || lastIova > 2 ** 52 || !Number.isSafeInteger(lastHpa) || lastHpa > 2 ** 52) {
    throw new DomainError('ADDRESS_OVERFLOW', 'the repeated ranges run past the 64-bit address space', { field: 'repeat' });
  }
  return run;
}
