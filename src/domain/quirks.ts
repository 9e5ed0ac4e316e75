/**
 * Device quirks, matched by PCI vendor and device id (the device id under a mask). The table is
 * global to the service; changing it can expose domains (F2), so changes go through a command.
 */
import { z } from 'zod';
import { DomainError } from './errors.js';
import { formatHex16 } from './ids.js';

export const QUIRK_FLAGS = ['ignores-nosnoop-enable', 'needs-nosnoop'] as const;
export type QuirkFlag = (typeof QUIRK_FLAGS)[number];

export interface Quirk {
  readonly vendorId: number;
  readonly deviceId: number;
  /** Bits of the device id that must match; 0xffff matches one device, 0xff00 a family. */
  readonly deviceMask: number;
  readonly flags: readonly QuirkFlag[];
  readonly note?: string;
  readonly source?: string;
}

const hex16 = z
  .string()
  .regex(/^0x[0-9a-fA-F]{1,4}$/, 'a 16-bit hex string like "0x8086"')
  .transform((s) => Number.parseInt(s.slice(2), 16));

/** One quirk as it appears in a quirk file or a PUT /v1/quirks body. */
export const QuirkSchema = z.object({
  vendorId: hex16,
  deviceId: hex16,
  deviceMask: hex16.optional(),
  flags: z.array(z.enum(QUIRK_FLAGS)).min(1),
  note: z.string().max(500).optional(),
  source: z.string().max(500).optional()
});

export const QuirkFileSchema = z.object({ quirks: z.array(QuirkSchema) });

export type QuirkWire = z.input<typeof QuirkSchema>;

/** Validates a quirk file's parsed JSON; throws INVALID_QUIRK with the zod issues. */
export function parseQuirkFile(json: unknown): Quirk[] {
  const parsed = QuirkFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new DomainError('INVALID_QUIRK', 'quirk list is invalid', { issues: z.treeifyError(parsed.error) });
  }
  return parsed.data.quirks.map((q) => normaliseQuirk(q));
}

function normaliseQuirk(q: z.output<typeof QuirkSchema>): Quirk {
  const mask = q.deviceMask ?? 0xffff;
  const quirk: Quirk = {
    vendorId: q.vendorId,
    deviceId: q.deviceId & mask,
    deviceMask: mask,
    flags: [...new Set(q.flags)],
    ...(q.note === undefined ? {} : { note: q.note }),
    ...(q.source === undefined ? {} : { source: q.source })
  };
  return Object.freeze(quirk);
}

export function quirkToWire(q: Quirk): QuirkWire {
  return {
    vendorId: formatHex16(q.vendorId),
    deviceId: formatHex16(q.deviceId),
    deviceMask: formatHex16(q.deviceMask),
    flags: [...q.flags],
    ...(q.note === undefined ? {} : { note: q.note }),
    ...(q.source === undefined ? {} : { source: q.source })
  };
}

/**
 * Whether two quirks are entries for the same devices: the same vendor id, the same mask and the
 * same device id under it (ids compared as numbers, the device id masked, as parseQuirkFile
 * normalises them). Entries with different masks match different sets of devices (a family and
 * one of its members) and are different entries, even where they overlap.
 */
export function sameQuirkDevices(a: Quirk, b: Quirk): boolean {
  return a.vendorId === b.vendorId && a.deviceMask === b.deviceMask && a.deviceId === b.deviceId;
}

/**
 * The list `list` with the entries `added` merged in (POST /v1/quirks): each replaces, where it
 * stood, the entry for the same devices (sameQuirkDevices; any further entry for them is
 * dropped), or joins the end of the list. Two entries of `added` for the same devices are
 * refused (INVALID_QUIRK): which one was meant is not for the service to guess.
 */
export function mergeQuirks(list: readonly Quirk[], added: readonly Quirk[]): Quirk[] {
  added.forEach((q, i) => {
    const first = added.findIndex((other) => sameQuirkDevices(q, other));
    if (first !== i) {
      throw new DomainError('INVALID_QUIRK', `quirks ${first} and ${i} are entries for the same devices (vendor, device id and mask)`, { quirk: quirkToWire(q), entries: [first, i] });
    }
  });
  const out: Quirk[] = [];
  const placed = new Set<Quirk>();
  for (const q of list) {
    const replacement = added.find((a) => sameQuirkDevices(a, q));
    if (replacement === undefined) out.push(q);
    else if (!placed.has(replacement)) {
      out.push(replacement);
      placed.add(replacement);
    }
  }
  for (const a of added) if (!placed.has(a)) out.push(a);
  return out;
}

export class QuirkTable {
  readonly quirks: readonly Quirk[];

  constructor(quirks: readonly Quirk[]) {
    this.quirks = Object.freeze([...quirks]);
  }

  /** Every flag of every quirk matching vendor:device. */
  flagsFor(vendorId: number, deviceId: number): ReadonlySet<QuirkFlag> {
    const flags = new Set<QuirkFlag>();
    for (const q of this.quirks) {
      if (q.vendorId === vendorId && (deviceId & q.deviceMask) === q.deviceId) {
        for (const f of q.flags) flags.add(f);
      }
    }
    return flags;
  }
}
