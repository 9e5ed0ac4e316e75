/**
 * The reference for the concurrent-callers model: the changes the VMM got 2xx for, replayed
 * alone on a fresh in-memory service, must be decided there as the service answered them, and
 * leave the VM in the state the service holds.
 */
import type { FastifyInstance } from 'fastify';
import { DEFAULT_POLICY, defaultQuirksFile, parseQuirkFile } from '../../src/domain/index.js';
import { createRuntime } from '../../src/service/runtime.js';
import { build, json } from '../helpers/app.js';
import type { ConcurrentHost } from './concurrent-host.js';
import { QUIRK_TABLES } from './concurrent-scenarios.js';
import { sleep } from './concurrent-wire.js';
import { INLINE_POOL } from './inline-pool.js';

/**
 * An in-memory app to replay answered changes on (FLUSH_ACKS=answered: nothing waits there for
 * an acknowledgement, and no flush it plans is anyone's to perform).
 */
export async function referenceApp(): Promise<FastifyInstance> {
  return build({ runtime: createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), pool: INLINE_POOL, windowMs: 1, simThreads: 0, flushAcks: 'answered' }) });
}

/** What an answer decided, without what depends on jobs (ids, `after`) or on time (the revision). */
function decided(body: unknown): unknown {
  if (typeof body !== 'object' || body === null) return body;
  const b = body as Record<string, unknown> & { flush?: Record<string, unknown> & { ranges?: { hpa: string; length: string }[] } };
  if (b.flush === undefined) return null;
  const flush: Record<string, unknown> = { ...b.flush };
  delete flush['jobId'];
  delete flush['after'];
  const sorted = [...(b.flush.ranges ?? [])].sort((x, y) => (BigInt(x.hpa) < BigInt(y.hpa) ? -1 : BigInt(x.hpa) > BigInt(y.hpa) ? 1 : 0));
  return { flush: { ...flush, ranges: sorted }, reasons: b['reasons'], kvmNoncoherentDma: b['kvmNoncoherentDma'], decision: b['decision'], hardwareValue: b['hardwareValue'], guestValue: b['guestValue'], devices: b['devices'] };
}

/** A VM's state as GET /v1/vms/{id} shows it, without what depends on jobs or time. */
function vmState(body: unknown): unknown {
  const b = body as Record<string, unknown>;
  return { arch: b['arch'], policy: b['policy'], domains: b['domains'], devices: b['devices'], pinned: b['pinned'], kvmNoncoherentDma: b['kvmNoncoherentDma'] };
}

function firstDifference(a: unknown, b: unknown, path = ''): string | null {
  if (JSON.stringify(a) === JSON.stringify(b)) return null;
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
      if (d !== null) return d;
    }
  }
  return `${path || '.'}: ${JSON.stringify(a)?.slice(0, 300)} vs ${JSON.stringify(b)?.slice(0, 300)}`;
}

export interface ReferenceOptions {
  /** The service's replicas (the app first) and those to compare the state on. */
  readonly replicas: readonly FastifyInstance[];
  readonly vias: readonly number[];
  readonly quirkRevisions?: readonly number[];
  /** The quirk list put before the host's setup (quirksAtSetup false), put first on the reference. */
  readonly quirkTable?: 0 | 1;
}

/**
 * "Nothing refused is kept, nothing answered is lost, no answered change rests on a refused
 * one": replays the changes the host's VMM got 2xx for (its VM's, and the quirk lists it put),
 * in revision order, on `ref`, a fresh in-memory service. Each must be decided there exactly as
 * the service answered it (flush ranges, verdicts, values to write, reasons), and the VM's state
 * there must equal the service's (on every replica in `vias`, read at least as fresh as the VM's
 * last answer): domains, devices with their No-Snoop states, pinned ranges with their flags.
 * `quirkRevisions`: the revisions of the quirk lists put during the run, in order (from the
 * audit trail), for those that decided nothing for the VM; without them such a list is placed
 * first. Differences go to host.state. Call it between rounds, before the teardown.
 */
export async function referenceCheck(ref: FastifyInstance, host: ConcurrentHost, options: ReferenceOptions): Promise<void> {
  const { replicas, vias, quirkRevisions } = options;
  if (options.quirkTable !== undefined) await ref.inject({ method: 'PUT', url: '/v1/quirks', headers: json, payload: { quirks: QUIRK_TABLES[options.quirkTable] } });
  const quirkPuts = host.changes.filter((c) => c.url === '/v1/quirks');
  if (quirkRevisions !== undefined && quirkRevisions.length !== quirkPuts.length) {
    host.state.push(`reference: the audit trail holds ${quirkRevisions.length} quirk list(s) put during the run, the VMM got 2xx for ${quirkPuts.length}`);
  }
  const placed = host.changes
    .filter((c) => !(c.method === 'DELETE' && c.url === `/v1/vms/${host.vmId}`))
    .map((c) => {
      if (c.url !== '/v1/quirks') return { c, rev: c.revision ?? -1 };
      const audited = quirkRevisions?.[quirkPuts.indexOf(c)];
      if (audited !== undefined && c.revision !== null && audited !== c.revision) host.state.push(`reference: the quirk list answered at rev ${c.revision} is audited at rev ${audited}`);
      return { c, rev: c.revision ?? audited ?? -1 };
    })
    .sort((x, y) => x.rev - y.rev || x.c.order - y.c.order);
  for (const { c, rev } of placed) {
    const res = await ref.inject({ method: c.method, url: c.url, ...(c.payload === undefined ? {} : { headers: json, payload: c.payload }) });
    const what = `${c.method} ${c.url} ${JSON.stringify(c.payload ?? {}).slice(0, 120)} (rev ${rev})`;
    if (res.statusCode >= 300) {
      host.state.push(`reference: ${what}, answered ${c.status}, is refused ${res.statusCode} on the answered changes alone: ${res.body.slice(0, 200)}`);
      continue;
    }
    if (c.method === 'PUT' && c.url === `/v1/vms/${host.vmId}`) continue;
    let got: unknown = JSON.parse(res.body);
    let had: unknown = c.body;
    if (c.url === '/v1/quirks') {
      const entry = (b: unknown): unknown => ((b as { vms?: { vmId: string }[] }).vms ?? []).find((v) => v.vmId === host.vmId) ?? null;
      got = entry(got);
      had = entry(had);
    }
    const d = firstDifference(decided(had), decided(got));
    if (d !== null) host.state.push(`reference: ${what} was answered otherwise than the answered changes before it decide it (service vs reference): ${d}`);
  }
  // At least as fresh as the VM's last answer and every quirk list put (a list that decided nothing for the VM has no revision of its own there).
  const min = Math.max(host.maxRevision, ...(quirkRevisions ?? []));
  const fresh = min > 0 ? `minRevision=${min}` : '';
  const refVm = await ref.inject({ method: 'GET', url: `/v1/vms/${host.vmId}` });
  const refPins = await ref.inject({ method: 'GET', url: `/v1/vms/${host.vmId}/pins?limit=1000` });
  for (const via of vias) {
    const app = replicas[via] as FastifyInstance;
    // Reads answer 503 while the state is reloaded after a store failure: asked again meanwhile.
    let vm = await app.inject({ method: 'GET', url: `/v1/vms/${host.vmId}${fresh === '' ? '' : `?${fresh}`}` });
    let pins = await app.inject({ method: 'GET', url: `/v1/vms/${host.vmId}/pins?limit=1000${fresh === '' ? '' : `&${fresh}`}` });
    for (let i = 0; i < 50 && (vm.statusCode === 503 || pins.statusCode === 503); i++) {
      await sleep(100);
      vm = await app.inject({ method: 'GET', url: `/v1/vms/${host.vmId}${fresh === '' ? '' : `?${fresh}`}` });
      pins = await app.inject({ method: 'GET', url: `/v1/vms/${host.vmId}/pins?limit=1000${fresh === '' ? '' : `&${fresh}`}` });
    }
    if (vm.statusCode !== 200 || pins.statusCode !== 200 || refVm.statusCode !== 200 || refPins.statusCode !== 200) {
      host.state.push(`reference: GET on replica ${via} answered ${vm.statusCode}/${pins.statusCode}, on the reference ${refVm.statusCode}/${refPins.statusCode}`);
      continue;
    }
    const dv = firstDifference(vmState(JSON.parse(vm.body)), vmState(JSON.parse(refVm.body)));
    if (dv !== null) host.state.push(`reference: replica ${via}'s VM differs from the answered changes' (service vs reference): ${dv}`);
    const dp = firstDifference(JSON.parse(pins.body), JSON.parse(refPins.body));
    if (dp !== null) host.state.push(`reference: replica ${via}'s pinned ranges differ from the answered changes' (service vs reference): ${dp}`);
  }
  await ref.inject({ method: 'DELETE', url: `/v1/vms/${host.vmId}` });
}
