/**
 * The default logs of a real server process under a bounded load of the hot routes (pins,
 * read-only decisions, unpins and the acknowledgement of every flush job, from 16 connections
 * over 8 VMs, at most 12,000 requests or 10 s): every byte it writes to stdout and stderr is
 * counted, and the volume extrapolated to 1,000 req/s with the default summary interval stays
 * under 1 MB a minute.
 *
 * The arithmetic (stated again in the assertion's message):
 * - the summary interval is 1 s here (LOG_SUMMARY_INTERVAL=1), 60 times the default, so that the
 *   summary lines of the load are written within the test;
 * - bytes of summary lines (`vm activity`, `refusals folded`): Bs, in nS lines; bytes of every
 *   other line written from the start of the load to the last summary: Bo, for R requests;
 * - at 1,000 req/s with the default 60 s interval, a minute writes 60,000 requests' worth of
 *   other lines, Bo / R × 60,000, plus one summary line per active VM, VMs × Bs / nS.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const VMS = 8;
const CONNECTIONS = 16;
const MAX_REQUESTS = 12_000;
const MAX_MS = 10_000;
const BUDGET_BYTES_PER_MINUTE = 1_000_000;

const dir = mkdtempSync(join(tmpdir(), 'coherency-log-volume-'));
let server: ServerProcess | undefined;
afterAll(async () => {
  await server?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Line {
  readonly bytes: number;
  readonly msg: string;
  readonly reqId: unknown;
}

describe('log volume', () => {
  it('at the default LOG_LEVEL, 1,000 req/s of the hot routes would log under 1 MB a minute', async () => {
    // The server helper sets LOG_LEVEL=info, which is the default.
    expect(loadConfig({}).logLevel).toBe('info');
    const s = await startServer({ DATA_DIR: dir, LOG_SUMMARY_INTERVAL: '1' });
    server = s;
    const lines: Line[] = [];
    let pending = '';
    const collect = (chunk: Buffer): void => {
      pending += chunk.toString('utf8');
      let at: number;
      while ((at = pending.indexOf('\n')) >= 0) {
        const text = pending.slice(0, at + 1);
        pending = pending.slice(at + 1);
        let parsed: { msg?: unknown; reqId?: unknown } = {};
        try {
          parsed = JSON.parse(text) as typeof parsed;
        } catch {
          // Not JSON (a stack trace on stderr, say): counted all the same.
        }
        lines.push({ bytes: Buffer.byteLength(text), msg: typeof parsed.msg === 'string' ? parsed.msg : '', reqId: parsed.reqId });
      }
    };
    s.child.stdout?.on('data', collect);
    s.child.stderr?.on('data', collect);

    const pool = new Pool(s.url, { connections: CONNECTIONS });
    const call = async (method: 'PUT' | 'POST', path: string, body: unknown): Promise<{ status: number; body: { flush?: { jobId?: string } } }> => {
      const res = await pool.request({ method, path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.statusCode, body: (await res.body.json()) as { flush?: { jobId?: string } } };
    };
    try {
      for (let v = 0; v < VMS; v++) {
        expect((await call('PUT', `/v1/vms/vm-${v}`, { arch: 'x86_64', policy: { mode: 'pessimistic' } })).status).toBe(201);
        expect((await call('PUT', `/v1/vms/vm-${v}/domains/d0`, { enforceCacheCoherency: false })).status).toBe(201);
        expect((await call('PUT', `/v1/vms/vm-${v}/devices/0000:00:02.0`, { domainId: 'd0', vendorId: '0x8086', deviceId: '0x9a49', nosnoop: 'enabled' })).status).toBe(201);
      }
      // The set-up's own lines (changes outside the hot routes, at info) reach the pipe first.
      await new Promise((r) => setTimeout(r, 500));
      const mark = lines.length;
      const start = Date.now();
      const deadline = start + MAX_MS;
      let sent = 0;
      const statuses = new Map<number, number>();
      const count = (status: number): void => {
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      };
      const more = (): boolean => sent < MAX_REQUESTS && Date.now() < deadline;
      // Each connection is one VMM thread: pin its range, acknowledge the flush, ask twice, unpin, acknowledge.
      const worker = async (w: number): Promise<void> => {
        const vm = `/v1/vms/vm-${w % VMS}`;
        const range = { iova: `0x${(0x100000 * (w + 1)).toString(16)}`, hpa: `0x${(0x10000000 + 0x100000 * w).toString(16)}`, length: '0x2000' };
        const ack = async (jobId: string | undefined): Promise<void> => {
          if (jobId === undefined) return;
          sent++;
          count((await call('POST', `/v1/flush-jobs/${jobId}/ack`, {})).status);
        };
        while (more()) {
          sent++;
          const pin = await call('POST', `${vm}/pins`, range);
          count(pin.status);
          await ack(pin.body.flush?.jobId);
          for (let q = 0; q < 2; q++) {
            sent++;
            count((await call('POST', `${vm}/decisions/flush`, { op: 'unmap', ranges: [{ iova: range.iova, length: range.length }] })).status);
          }
          sent++;
          const unpin = await call('POST', `${vm}/unpins`, { iova: range.iova, length: range.length });
          count(unpin.status);
          await ack(unpin.body.flush?.jobId);
        }
      };
      await Promise.all(Array.from({ length: CONNECTIONS }, (_, w) => worker(w)));
      const seconds = (Date.now() - start) / 1000;
      // Every request of the load succeeded: this measures the hot path, not refusals.
      expect([...statuses.keys()]).toEqual([200]);
      // The summary of the load's last period is written within the next one.
      await new Promise((r) => setTimeout(r, 2_500));

      const load = lines.slice(mark);
      const summary = load.filter((l) => l.msg === 'vm activity' || l.msg === 'refusals folded');
      const other = load.filter((l) => !summary.includes(l));
      // Nothing is written per request.
      expect(other.filter((l) => l.reqId !== undefined)).toEqual([]);
      const bs = summary.reduce((n, l) => n + l.bytes, 0);
      const bo = other.reduce((n, l) => n + l.bytes, 0);
      const vmLines = summary.filter((l) => l.msg === 'vm activity').length;
      expect(vmLines).toBeGreaterThanOrEqual(VMS);
      const perMinute = (bo / sent) * 60_000 + VMS * (bs / summary.length);
      const arithmetic =
        `${sent} requests in ${seconds.toFixed(1)} s (${Math.round(sent / seconds)} req/s); other lines ${bo} B (${(bo / sent).toFixed(3)} B/request); ` +
        `${summary.length} summary lines, ${bs} B (${Math.round(bs / summary.length)} B each); at 1,000 req/s and LOG_SUMMARY_INTERVAL=60: ` +
        `${(bo / sent).toFixed(3)} × 60,000 + ${VMS} × ${Math.round(bs / summary.length)} = ${Math.round(perMinute)} B/min`;
      process.stdout.write(`${arithmetic}\n`);
      expect(perMinute, arithmetic).toBeLessThan(BUDGET_BYTES_PER_MINUTE);
      // Even with a summary every second (60 times the default), the measured rate is within the budget.
      const measuredPerMinute = ((bs + bo) / (seconds + 2.5)) * 60;
      expect(measuredPerMinute, `measured ${Math.round(measuredPerMinute)} B/min at a 1 s summary interval`).toBeLessThan(BUDGET_BYTES_PER_MINUTE);
    } finally {
      await pool.close();
    }
  });
});
