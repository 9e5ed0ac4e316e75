/**
 * The concurrent-callers model (test/model/concurrent-host.ts: host pages dirty until flushed,
 * real Enable No Snoop bits, devices reading every page they reach with No-Snoop, stale lines at
 * release; a VMM following the README's protocol with 2-3 callers per VM and requests in flight
 * at once) under two kinds of fault:
 *
 * 1. Store failures on a real full disk. The service runs with its embedded SQLite store on a
 *    small tmpfs (mounted for the test; the test needs the right to mount one and says so when
 *    it does not have it), a fresh data directory per run, 1-6 VMs of random policy modes on it
 *    at once (or one VM whose operator also changes the quirk list). In the middle of a run,
 *    while a round's requests are in flight, the file system is filled up to a small spare (so
 *    that larger writes, and soon every write, are refused); 1-3 rounds later it is freed. The
 *    contract (README "Commit fences", "Faults never kill it or lie"): a change answered 503
 *    STORE_UNAVAILABLE changed nothing, so the VMM does not act on it (an acknowledgement so
 *    answered is sent again later); a change answered 200 is kept; reads may answer 503 during
 *    the outage; once the disk is free the service recovers by itself within seconds. Checked:
 *    0 leaks and 0 corruptions through the whole run; every answer's own flush plus its
 *    flush.after covering what it lets No-Snoop devices reach; after every round the service
 *    could answer, right after the recovery, at the end and after a restart on the same data
 *    directory, the service's state being what the 200 answers make it (ranges accepted and not
 *    unpinned, flushOnUnpin iff a 200 answer's pin or replay flush covered the range, devices in
 *    the domain last answered, a device the VMM lets emit No-Snoop counting as able to, the VM's
 *    revision that of its last 200 answer); every acknowledgement answered 200 still there after
 *    the restart; and (the reference replay, concurrent-host.ts referenceCheck) every 200 answer
 *    being exactly what the 200 answers before it decide on a fresh service (no answered change
 *    rests on a refused one), with the VM's whole state equal to theirs.
 *
 * 2. Two replicas on one PostgreSQL (127.0.0.1), a VMM with callers on both: caller c of a VM
 *    talks to one replica, the next caller to the other; each acknowledgement goes to a replica
 *    drawn at random, and so does each listing of the VM's flush jobs (after a ?minRevision=
 *    read) and each operator's quirk list. Checked: 0 leaks, 0 corruptions, coverage, no job
 *    shared or grown (a job's /v1/flush-jobs/{id}/ranges is what its answer listed, asked of both
 *    replicas), after every round a replica drawn at random, read with ?minRevision=, showing
 *    exactly the state the answers make, each replica reaching the VM's last revision by itself
 *    (LISTEN/NOTIFY), and the reference replay as in 1, on both replicas (quirk lists placed by
 *    the audit trail).
 *
 * PROPERTY_RUNS (default 100: the PostgreSQL sequences; the store-fault property plays 2/7 as
 * many runs, 80-100 VMs, each run waiting about a second for the service to recover) and
 * PROPERTY_SEED override the runs and the seed; FAULTS_DEBUG=1 prints each store-fault run.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, defaultQuirksFile, parseQuirkFile } from '../../src/domain/index.js';
import { createRuntime } from '../../src/service/runtime.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { build, json } from '../helpers/app.js';
import { fillDisk, mountTmpfs } from '../helpers/tmpfs.js';
import { dropSchemas, freshSchema, PG_URL } from '../helpers/postgres.js';
import { ConcurrentHost, concurrentApp, WINDOW_MS } from './concurrent-host.js';
import { referenceApp, referenceCheck } from './concurrent-reference.js';
import { concurrentScenario, MODES, QUIRK_TABLES, replayStorm, type Config, type Scenario } from './concurrent-scenarios.js';
import { INLINE_POOL } from './inline-pool.js';

const RUNS = Number(process.env['PROPERTY_RUNS'] ?? 100);
const SEED = Number(process.env['PROPERTY_SEED'] ?? 20261208);

let ref: FastifyInstance;
beforeAll(async () => {
  ref = await referenceApp();
});
afterAll(async () => {
  await ref.close();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Revisions of the quirk lists put since `since` (ISO time), in order, from the audit trail (shared by replicas). */
async function quirkRevisions(app: FastifyInstance, since: string): Promise<number[]> {
  const out: number[] = [];
  let cursor: string | undefined;
  do {
    const res = await app.inject({ method: 'GET', url: `/v1/audit?since=${encodeURIComponent(since)}&limit=1000${cursor === undefined ? '' : `&cursor=${cursor}`}` });
    expect(res.statusCode, res.body).toBe(200);
    const page = res.json<{ items: { revision: number; action: string }[]; nextCursor?: string }>();
    for (const e of page.items) if (e.action === 'put-quirks') out.push(e.revision);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return out;
}

function failIfUnsafe(hosts: readonly ConcurrentHost[], extra: readonly string[] = []): void {
  const bad = hosts.filter((h) => !h.clean);
  if (bad.length === 0 && extra.length === 0) return;
  throw new Error([...extra, ...bad.map((h) => `--- VM ${h.vmId} ---\n${h.report()}`)].join('\n'));
}

// ---- 1. store failures on a full tmpfs ----------------------------------------------------------------

const disk = mountTmpfs('coherency-faults-', '16m');
const { path: mountPoint, mounted, why } = disk;
afterAll(() => {
  disk.remove();
});

interface Outage {
  /** The round during which the disk is filled (clamped to the run's last). */
  readonly at: number;
  /** How long after the round's requests are sent (ms). */
  readonly delayMs: number;
  /** Bytes left free. */
  readonly spare: number;
  /** Rounds played on the full disk after that one. */
  readonly rounds: number;
}

interface FaultRun {
  readonly quirks: 0 | 1;
  readonly vms: readonly Scenario[];
  readonly outage: Outage;
}

/** VMs on the service at once, at most (each run has 1 to this many). */
const VMS_PER_RUN = 6;
/** Runs of the store-fault property: about RUNS VMs in all. */
const FAULT_RUNS = Math.ceil((RUNS * 2) / (VMS_PER_RUN + 1));

/**
 * 1-6 VMs of random policy modes with no quirk-list changes (the VMs share the list, and each
 * host's model of what the bad device does follows its own operator), or one VM whose operator
 * changes the list too (a change that decides again for every VM); and an outage.
 */
const faultRun: fc.Arbitrary<FaultRun> = fc.record({
  quirks: fc.constantFrom<0 | 1>(0, 1),
  vms: fc.oneof(
    {
      weight: 3,
      arbitrary: fc.array(
        fc.constantFrom(...MODES).chain((spec) => concurrentScenario(spec, { quirks: 0, maxRounds: 8 })),
        { minLength: 1, maxLength: VMS_PER_RUN, size: 'max' }
      )
    },
    { weight: 1, arbitrary: fc.constantFrom(...MODES).chain((spec) => concurrentScenario(spec, { quirks: 2, maxRounds: 8 })).map((s) => [s]) }
  ),
  outage: fc.record({
    at: fc.nat(7),
    delayMs: fc.constantFrom(0, 0, 1, 2, 5, 10),
    spare: fc.constantFrom(0, 0, 4096, 16_384, 65_536),
    rounds: fc.integer({ min: 1, max: 3 })
  })
});

interface FaultTotals {
  runs: number;
  vms: number;
  /** Runs in which the store refused something (a change, an acknowledgement, a read, or the service went unhealthy). */
  bitten: number;
  refused: number;
  ackRetries: number;
  readsRefused: number;
  stateChecks: number;
  /** Changes refused while the disk was free and the service said it was ready (a write fenced silently). */
  refusedWhileReady: number;
  recoveryMs: number[];
  answers: number;
  probes: number;
}

async function sqliteApp(dir: string): Promise<FastifyInstance> {
  const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), pool: INLINE_POOL, windowMs: WINDOW_MS, simThreads: 0, store: new SqliteStore(dir) });
  const app = await build({ runtime, flushAckTimeoutMs: 5_000 });
  await app.policy.restore();
  return app;
}

/** Waits (at most 10 s) for the service to recover by itself; returns how long it took, or null. */
async function recovered(app: FastifyInstance): Promise<number | null> {
  const start = Date.now();
  while (Date.now() - start < 10_000) {
    if (app.policy.healthy && (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200) return Date.now() - start;
    await sleep(25);
  }
  return null;
}

let runs = 0;

async function playOutage(run: FaultRun, totals: FaultTotals): Promise<void> {
  const n = ++runs;
  const dir = join(mountPoint, `run${n}`);
  mkdirSync(dir);
  let app = await sqliteApp(dir);
  const problems: string[] = [];
  let hosts: ConcurrentHost[] = [];
  const filler: { path: string | null } = { path: null };
  let unhealthy = false;
  try {
    // One quirk list for every VM of the run, put before them (no VM changes it afterwards).
    const put = await app.inject({ method: 'PUT', url: '/v1/quirks', headers: json, payload: { quirks: QUIRK_TABLES[run.quirks] } });
    expect(put.statusCode, put.body).toBe(200);
    hosts = run.vms.map((s, i) => new ConcurrentHost(app, `sf${n}-${i}`, { ...s.config, quirks: run.quirks }, { storeFaults: true, quirksAtSetup: false }));
    await Promise.all(hosts.map((h) => h.setup()));
    const rounds = Math.max(...run.vms.map((s) => s.rounds.length));
    // Filled during round `at`, with (where the run is long enough) rounds of requests on the full disk after it.
    const at = Math.max(0, Math.min(run.outage.at, rounds - 1 - run.outage.rounds));
    const freeAt = at + run.outage.rounds;
    const free = async (label: string): Promise<void> => {
      if (filler.path === null) return;
      rmSync(filler.path, { force: true });
      filler.path = null;
      const ms = await recovered(app);
      if (ms === null) {
        problems.push(`${label}: the disk was freed, but the service had not recovered by itself 10 s later (healthy ${app.policy.healthy})`);
        return;
      }
      totals.recoveryMs.push(ms);
      // Right after the recovery: the state is what the 200 answers make it (nothing refused kept, nothing answered lost).
      await Promise.all(
        hosts.map(async (h) => {
          let compared = false;
          for (let i = 0; i < 5 && !compared; i++) {
            compared = await h.checkState(0, `after recovery (${label})`);
            if (!compared) await recovered(app);
          }
          if (!compared) problems.push(`${label}: VM ${h.vmId}'s state still unreadable (503) after the service said it recovered`);
        })
      );
    };
    for (let r = 0; r < rounds; r++) {
      let filling: Promise<void> | null = null;
      if (r === at) {
        filling = new Promise<void>((resolve) => {
          setTimeout(() => {
            filler.path = fillDisk(mountPoint, run.outage.spare);
            resolve();
          }, run.outage.delayMs);
        });
      }
      const before = hosts.reduce((k, h) => k + h.faults.refused, 0);
      const ready = filler.path === null && app.policy.healthy;
      await Promise.all(hosts.map((h, i) => h.round((run.vms[i] as Scenario).rounds[r] ?? [])));
      await filling;
      if (ready && filler.path === null && r !== at) totals.refusedWhileReady += hosts.reduce((k, h) => k + h.faults.refused, 0) - before;
      if (!app.policy.healthy) unhealthy = true;
      if (filler.path !== null && r >= freeAt) await free(`round ${r + 1}`);
      // Between rounds, whenever the service can be read: the state is what the answers make it.
      else await Promise.all(hosts.map((h) => h.checkState(0, `after round ${r + 1}`)));
    }
    await free('the end');
    // Every flush performed (acknowledgements refused meanwhile sent again), every change allowed made.
    await Promise.all(hosts.map((h) => h.settle(true)));
    if ((await recovered(app)) === null) problems.push('the service did not recover by itself at the end');
    // The quirk lists the (one) VM's operator put, placed by the audit trail (the first is the run's own, before the VMs).
    const quirks = hosts.length === 1 ? (await quirkRevisions(app, new Date(0).toISOString())).slice(1) : undefined;
    await Promise.all(
      hosts.map(async (h) => {
        await h.checkState(0, 'the end');
        await referenceCheck(ref, h, { replicas: [app], vias: [0], quirkTable: run.quirks, ...(quirks === undefined ? {} : { quirkRevisions: quirks }) });
      })
    );
    // A restart on the same data directory: every change and acknowledgement answered 200 is kept, nothing refused is.
    await app.close();
    app = await sqliteApp(dir);
    const restarted = app;
    await Promise.all(
      hosts.map(async (h) => {
        h.retarget([restarted]);
        await h.checkState(0, 'after a restart');
        await h.checkAcks(0, 'after a restart');
        await referenceCheck(ref, h, { replicas: [restarted], vias: [0], quirkTable: run.quirks, ...(quirks === undefined ? {} : { quirkRevisions: quirks }) });
        await h.finish();
      })
    );
  } finally {
    if (filler.path !== null) rmSync(filler.path, { force: true });
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
  totals.runs++;
  totals.vms += hosts.length;
  const f = hosts.reduce((acc, h) => ({ refused: acc.refused + h.faults.refused, ackRetries: acc.ackRetries + h.faults.ackRetries, readsRefused: acc.readsRefused + h.faults.readsRefused, stateChecks: acc.stateChecks + h.faults.stateChecks }), { refused: 0, ackRetries: 0, readsRefused: 0, stateChecks: 0 });
  totals.refused += f.refused;
  totals.ackRetries += f.ackRetries;
  totals.readsRefused += f.readsRefused;
  totals.stateChecks += f.stateChecks;
  if (unhealthy || f.refused + f.ackRetries + f.readsRefused > 0) totals.bitten++;
  for (const h of hosts) {
    totals.answers += h.stats.answers;
    totals.probes += h.stats.probes;
  }
  if (process.env['FAULTS_DEBUG'] !== undefined) process.stdout.write(`run ${n}: vms ${hosts.length} outage ${JSON.stringify(run.outage)} rounds ${run.vms.map((v) => v.rounds.length).join(',')} unhealthy ${unhealthy} refused ${f.refused} acks ${f.ackRetries} reads ${f.readsRefused}\n`);
  failIfUnsafe(hosts, problems);
}

describe('store failures on a full disk (embedded SQLite on a tmpfs), several VMs with concurrent callers', () => {
  it(
    mounted
      ? `${FAULT_RUNS} runs of 1-${VMS_PER_RUN} VMs each: the disk fills while requests are in flight, then is freed: refused changes are not acted on, 0 leaks, 0 corruptions, nothing refused kept, nothing answered lost, recovery by itself`
      : `needs a tmpfs mount (${why})`,
    async () => {
      expect(mounted, `mounting a tmpfs failed: ${why}`).toBe(true);
      const totals: FaultTotals = { runs: 0, vms: 0, bitten: 0, refused: 0, ackRetries: 0, readsRefused: 0, stateChecks: 0, refusedWhileReady: 0, recoveryMs: [], answers: 0, probes: 0 };
      await fc.assert(
        fc.asyncProperty(faultRun, (run) => playOutage(run, totals)),
        { numRuns: FAULT_RUNS, seed: SEED }
      );
      const sorted = [...totals.recoveryMs].sort((a, b) => a - b);
      process.stdout.write(
        `store faults: ${totals.runs} runs, ${totals.vms} VMs, ${totals.answers} answers, ${totals.bitten} runs bitten, ${totals.refused} changes refused, ${totals.ackRetries} acks sent again, ${totals.readsRefused} reads refused, ${totals.stateChecks} state checks, ${totals.refusedWhileReady} changes refused while ready, recovery median ${sorted[Math.floor(sorted.length / 2)] ?? 0} ms max ${sorted[sorted.length - 1] ?? 0} ms\n`
      );
      // Not vacuous (with enough runs to say): the disk bites, and the state is compared after it.
      if (RUNS < 50) return;
      expect(totals.bitten).toBeGreaterThan(totals.runs / 3);
      expect(totals.refused).toBeGreaterThan(totals.runs / 2);
      expect(totals.stateChecks).toBeGreaterThan(totals.vms);
    },
    // Each outage waits about a second for the service's own recovery: the runs take a minute
    // alone, more beside the rest of the suite.
    300_000
  );
});

// ---- 2. two replicas on one PostgreSQL ----------------------------------------------------------------

/** The replicas' batching window: still longer than a round (its answers share windows), shorter than WINDOW_MS to keep the runs quick. */
const REPLICA_WINDOW_MS = 50;

describe('two replicas on one PostgreSQL, the callers of a VM spread across them', () => {
  const schemas: string[] = [];
  let replicas: FastifyInstance[] = [];

  beforeAll(async () => {
    const schema = freshSchema('faults');
    schemas.push(schema);
    for (let i = 0; i < 2; i++) {
      const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile(defaultQuirksFile), pool: INLINE_POOL, windowMs: REPLICA_WINDOW_MS, simThreads: 0, store: new PostgresStore({ connectionString: PG_URL, schema }) });
      await runtime.start();
      runtime.service.follow();
      replicas.push(await build({ runtime, flushAckTimeoutMs: 5_000 }));
    }
    // Both listen before the runs start.
    await sleep(300);
  });
  afterAll(async () => {
    for (const app of replicas) await app.close();
    replicas = [];
    await dropSchemas(schemas);
  });

  /** Waits (at most 5 s) until replica `via`, not asked to catch up, shows the VM at `revision`. */
  async function follows(host: ConcurrentHost, via: number): Promise<string | null> {
    const app = replicas[via] as FastifyInstance;
    let seen = -1;
    for (let i = 0; i < 500; i++) {
      const res = await app.inject({ method: 'GET', url: `/v1/vms/${host.vmId}` });
      if (res.statusCode === 200) {
        seen = res.json<{ revision: number }>().revision;
        if (seen >= host.maxRevision) return null;
      }
      await sleep(10);
    }
    return `replica ${via} still shows VM ${host.vmId} at revision ${seen} 5 s after its last change (rev ${host.maxRevision}): it does not follow the other`;
  }

  let pgRuns = 0;
  const pgTotals = { runs: 0, answers: 0, withAfter: 0, afterWaits: 0, replays: 0, othersJobs: 0, probes: 0, coveredByAfter: 0, stateChecks: 0 };

  async function playReplicas(scenario: Scenario, seed: number): Promise<void> {
    const n = ++pgRuns;
    const since = new Date().toISOString();
    const host = new ConcurrentHost(replicas[0] as FastifyInstance, `pr${n}`, scenario.config, { replicas: replicas.slice(1), seed });
    const problems: string[] = [];
    await host.setup();
    for (const [r, round] of scenario.rounds.entries()) {
      await host.round(round);
      // Each replica applies the changes made through the other by itself (LISTEN/NOTIFY), read
      // before anything asks it to catch up.
      if (r === scenario.rounds.length - 1) {
        for (const via of [0, 1]) {
          const late = await follows(host, via);
          if (late !== null) problems.push(late);
        }
      }
      // Read-your-writes on either replica: exactly what the answers make the VM.
      await host.checkState((r + seed) % 2, `after round ${r + 1}`);
    }
    await host.settle(true);
    const quirks = await quirkRevisions(replicas[0] as FastifyInstance, since);
    for (const via of [0, 1]) {
      await host.checkState(via, 'the end', Math.max(0, ...quirks));
      await host.checkJobs(via);
    }
    await referenceCheck(ref, host, { replicas, vias: [0, 1], quirkRevisions: quirks });
    await host.finish();
    pgTotals.runs++;
    pgTotals.stateChecks += host.faults.stateChecks;
    for (const k of ['answers', 'withAfter', 'afterWaits', 'replays', 'othersJobs', 'probes', 'coveredByAfter'] as const) pgTotals[k] += host.stats[k];
    failIfUnsafe([host], problems);
  }

  it(`${RUNS} sequences over every policy mode and enable-heavy ones, callers on both replicas, acks and listings on either, quirk changes through either: 0 leaks, 0 corruptions, coverage, no job shared or grown on either replica, each replica sees the other's changes`, async () => {
    await fc.assert(
      fc.asyncProperty(
        // Every policy mode with quirk changes, and enable-heavy runs where replays of one window meet (flush.after across replicas).
        fc.oneof(fc.constantFrom(...MODES).chain((spec) => concurrentScenario(spec, { quirks: 2 })), replayStorm()),
        fc.nat(1_000_000),
        (scenario, seed) => playReplicas(scenario, seed)
      ),
      { numRuns: RUNS, seed: SEED + 1 }
    );
    process.stdout.write(`replicas: ${JSON.stringify(pgTotals)}\n`);
    if (RUNS < 50) return;
    expect(pgTotals.replays).toBeGreaterThan(RUNS / 4);
    expect(pgTotals.withAfter).toBeGreaterThan(RUNS / 20);
    expect(pgTotals.afterWaits).toBeGreaterThan(0);
    expect(pgTotals.coveredByAfter).toBeGreaterThan(0);
    expect(pgTotals.othersJobs).toBeGreaterThan(0);
    expect(pgTotals.probes).toBeGreaterThan(RUNS / 4);
  });
});

// ---- the checks notice what they are meant to ---------------------------------------------------------

describe('the state checks have teeth', () => {
  it('a range the service holds that no answer pinned, and a device bit set that no answer allowed, are found by checkState and by the reference replay', async () => {
    const app = await concurrentApp(5);
    try {
      const config: Config = { mode: 'trap', onEnable: 'deny', exempt: false, coherent: [false, false], devices: [{ kind: 'nic', state: 'disabled', dom: 0 }], quirks: 0, prePins: [{ pages: 1, doms: null }] };
      const host = new ConcurrentHost(app, 'teeth1', config);
      await host.setup();
      await host.checkState(0, 'before');
      expect(host.state, host.report()).toEqual([]);
      // Behind the VMM's back (no answer it got): a range pinned, and the policy changed so that the NIC's enable is allowed and made.
      const sneak = async (method: 'PUT' | 'POST', url: string, payload: object): Promise<void> => {
        const res = await app.inject({ method, url, headers: json, payload });
        expect(res.statusCode, res.body).toBeLessThan(300);
      };
      await sneak('POST', '/v1/vms/teeth1/pins', { iova: '0x100000', hpa: '0x10000000', length: '0x1000' });
      await host.checkState(0, 'after');
      expect(host.state.some((s) => s.includes('is held, but no 2xx answer pinned it')), host.state.join('\n')).toBe(true);
      host.state.length = 0;
      await sneak('PUT', '/v1/vms/teeth1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
      await sneak('POST', '/v1/vms/teeth1/devices/0000:01:00.0/devctl', { nosnoopEnable: true });
      await referenceCheck(ref, host, { replicas: [app], vias: [0] });
      expect(host.state.some((s) => s.includes("replica 0's VM differs")), host.state.join('\n')).toBe(true);
      expect(host.state.some((s) => s.includes("replica 0's pinned ranges differ")), host.state.join('\n')).toBe(true);
    } finally {
      await app.close();
    }
  });
});
