/**
 * A trace as written: JSON Lines, one event per line, as a VMM's control plane would see them.
 * An optional first line `{"t":"trace",...}` names the trace. Addresses are hex strings as in the
 * API; a pin or unpin may stand for `repeat.count` ranges laid out at fixed strides, so a 1 TiB
 * boot of 2 MiB pins is one line rather than half a million.
 *
 * The policy mode is not part of a trace: the simulator replays the same trace under each mode.
 */
import { z } from 'zod';
import { ARCHES, DEVICE_FUNCTIONS, MEM_TYPES, NOSNOOP_STATES, POLICY_CHOICES } from '../domain/index.js';

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

/**
 * A VM's policy as a trace writes it: the core's policy choices (those of the API's VM policy),
 * but no mode (the simulator replays each mode) and no WBINVD threshold.
 */
const { mode: _mode, ...TRACE_CHOICES } = POLICY_CHOICES;
export const TracePolicy = z.strictObject(TRACE_CHOICES);
export type TracePolicy = z.infer<typeof TracePolicy>;

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
  z.strictObject({ t: z.literal('vm'), vm: Id, arch: z.enum(ARCHES), policy: TracePolicy.optional() }),
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
