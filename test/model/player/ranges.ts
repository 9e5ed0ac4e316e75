/**
 * Host page ranges as the players pass them around: what a flush covers, where a pinned range
 * sits. Page numbers, not bytes: every hazard the models look for is per page.
 */
export interface Range {
  /** The first host page. */
  readonly hpa: number;
  readonly pages: number;
}

export function totalPages(ranges: readonly Range[]): number {
  return ranges.reduce((n, r) => n + r.pages, 0);
}

export function covers(ranges: readonly Range[], page: number): boolean {
  return ranges.some((r) => page >= r.hpa && page < r.hpa + r.pages);
}

export function pageSet(ranges: readonly Range[]): Set<number> {
  const out = new Set<number>();
  for (const r of ranges) for (let p = r.hpa; p < r.hpa + r.pages; p++) out.add(p);
  return out;
}

/** The `n`th entry of `list`, counted round: events name what they act on by a number of their own. */
export function pick<T>(list: readonly T[], n: number): T | undefined {
  return list.length === 0 ? undefined : list[n % list.length];
}
