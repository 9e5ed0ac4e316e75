/**
 * The service's state against what the answers the concurrent-callers model's VMM got 2xx for
 * make it (concurrent-host.ts checkState): "nothing refused is kept, nothing answered is lost".
 */
import { PAGE, pageHex, showRanges, type ServiceLink } from './concurrent-wire.js';
import { pageSet } from './player/ranges.js';

/** What the 2xx answers make the VM. */
export interface Expected {
  /** Ranges accepted and not unpinned, each flagged iff a 2xx answer's pin or replay flush covered it. */
  readonly pins: readonly { readonly iova: number; readonly hpa: number; readonly pages: number; readonly flagged: boolean }[];
  /** Every device of the model: the domain last answered (null: not assigned), and whether the VMM will let it emit No-Snoop. */
  readonly devices: readonly { readonly bdf: string; readonly dom: number | null; readonly emits: boolean; readonly bit: 0 | 1; readonly unknown: boolean }[];
}

export interface Where {
  /** The replica read. */
  readonly via: number;
  /** What the differences are labelled with. */
  readonly label: string;
  /** Read at least this fresh (besides the VM's last answer). */
  readonly minRevision?: number | undefined;
}

/**
 * Compares the VM as replica `via` holds it (read with `?minRevision=` at least the VM's last
 * answer) with `expected`: exactly the ranges accepted and not unpinned, each with flushOnUnpin
 * iff a 2xx answer's pin or replay flush covered it; the devices assigned, each in the domain
 * last answered; a device the VMM will let emit No-Snoop counting as one that may; the VM at the
 * revision of its last 2xx answer. Differences go to `out`. False when the replica answered 503
 * (the store down, with storeFaults).
 */
export async function checkState(link: ServiceLink, vmId: string, expected: Expected, out: string[], where: Where): Promise<boolean> {
  const { via, label } = where;
  const vmUrl = `/v1/vms/${vmId}`;
  const min = Math.max(link.maxRevision, where.minRevision ?? 0);
  const fresh = min > 0 ? `minRevision=${min}` : '';
  const vmRes = await link.call('GET', `${vmUrl}${fresh === '' ? '' : `?${fresh}`}`, undefined, via);
  if (link.storeDown(vmRes)) {
    link.faults.readsRefused++;
    return false;
  }
  if (vmRes.status !== 200) {
    out.push(`${label}: GET ${vmUrl} on replica ${via} answered ${vmRes.status} ${JSON.stringify(vmRes.body).slice(0, 200)}`);
    return true;
  }
  const pinsRes = await link.call('GET', `${vmUrl}/pins?limit=1000${fresh === '' ? '' : `&${fresh}`}`, undefined, via);
  if (link.storeDown(pinsRes)) return false;
  if (pinsRes.status !== 200) {
    out.push(`${label}: GET ${vmUrl}/pins on replica ${via} answered ${pinsRes.status} ${JSON.stringify(pinsRes.body).slice(0, 200)}`);
    return true;
  }
  link.faults.stateChecks++;
  const at = `${label} (replica ${via}, after rev ${link.maxRevision})`;
  const revision = (vmRes.body as { revision: number }).revision;
  if (revision !== link.maxRevision) out.push(`${at}: the VM is at revision ${revision}, its last 2xx answer's is ${link.maxRevision}`);
  const items = (pinsRes.body as { items: { iova: string; hpa: string; length: string; flushOnUnpin: boolean }[] }).items;
  const held = new Map(items.map((p) => [Number(BigInt(p.iova) / BigInt(PAGE)), p]));
  for (const pin of expected.pins) {
    const got = held.get(pin.iova);
    held.delete(pin.iova);
    const what = `range iova ${pageHex(pin.iova)} hpa ${showRanges([{ hpa: pin.hpa, pages: pin.pages }])}`;
    if (got === undefined) {
      out.push(`${at}: ${what}, pinned by a 2xx answer and never unpinned, is not held`);
      continue;
    }
    if (Number(BigInt(got.hpa) / BigInt(PAGE)) !== pin.hpa || Number(BigInt(got.length) / BigInt(PAGE)) !== pin.pages) out.push(`${at}: ${what} is held as hpa ${got.hpa} length ${got.length}`);
    if (got.flushOnUnpin !== pin.flagged) out.push(`${at}: ${what} has flushOnUnpin ${got.flushOnUnpin}, but ${pin.flagged ? 'a 2xx answer flushed it (pin or replay)' : 'no 2xx answer flushed it'}`);
  }
  for (const p of held.values()) out.push(`${at}: range iova ${p.iova} hpa ${p.hpa} is held, but no 2xx answer pinned it (or its unpin was answered)`);
  const vm = vmRes.body as { devices: { bdf: string; domainId: string | null; nosnoop: string; mayNoSnoop: boolean }[] };
  const devices = new Map(vm.devices.map((d) => [d.bdf, d]));
  for (const dev of expected.devices) {
    const got = devices.get(dev.bdf);
    devices.delete(dev.bdf);
    if (dev.dom === null) {
      if (got !== undefined) out.push(`${at}: ${dev.bdf} is assigned, but no 2xx answer assigned it`);
      continue;
    }
    if (got === undefined) {
      out.push(`${at}: ${dev.bdf}, assigned by a 2xx answer, is not held`);
      continue;
    }
    if (got.domainId !== `d${dev.dom}`) out.push(`${at}: ${dev.bdf} is held in ${got.domainId}, its last answer put it in d${dev.dom}`);
    if (dev.emits && !got.mayNoSnoop) out.push(`${at}: ${dev.bdf} (nosnoop ${got.nosnoop}) counts as unable to no-snoop, yet the answers let it emit No-Snoop (bit ${dev.bit}${dev.unknown ? ', unknown' : ''})`);
  }
  for (const bdf of devices.keys()) out.push(`${at}: ${bdf} is held, not a device of the model`);
  return true;
}

/** Whether every page of a range is in `flagged`. */
export function allFlagged(range: { readonly hpa: number; readonly pages: number }, flagged: ReadonlySet<number>): boolean {
  return [...pageSet([range])].every((p) => flagged.has(p));
}
