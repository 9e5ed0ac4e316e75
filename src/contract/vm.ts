import { z } from 'zod';
import { ARCHES, DEVICE_FUNCTIONS, DEVICE_ON_ENABLE, FLUSH_METHODS, NOSNOOP_STATES, ON_ENABLE, POLICY_CHOICES, POLICY_MODES, QUIRK_FLAGS } from '../domain/index.js';
import { Hex16Out, HexAddress, HexOut } from './common.js';

export const PolicyInput = z
  .object({
    ...POLICY_CHOICES,
    wbinvdAbove: HexAddress.nullable().optional().describe('x86 only: flushes larger than this many bytes may use WBINVD. Absent: never')
  })
  .strict()
  .meta({ id: 'VmPolicy', description: 'Per-VM policy; fields left out take the server defaults' });

export const Policy = z
  .object({
    mode: z.enum(POLICY_MODES),
    onEnable: z.enum(ON_ENABLE),
    exemptNeedsNoSnoop: z.boolean(),
    flushMethod: z.enum(FLUSH_METHODS),
    devices: z
      .record(z.string(), z.object({ onEnable: z.enum(DEVICE_ON_ENABLE) }))
      .optional()
      .describe('W8: per-device overrides of trapped enables, by PCI address (lower case); absent when there are none'),
    wbinvdAbove: HexOut.nullable()
  })
  .meta({ id: 'Policy' });

export const PutVmBody = z
  .object({ arch: z.enum(ARCHES), policy: PolicyInput.optional() })
  .strict()
  .meta({ id: 'PutVm', examples: [{ arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } }] });

export const DomainView = z
  .object({
    id: z.string(),
    enforceCacheCoherency: z.boolean(),
    iommu: z.string().nullable(),
    coherent: z.boolean(),
    exposed: z.boolean().describe('Not coherent, and pessimistic or an attached device may no-snoop'),
    devices: z.array(z.string())
  })
  .meta({ id: 'Domain' });

export const DeviceView = z
  .object({
    bdf: z.string(),
    domainId: z.string().nullable(),
    vendorId: Hex16Out,
    deviceId: Hex16Out,
    function: z.enum(DEVICE_FUNCTIONS),
    physfn: z.string().nullable(),
    pci: z.boolean(),
    nosnoop: z.enum(NOSNOOP_STATES).describe('The state that counts: as last reported, or as decided when the decision made the device more exposed'),
    pendingNosnoop: z
      .enum(NOSNOOP_STATES)
      .nullable()
      .describe('A less exposed state decided but not yet reported by the VMM (a denied or cleared bit): it counts once a device PUT reports it'),
    effectiveNosnoop: z.enum(NOSNOOP_STATES).describe("The bit that governs the device (a VF: its PF's when the PF is in this VM, otherwise `unknown`)"),
    mayNoSnoop: z.boolean(),
    devctl: Hex16Out,
    quirks: z.array(z.enum(QUIRK_FLAGS)).describe('Flags of the quirks that matched')
  })
  .meta({ id: 'Device' });

export const Vm = z
  .object({
    id: z.string(),
    arch: z.enum(ARCHES),
    policy: Policy,
    domains: z.array(DomainView),
    devices: z.array(DeviceView),
    pinned: z.object({ ranges: z.number().int(), bytes: HexOut, flushOnUnpinBytes: HexOut }),
    kvmNoncoherentDma: z.boolean(),
    openFlushJobs: z.array(z.string()).describe('Flush jobs not finished yet'),
    revision: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string()
  })
  .meta({ id: 'Vm', description: 'The whole state of a VM' });

export const PutDomainBody = z
  .object({ enforceCacheCoherency: z.boolean(), iommu: z.string().max(100).nullable().optional() })
  .strict()
  .meta({ id: 'PutDomain', examples: [{ enforceCacheCoherency: false, iommu: 'vtd-igfx' }] });

export const PutDeviceBody = z
  .object({
    domainId: z.string().max(64).nullable().optional().describe('The IOMMU domain the device is attached to; null or absent: none'),
    vendorId: z.string().regex(/^0x[0-9a-fA-F]{1,4}$/),
    deviceId: z.string().regex(/^0x[0-9a-fA-F]{1,4}$/),
    function: z.enum(DEVICE_FUNCTIONS).default('pf'),
    physfn: z.string().max(16).nullable().optional(),
    nosnoop: z.enum(NOSNOOP_STATES).describe("Enable No Snoop as the VMM reads it (a VF: its PF's bit as the host set it)"),
    pci: z.boolean().optional(),
    devctl: z.string().regex(/^0x[0-9a-fA-F]{1,4}$/).optional().describe('Current DEVCTL value, if known')
  })
  .strict()
  .meta({
    id: 'PutDevice',
    examples: [{ domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', function: 'pf', nosnoop: 'disabled' }]
  });

export const DevctlBody = z
  .object({
    value: z.string().regex(/^0x[0-9a-fA-F]{1,4}$/).optional().describe('The 16-bit value the guest wrote'),
    nosnoopEnable: z.boolean().optional().describe('Or only the Enable No Snoop bit'),
    dryRun: z.boolean().default(false)
  })
  .strict()
  .meta({ id: 'DevctlWrite', examples: [{ nosnoopEnable: true }, { value: '0x2810' }] });

export const ResetBody = z
  .object({
    restoresConfig: z
      .boolean()
      .optional()
      .describe(
        'Default true: vfio-pci saves and restores config space around every reset it performs (VFIO_DEVICE_RESET, the emulated FLR bit, hot reset), so Enable No Snoop keeps its state and nothing is replayed. False: a reset that does not restore config; the bit returns to 1 unless hardwired to 0 (R1 replay)'
      )
  })
  .strict()
  .nullish()
  .meta({ id: 'DeviceReset', examples: [{ restoresConfig: false }] });
