/**
 * The reference traces, generated from fixed seeds so every run produces the same bytes:
 *
 * - desktop-gpu: a 16 GiB x86 desktop VM with an Intel integrated GPU alone in a non-coherent
 *   domain (its DMAR unit lacks snoop control). Boot maps all RAM in four large ranges; the guest
 *   driver enables No Snoop; GPU buffers of 4 KiB and 2 MiB are mapped and unmapped; teardown.
 * - viommu-network: a VM behind a virtual IOMMU: 200,000 single-page map and unmap events, most
 *   for a NIC in a coherent domain, some for an accelerator in a non-coherent one.
 * - server-1tib: a 1 TiB server VM pinned as 2 MiB pages at boot, a NIC VF in a coherent domain
 *   and an accelerator in a non-coherent one that is reset twice (R1), then teardown.
 * - desktop-gpu-arm64: desktop-gpu on aarch64 behind an SMMUv3 without CANWBS, so the domain
 *   cannot enforce coherency and flushes are DC CIVAC.
 */
import type { TraceHeader, TraceLine } from './trace.js';
import { TRACE_VERSION } from './trace.js';

export const REFERENCE_TRACES = ['desktop-gpu', 'viommu-network', 'server-1tib', 'desktop-gpu-arm64'] as const;
export type ReferenceTraceName = (typeof REFERENCE_TRACES)[number];

export interface GeneratedTrace {
  readonly header: TraceHeader;
  readonly lines: readonly TraceLine[];
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;
const PAGE = 4 * KiB;

/** mulberry32: a small, well-mixed 32-bit PRNG; the same seed gives the same sequence everywhere. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

export function generateReferenceTrace(name: ReferenceTraceName): GeneratedTrace {
  switch (name) {
    case 'desktop-gpu':
      return desktopGpu(name, 'x86_64', 0x5eed_000a);
    case 'desktop-gpu-arm64':
      return desktopGpu(name, 'aarch64', 0x5eed_000a);
    case 'viommu-network':
      return viommuNetwork(0x5eed_000b);
    case 'server-1tib':
      return server1TiB(0x5eed_000c);
  }
}

/** JSON Lines text of a generated trace, header first, newline-terminated. */
export function traceText(trace: GeneratedTrace): string {
  const out: string[] = [JSON.stringify(trace.header)];
  for (const line of trace.lines) out.push(JSON.stringify(line));
  return out.join('\n') + '\n';
}

function desktopGpu(name: ReferenceTraceName, arch: 'x86_64' | 'aarch64', seed: number): GeneratedTrace {
  const rand = prng(seed);
  const vm = 'desktop';
  const gpu = '0000:00:02.0';
  const arm = arch === 'aarch64';
  const lines: TraceLine[] = [
    { t: 'vm', vm, arch },
    { t: 'domain', vm, domain: 'igpu', coherent: false },
    // Tiger Lake GT2 (needs-nosnoop in the shipped quirks); attached with the bit cleared.
    { t: 'device', vm, bdf: gpu, domain: 'igpu', vendorId: '0x8086', deviceId: '0x9a49', nosnoop: 'disabled' }
  ];
  // Boot: all 16 GiB of RAM in four ranges (below the 32-bit hole and above 4 GiB), each backed
  // by its own host region.
  const ram: [number, number, number][] = [
    [0, 640 * KiB, 0x1_0000_0000],
    [1 * MiB, 2 * GiB - 1 * MiB, 0x1_4000_0000],
    [4 * GiB, 8 * GiB, 0x2_0000_0000],
    [12 * GiB, 6 * GiB + 384 * KiB, 0x4_0000_0000]
  ];
  for (const [iova, length, hpa] of ram) lines.push({ t: 'pin', vm, iova: hex(iova), hpa: hex(hpa), length: hex(length) });
  // The guest's GPU driver loads and turns No Snoop on.
  lines.push({ t: 'devctl', vm, bdf: gpu, nosnoopEnable: true });
  // Runtime: GPU buffers (70% 4 KiB, 30% 2 MiB) mapped at high IOVAs from a host pool, at most
  // 512 alive; the GPU renders into some of them (snooped and no-snoop DMA).
  const live: { iova: number; length: number; hpa: number }[] = [];
  const freeHpa: number[] = [];
  let nextIova = 0x100_0000_0000;
  let nextHpa = 0x10_0000_0000;
  const BUFFERS = 20_000;
  for (let i = 0; i < BUFFERS; i++) {
    if (live.length >= 512 || (live.length > 0 && rand() < 0.45)) {
      const at = Math.floor(rand() * live.length);
      const [b] = live.splice(at, 1);
      if (b !== undefined) {
        lines.push({ t: 'unpin', vm, iova: hex(b.iova), length: hex(b.length) });
        if (b.length === PAGE) freeHpa.push(b.hpa);
      }
    }
    const big = rand() < 0.3;
    const length = big ? 2 * MiB : PAGE;
    let hpa: number;
    if (!big && freeHpa.length > 0) {
      hpa = freeHpa.pop() as number;
    } else {
      hpa = nextHpa;
      nextHpa += length;
    }
    const iova = nextIova;
    nextIova += length + 2 * MiB;
    lines.push({ t: 'pin', vm, iova: hex(iova), hpa: hex(hpa), length: hex(length) });
    live.push({ iova, length, hpa });
    if (rand() < 0.25) lines.push({ t: 'dma', vm, bdf: gpu, iova: hex(iova), length: hex(length), write: rand() < 0.5, noSnoop: true });
  }
  for (const b of live) lines.push({ t: 'unpin', vm, iova: hex(b.iova), length: hex(b.length) });
  lines.push({ t: 'delete-vm', vm });
  return {
    header: {
      t: 'trace',
      version: TRACE_VERSION,
      name,
      seed,
      description: `16 GiB ${arch} desktop VM, integrated GPU alone in a non-coherent domain${arm ? ' (SMMUv3 without CANWBS)' : ' (DMAR without snoop control)'}: boot maps all RAM in 4 ranges, the driver enables No Snoop, ${BUFFERS} GPU buffer maps of 4 KiB/2 MiB with unmaps, teardown`
    },
    lines
  };
}

function viommuNetwork(seed: number): GeneratedTrace {
  const rand = prng(seed);
  const vm = 'netvm';
  const nic = '0000:00:04.0';
  const acc = '0000:00:05.0';
  const lines: TraceLine[] = [
    { t: 'vm', vm, arch: 'x86_64' },
    { t: 'domain', vm, domain: 'nic', coherent: true },
    { t: 'domain', vm, domain: 'accel', coherent: false },
    // ConnectX-5 and an FPGA accelerator, both with No Snoop at its reset default (enabled).
    { t: 'device', vm, bdf: nic, domain: 'nic', vendorId: '0x15b3', deviceId: '0x1017', nosnoop: 'enabled' },
    { t: 'device', vm, bdf: acc, domain: 'accel', vendorId: '0x10ee', deviceId: '0x903f', nosnoop: 'enabled' }
  ];
  // The guest's vIOMMU driver maps one page at a time into one device's domain and unmaps it
  // later; every live mapping holds its own guest page. 200,000 map/unmap events in all.
  const EVENTS = 200_000;
  const GUEST_PAGES = (8 * GiB) / PAGE;
  const free: number[] = [];
  for (let i = GUEST_PAGES - 1; i >= 0; i--) free.push(i);
  // Shuffle the free list so host pages come out scattered.
  for (let i = free.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = free[i] as number;
    free[i] = free[j] as number;
    free[j] = t;
  }
  const live: { iova: number; hpa: number }[] = [];
  const nicBase = 0x1_0000_0000;
  const accBase = 0x80_0000_0000;
  let nicNext = 0;
  let accNext = 0;
  let events = 0;
  while (events < EVENTS) {
    const remaining = EVENTS - events;
    const unmap = live.length > 0 && (live.length >= 4096 || rand() < 0.5 || remaining <= live.length);
    if (unmap) {
      const at = Math.floor(rand() * live.length);
      const last = live.pop() as { iova: number; hpa: number };
      const m = at < live.length ? (live.splice(at, 1, last)[0] as { iova: number; hpa: number }) : last;
      lines.push({ t: 'unpin', vm, iova: hex(m.iova), length: hex(PAGE) });
      free.push(m.hpa);
    } else {
      const toAcc = rand() < 0.1;
      const iova = toAcc ? accBase + (accNext++ % 65_536) * PAGE : nicBase + (nicNext++ % 1_048_576) * PAGE;
      const hpa = free.pop() as number;
      lines.push({ t: 'pin', vm, iova: hex(iova), hpa: hex(0x2_0000_0000 + hpa * PAGE), length: hex(PAGE), domains: [toAcc ? 'accel' : 'nic'] });
      live.push({ iova, hpa });
    }
    events++;
  }
  lines.push({ t: 'delete-vm', vm });
  return {
    header: {
      t: 'trace',
      version: TRACE_VERSION,
      name: 'viommu-network',
      seed,
      description: `vIOMMU network VM: ${EVENTS.toLocaleString('en-US')} single-page map/unmap events, 90% for a NIC in a coherent domain, 10% for an accelerator in a non-coherent domain`
    },
    lines
  };
}

function server1TiB(seed: number): GeneratedTrace {
  const vm = 'server';
  const nicVf = '0000:3b:00.2';
  const acc = '0000:af:00.0';
  const RANGES = TiB / (2 * MiB);
  const lines: TraceLine[] = [
    { t: 'vm', vm, arch: 'x86_64' },
    { t: 'domain', vm, domain: 'coherent', coherent: true },
    { t: 'domain', vm, domain: 'accel', coherent: false },
    { t: 'device', vm, bdf: nicVf, domain: 'coherent', vendorId: '0x8086', deviceId: '0x1889', function: 'vf', nosnoop: 'disabled' },
    // An accelerator whose driver keeps No Snoop off. A reset vfio-pci performs restores config
    // space (the bit stays off); one the device does by itself (firmware recovery) does not, and
    // turns the bit back on (R1).
    { t: 'device', vm, bdf: acc, domain: 'accel', vendorId: '0x10de', deviceId: '0x2330', nosnoop: 'disabled' },
    // Boot: 1 TiB as 2 MiB pages on scattered host huge pages (every other 2 MiB).
    { t: 'pin', vm, iova: '0x0', hpa: hex(0x100_0000_0000), length: hex(2 * MiB), repeat: { count: RANGES, hpaStride: hex(4 * MiB) } },
    { t: 'reset', vm, bdf: acc },
    { t: 'devctl', vm, bdf: acc, nosnoopEnable: false },
    { t: 'reset', vm, bdf: acc, restoresConfig: false },
    { t: 'devctl', vm, bdf: acc, nosnoopEnable: false },
    { t: 'delete-vm', vm }
  ];
  return {
    header: {
      t: 'trace',
      version: TRACE_VERSION,
      name: 'server-1tib',
      seed,
      description: '1 TiB server VM pinned as 524,288 x 2 MiB at boot; a NIC VF in a coherent domain; an accelerator in a non-coherent domain reset twice (once by vfio-pci, config restored; once by itself, not), its driver clearing No Snoop after each; teardown'
    },
    lines
  };
}
