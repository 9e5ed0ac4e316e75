import type { LoadedJob, StoredJob, StoredJobPart } from './state-store.js';

/**
 * Flush jobs as loaded: state records and parts joined by job id, in order of first appearance
 * (records first: they are older, or carry their ranges themselves).
 */
export function mergeJobs(records: readonly StoredJob[], parts: readonly StoredJobPart[]): LoadedJob[] {
  const byId = new Map<string, { id: string; vmId: string; body: string | null; header: string | null; parts: Float64Array[]; own: Float64Array | null }>();
  for (const r of records) byId.set(r.id, { id: r.id, vmId: r.vmId, body: r.body, header: null, parts: [], own: r.pairs });
  for (const p of parts) {
    let job = byId.get(p.id);
    if (job === undefined) {
      job = { id: p.id, vmId: p.vmId, body: null, header: p.header, parts: [], own: null };
      byId.set(p.id, job);
    }
    job.header ??= p.header;
    job.parts.push(p.pairs);
  }
  return [...byId.values()].map((j) => {
    let pairs = j.own;
    if (j.parts.length > 0) {
      pairs = new Float64Array(j.parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of j.parts) {
        pairs.set(p, at);
        at += p.length;
      }
    }
    return { id: j.id, vmId: j.vmId, body: j.body, header: j.header, parts: j.parts.length, pairs };
  });
}
