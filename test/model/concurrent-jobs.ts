/**
 * The flush jobs of the concurrent-callers model's VMM (concurrent-host.ts): kept as the README
 * tells a VMM (player/job-book.ts), acknowledged over the wire (concurrent-wire.ts). An
 * acknowledgement answered 2xx is kept, whatever happens next; one answered 503 while the store
 * is down is sent again later, and what waits for the job keeps waiting meanwhile.
 */
import { covers, pageSet, type Range } from './player/ranges.js';
import { JobBook } from './player/job-book.js';
import { parseRanges, type ServiceLink } from './concurrent-wire.js';

/** What the jobs check against: an answer the VMM got, with the job it named and the ranges it listed. */
export interface AnsweredJob {
  readonly index: number;
  readonly what: string;
  readonly jobId: string | undefined;
  readonly ranges: readonly Range[];
}

export class WireJobs {
  /** Jobs the VMM knows of with their ranges (its answers', others' as listed), until acknowledged. */
  readonly book = new JobBook();
  /** Job ids of the VMM's own answers (and how many answers named each). */
  readonly #own = new Map<string, number>();
  /** Jobs whose acknowledgement the VMM got a 2xx answer for: kept, whatever happens next. */
  readonly #kept = new Set<string>();
  /** Jobs performed whose acknowledgement was answered 503: sent again later. */
  readonly #retry = new Set<string>();
  readonly #link: ServiceLink;
  readonly #rules: string[];
  readonly #trace: string[];

  constructor(link: ServiceLink, sinks: { readonly rules: string[]; readonly trace: string[] }) {
    this.#link = link;
    this.#rules = sinks.rules;
    this.#trace = sinks.trace;
  }

  /** An answer of `caller` names job `id` with `ranges`; returns how many answers named it before (an obligation is per answer: 0). */
  answered(id: string, caller: number, ranges: readonly Range[]): number {
    const n = this.#own.get(id) ?? 0;
    this.#own.set(id, n + 1);
    // What the VMM will flush for this job: what its callers were told.
    this.book.tell(id, caller, ranges);
    return n;
  }

  /** A job of one of the VMM's own answers. */
  isOwn(id: string): boolean {
    return this.#own.has(id);
  }

  /** Named by exactly one answer of the VMM (a shared job is a broken rule of its own). */
  #once(id: string | undefined): id is string {
    return id !== undefined && (this.#own.get(id) ?? 0) <= 1;
  }

  /** Acknowledgements still to be sent again. */
  get pending(): readonly string[] {
    return [...this.#retry];
  }

  /** Acknowledges job `id` on a replica drawn at random. */
  async ack(id: string): Promise<void> {
    const link = this.#link;
    const via = link.anyVia();
    const url = `/v1/flush-jobs/${id}/ack`;
    let body: { state?: string } | null;
    if (link.storeFaults) {
      const res = await link.call('POST', url, undefined, via);
      if (link.storeDown(res)) {
        // Not kept (or not known to be): the VMM sends it again later; until then it waits for it.
        link.faults.ackRetries++;
        this.#retry.add(id);
        this.#trace.push(`  ack of ${id.slice(0, 11)} answered 503: sent again later`);
        return;
      }
      if (res.status >= 300) this.#rules.push(`POST ${url} answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      body = res.status >= 300 ? null : (res.body as { state?: string });
    } else {
      body = (await link.ok('POST', url, undefined, via)) as { state?: string } | null;
    }
    if (body === null) return;
    this.#retry.delete(id);
    this.#kept.add(id);
    if (body.state !== 'acknowledged' && body.state !== 'done') this.#rules.push(`ack of ${id} answered state ${body.state}`);
    this.book.done(id);
  }

  /** Sends again the acknowledgements the store could not keep. */
  async retryAcks(): Promise<void> {
    for (const id of [...this.#retry]) await this.ack(id);
  }

  /** Whether job `id` is acknowledged (or otherwise done), polling the service for jobs the VMM does not hold. */
  async acknowledged(id: string): Promise<boolean> {
    if (this.book.isDone(id)) return true;
    if (this.book.has(id)) return false;
    // Asked of every replica: one that has not applied the change behind it yet does not know it.
    let known = false;
    for (let via = 0; via < this.#link.replicas; via++) {
      const res = await this.#link.call('GET', `/v1/flush-jobs/${id}`, undefined, via);
      if (res.status === 404) continue;
      known = true;
      const state = (res.body as { state?: string }).state;
      if (state === 'acknowledged' || state === 'done') {
        this.book.done(id);
        return true;
      }
    }
    if (!known) {
      this.#rules.push(`flush.after names job ${id}, which the service does not know`);
      this.book.done(id);
      return true;
    }
    return false;
  }

  /**
   * The pages of `reach` (unflushed pages a change lets No-Snoop devices reach, with who reaches
   * them) that neither the answer's own flush nor an outstanding job of its `after` covers, each
   * with an outstanding job that covers it and the answer does not name, if there is one; and
   * how many pages only an `after` job covers. Jobs of `after` the VMM does not hold are read
   * from replica `via`.
   */
  async uncovered(
    answer: { readonly jobId: string | undefined; readonly after: readonly string[] },
    of: { readonly own: readonly Range[]; readonly reach: ReadonlyMap<number, string>; readonly via: number }
  ): Promise<{ gaps: { page: number; who: string; holder: string | undefined }[]; coveredByAfter: number }> {
    const book = this.book;
    const afterRanges: (readonly Range[])[] = [];
    for (const id of answer.after) {
      if (book.isDone(id)) continue;
      const known = book.told(id)?.ranges ?? (await this.#link.fetchRanges(id, of.via));
      if (!book.has(id)) book.tell(id, -1, known);
      afterRanges.push(known);
    }
    const gaps: { page: number; who: string; holder: string | undefined }[] = [];
    let coveredByAfter = 0;
    for (const [page, who] of of.reach) {
      if (covers(of.own, page)) continue;
      if (afterRanges.some((ranges) => covers(ranges, page))) {
        coveredByAfter++;
        continue;
      }
      const holder = book.outstanding().find((id) => !answer.after.includes(id) && id !== answer.jobId && covers(book.told(id)?.ranges ?? [], page));
      gaps.push({ page, who, holder });
    }
    return { gaps, coveredByAfter };
  }

  /** "An acknowledgement answered 200 is kept": every job the VMM got a 2xx acknowledgement for is acknowledged (or done) on replica `via`. */
  async checkKept(via: number, label: string, out: string[]): Promise<void> {
    for (const id of this.#kept) {
      const res = await this.#link.call('GET', `/v1/flush-jobs/${id}`, undefined, via);
      const state = res.status === 200 ? (res.body as { state?: string }).state : undefined;
      if (state !== 'acknowledged' && state !== 'done') out.push(`${label}: job ${id}, whose acknowledgement was answered 2xx, is ${res.status === 200 ? state : `answered ${res.status}`} on replica ${via}`);
    }
  }

  /**
   * No job shared or grown: each job of the VMM's answers lists exactly the ranges its answer
   * listed, as replica `via` tells it (a replica that cannot list a job's ranges breaks a rule
   * too), or as the app tells it at the teardown (`via` null: a job it no longer lists is let go).
   */
  async checkAsAnswered(answers: readonly AnsweredJob[], via: number | null): Promise<void> {
    for (const a of answers) {
      if (!this.#once(a.jobId)) continue;
      const res = await this.#link.call('GET', `/v1/flush-jobs/${a.jobId}/ranges?limit=10000`, undefined, via ?? 0);
      if (res.status !== 200) {
        if (via !== null) this.#rules.push(`job ${a.jobId} of #${a.index} (${a.what}): replica ${via} answered ${res.status} for its ranges after catching up to rev ${this.#link.maxRevision}`);
        continue;
      }
      const listed = pageSet(parseRanges((res.body as { items: { hpa: string; length: string }[] }).items));
      const answered = pageSet(a.ranges);
      if (listed.size !== answered.size || [...listed].some((p) => !answered.has(p))) {
        this.#rules.push(`job ${a.jobId} of #${a.index} (${a.what}) holds ${listed.size} page(s)${via === null ? '' : ` on replica ${via}`}, its answer listed ${answered.size}: a job is exactly its answer's flush`);
      }
    }
  }
}
