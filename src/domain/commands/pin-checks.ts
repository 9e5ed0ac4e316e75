/**
 * What a pin or an unpin refuses, checked before anything changes: the map and unmap queries
 * check the ranges they preview with the same functions, so a preview refuses what the change would.
 */
import { checkSpan, formatPages } from '../address.js';
import { DomainError } from '../errors.js';
import type { Vm } from '../state.js';
import type { PinInput, RangeInput } from './command.js';

/**
 * Everything a pin refuses, checked before anything changes. The map query checks the ranges it
 * previews as pins with this too. An hpa of NaN (a query that does not know it) is not checked.
 */
export function validatePins(vm: Vm, ranges: readonly PinInput[]): void {
  if (vm.domains.size === 0) {
    throw new DomainError('VM_HAS_NO_DOMAINS', `VM ${vm.id} has no IOMMU domain to map into; attach one first`, { vmId: vm.id });
  }
  for (const r of ranges) {
    checkRange(r.iova, r.pages, 'iova');
    if (!Number.isNaN(r.hpa)) checkRange(r.hpa, r.pages, 'hpa');
    for (const d of r.domains ?? []) {
      if (!vm.domains.has(d)) {
        throw new DomainError('UNKNOWN_DOMAIN', `pin names domain ${d}, which does not exist in VM ${vm.id}`, { vmId: vm.id, domainId: d });
      }
    }
  }
  // Overlaps inside the batch: sort by IOVA and compare neighbours.
  if (ranges.length > 1) checkBatchOverlaps(vm, ranges);
  for (const r of ranges) {
    vm.pins.forEachOverlap(r.iova, r.iova + r.pages, (start, pages) => {
      throw pinOverlap(vm, r, start, pages);
    });
  }
}

export function pinOverlap(vm: Vm, r: RangeInput, start: number, pages: number): DomainError {
  return new DomainError('PIN_OVERLAP', `iova ${formatPages(r.iova)} + ${formatPages(r.pages)} overlaps the pinned range at ${formatPages(start)}`, {
    vmId: vm.id,
    iova: formatPages(r.iova),
    conflict: { iova: formatPages(start), length: formatPages(pages) }
  });
}

function checkBatchOverlaps(vm: Vm, ranges: readonly PinInput[]): void {
  const order = ranges.map((_r, i) => i).sort((a, b) => (ranges[a] as PinInput).iova - (ranges[b] as PinInput).iova);
  for (let k = 1; k < order.length; k++) {
    const a = ranges[order[k - 1] as number] as PinInput;
    const b = ranges[order[k] as number] as PinInput;
    if (a.iova + a.pages > b.iova) {
      throw new DomainError('PIN_OVERLAP', `ranges in the batch overlap at iova ${formatPages(b.iova)}`, {
        vmId: vm.id,
        iova: formatPages(b.iova)
      });
    }
  }
}

export function checkRange(start: number, pages: number, field: string): void {
  if (!Number.isSafeInteger(start) || start < 0) throw new DomainError('INVALID_HEX', `${field} is not a page address`, { field });
  if (!Number.isSafeInteger(pages) || pages < 1) throw new DomainError('INVALID_LENGTH', 'length must be at least one page', { field: 'length' });
  checkSpan(start, pages, field);
}

/**
 * What an unpin of [iova, iova + pages) releases: every pinned range inside it, written into
 * `found` four numbers each (start, pages, hpa, attr); returns how many. Refuses what unpin
 * refuses (UNKNOWN_RANGE, UNPIN_BISECTS); the unmap query checks with it too. `overlaps`: the
 * lookup of a batch asked in IOVA order (PinMap.overlapsInOrder), else collectOverlaps.
 */
export function unpinVictims(vm: Vm, iova: number, pages: number, found: number[], overlaps?: (start: number, end: number, out: number[]) => number): number {
  checkRange(iova, pages, 'iova');
  const end = iova + pages;
  const hits = overlaps === undefined ? vm.pins.collectOverlaps(iova, end, found) : overlaps(iova, end, found);
  for (let h = 0; h < hits; h++) {
    const start = found[4 * h] as number;
    const length = found[4 * h + 1] as number;
    if (start < iova || start + length > end) {
      throw new DomainError('UNPIN_BISECTS', `unpin of ${formatPages(iova)} + ${formatPages(pages)} would cut the pinned range at ${formatPages(start)} in two`, {
        vmId: vm.id,
        conflict: { iova: formatPages(start), length: formatPages(length) }
      });
    }
  }
  if (hits === 0) {
    throw new DomainError('UNKNOWN_RANGE', `nothing is pinned in ${formatPages(iova)} + ${formatPages(pages)}`, {
      vmId: vm.id,
      iova: formatPages(iova)
    });
  }
  return hits;
}

