/**
 * A trace's events as the simulator replays them: ids parsed, addresses and lengths in pages, and
 * a VM's policy as the core's policy input. Converting a line checks what the schema cannot (ids,
 * alignment, address overflow) with the core's own parsers, so a trace is held to the API's rules.
 */
import {
  DomainError,
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
import type { TraceLine, TracePolicy } from './trace-line.js';

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

/** Converts one written line to an event; throws DomainError for ids or addresses out of range. */
export function toEvent(line: TraceLine): TraceEvent {
  switch (line.t) {
    case 'vm':
      return { t: 'vm', vm: parseVmId(line.vm), arch: line.arch, policy: policyInput(line.policy) };
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

/** The core's policy input for a VM line: the fields the line sets, the rest left to the defaults. */
function policyInput(policy: TracePolicy | undefined): PolicyInput {
  // The schema's fields are the core's own choices; a field left out is absent, not undefined.
  return Object.fromEntries(Object.entries(policy ?? {}).filter(([, v]) => v !== undefined));
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
