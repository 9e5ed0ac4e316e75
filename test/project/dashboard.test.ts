/**
 * deploy/grafana/coherency.json and deploy/prometheus/alerts.yml, what an operator loads: every
 * metric their expressions name is one the real server exports (after a short session, so that
 * labelled series exist), the alert rules pass `promtool check rules` (Debian's `prometheus`
 * package; .ci/run installs it), every dashboard expression is valid PromQL (promtool checks them
 * as recording rules), and the dashboard has the shape Grafana imports: a `${DS_PROMETHEUS}`
 * datasource input that every panel and target uses, panels with targets, ids and positions.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const root = join(import.meta.dirname, '../..');
const ALERTS = join(root, 'deploy/prometheus/alerts.yml');
const PROMTOOL = '/usr/bin/promtool';
const run = promisify(execFile);

interface Target {
  readonly datasource?: { readonly type?: string; readonly uid?: string };
  readonly expr?: string;
  readonly refId?: string;
}
interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title?: string;
  readonly datasource?: { readonly type?: string; readonly uid?: string };
  readonly gridPos?: { readonly h: number; readonly w: number; readonly x: number; readonly y: number };
  readonly targets?: readonly Target[];
  readonly panels?: readonly Panel[];
}
interface Dashboard {
  readonly __inputs: readonly { readonly name: string; readonly type: string; readonly pluginId: string }[];
  readonly schemaVersion: number;
  readonly title: string;
  readonly uid: string;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly { readonly name: string; readonly definition?: string; readonly datasource?: { readonly uid?: string } }[] };
}
interface Rule {
  readonly alert?: string;
  readonly expr: string;
  readonly for?: string;
  readonly annotations?: Record<string, string>;
}

const dashboard = JSON.parse(readFileSync(join(root, 'deploy/grafana/coherency.json'), 'utf8')) as Dashboard;
const alerts = parse(readFileSync(ALERTS, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
const dashboardExprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
const rules = alerts.groups.flatMap((g) => g.rules);

/** The metric names an expression reads: every one the service exports starts with `coherency_`. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\bcoherency_[a-zA-Z0-9_:]*/g)].map((m) => m[0]);
}

/** Metric families the server exports (`# TYPE` lines): name to type. */
function families(exposition: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1] as string, m[2] as string);
  return types;
}

/** Whether `name` is exported: a family, or a histogram's or summary's _bucket, _sum or _count. */
function exported(types: Map<string, string>, name: string): boolean {
  if (types.has(name)) return true;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && (types.get(base) === 'histogram' || types.get(base) === 'summary');
}

/**
 * Label names the expressions select on, by metric (`name{label="…"}`), but `instance` and `job`,
 * which Prometheus adds as it scrapes.
 */
function selectedLabels(expr: string): [string, string][] {
  const pairs: [string, string][] = [];
  for (const m of expr.matchAll(/\b(coherency_[a-zA-Z0-9_:]*)\{([^}]*)\}/g)) {
    for (const l of (m[2] as string).matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) if (l[1] !== 'instance' && l[1] !== 'job') pairs.push([m[1] as string, l[1] as string]);
  }
  return pairs;
}

const dirs: string[] = [];
let server: ServerProcess | undefined;
afterAll(async () => {
  await server?.kill('SIGTERM');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function ok(base: string, method: string, path: string, payload?: object): Promise<Record<string, unknown> & { flush?: { jobId?: string } }> {
  const res = await fetch(base + path, { method, ...(payload === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) }) });
  const body = (await res.json()) as Record<string, unknown> & { flush?: { jobId?: string } };
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** A short VMM session: a GPU VM pinned, a device enabled (its replay acknowledged), a decision, an event stream, a 404. */
async function session(base: string): Promise<void> {
  await ok(base, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
  await ok(base, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
  await ok(base, 'PUT', '/v1/vms/vm1/devices/0000:01:00.0', { domainId: 'd0', vendorId: '0x10ee', deviceId: '0x903f', function: 'pf', nosnoop: 'disabled' });
  const stream = new AbortController();
  expect((await fetch(`${base}/v1/vms/vm1/events`, { signal: stream.signal })).status).toBe(200);
  await ok(base, 'POST', '/v1/vms/vm1/pins', { iova: '0x0', hpa: '0x100000', length: '0x2000' });
  const enable = await ok(base, 'POST', '/v1/vms/vm1/devices/0000:01:00.0/devctl', { nosnoopEnable: true });
  const job = enable.flush?.jobId as string;
  await ok(base, 'GET', `/v1/flush-jobs/${job}/ranges`);
  await ok(base, 'POST', `/v1/flush-jobs/${job}/ack`);
  await ok(base, 'POST', '/v1/vms/vm1/decisions/flush', { op: 'map', ranges: [{ iova: '0x0', length: '0x1000' }] });
  expect((await fetch(`${base}/v1/vms/vm-unknown`)).status).toBe(404);
  stream.abort();
}

describe('the dashboard and the alert rules', () => {
  it('name only metrics the real server exports after a short session', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coherency-dashboard-'));
    dirs.push(dir);
    server = await startServer({ DATA_DIR: dir });
    await session(server.url);
    const exposition = await (await fetch(`${server.url}/metrics`)).text();
    const types = families(exposition);
    const exprs = [...dashboardExprs, ...rules.map((r) => r.expr), ...dashboard.templating.list.map((v) => v.definition ?? '')];
    const named = [...new Set(exprs.flatMap(metricNames))].sort();
    // The panels the issue asks for are there.
    for (const name of [
      'coherency_http_request_duration_seconds_bucket',
      'coherency_decisions_total',
      'coherency_flush_jobs_total',
      'coherency_flushed_bytes_total',
      'coherency_flush_acknowledged_bytes_total',
      'coherency_pessimistic_bytes_total',
      'coherency_flushes_awaiting_ack',
      'coherency_store_commit_seconds_bucket',
      'coherency_store_up',
      'coherency_event_subscribers'
    ])
      expect(named).toContain(name);
    expect(named.filter((name) => !exported(types, name))).toEqual([]);
    // The labels selected on are the series' own (the session made labelled series exist).
    const unlabelled = exprs
      .flatMap(selectedLabels)
      .filter(([name, label]) => exported(types, name) && !exposition.split('\n').some((line) => line.startsWith(`${name}{`) && new RegExp(`[{,]${label}="`).test(line)))
      .map(([name, label]) => `${name}{${label}}`);
    expect([...new Set(unlabelled)]).toEqual([]);
  }, 60_000);

  it('every expression names a metric of the service, and every alert says what to do', () => {
    for (const expr of [...dashboardExprs, ...rules.map((r) => r.expr)]) expect(metricNames(expr), expr).not.toEqual([]);
    expect(rules.map((r) => r.alert).sort()).toEqual(
      expect.arrayContaining(['CoherencyAcksBacklog', 'CoherencyHttp5xx', 'CoherencyStoreCommitSlow', 'CoherencyStoreDown', 'CoherencyAuditPrunedBySize', 'CoherencyStoreLarge'])
    );
    const down = rules.find((r) => r.alert === 'CoherencyStoreDown');
    expect(down).toMatchObject({ expr: 'coherency_store_up == 0', for: '1m' });
    for (const r of rules) {
      expect(r.annotations?.['summary'], r.alert).toBeTruthy();
      expect((r.annotations?.['description'] ?? '').length, r.alert).toBeGreaterThan(80);
    }
  });

  it('promtool check rules passes on the alert rules', async () => {
    const { stdout } = await run(PROMTOOL, ['check', 'rules', ALERTS]);
    expect(stdout).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  it('every dashboard expression is valid PromQL (promtool checks them as recording rules)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coherency-dashboard-rules-'));
    dirs.push(dir);
    const file = join(dir, 'dashboard.yml');
    // Grafana's variables replaced as Grafana would: a range and the "All" value of $instance.
    const asRules = dashboardExprs.map((expr, i) => ({ record: `dashboard:expr_${i}`, expr: expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*') }));
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: asRules }] }));
    const { stdout } = await run(PROMTOOL, ['check', 'rules', file]);
    expect(stdout).toMatch(new RegExp(`SUCCESS: ${asRules.length} rules found`));
  });

  it('has the shape Grafana imports: a Prometheus datasource input that every panel and target uses', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    expect(panels.length).toBeGreaterThanOrEqual(12);
    const ids = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect(p.title, `panel ${p.id}`).toBeTruthy();
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      for (const k of ['h', 'w', 'x', 'y'] as const) expect(Number.isInteger(p.gridPos?.[k]), `${p.title ?? ''} gridPos.${k}`).toBe(true);
      expect((p.gridPos?.x ?? 0) + (p.gridPos?.w ?? 0), p.title).toBeLessThanOrEqual(24);
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      const refIds = (p.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
      for (const t of p.targets ?? []) {
        expect(t.datasource, p.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
        expect(t.expr, p.title).toBeTruthy();
      }
    }
    for (const v of dashboard.templating.list) expect(v.datasource?.uid).toBe('${DS_PROMETHEUS}');
  });
});
