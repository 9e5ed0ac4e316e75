/**
 * Liveness during restore: a data directory holding a VM of 2,000,000 pinned ranges (written
 * here as the store keeps it: a snapshot) is restored by a real server process while /healthz
 * is probed every 50 ms. Every probe answers within a second; /readyz is 503 until the state is
 * restored, then the VM is served whole.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createVm, encodeVmRecord, packAttr, parseDomainId, parseVmId, resolvePolicy, DEFAULT_POLICY } from '../../src/domain/index.js';
import { SqliteEngine } from '../../src/store/sqlite-engine.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const RANGES = 2_000_000;
const dir = mkdtempSync(join(tmpdir(), 'coherency-liveness-'));
const running: ServerProcess[] = [];
afterAll(async () => {
  for (const s of running) await s.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A data directory with one VM of RANGES single-page ranges, stored as a snapshot. */
function bigDataDir(): string {
  const dataDir = join(dir, 'data');
  const engine = new SqliteEngine(dataDir);
  const vm = createVm(parseVmId('big'), 'x86_64', resolvePolicy('x86_64', DEFAULT_POLICY), 1_000);
  vm.domains.set(parseDomainId('d0'), { id: parseDomainId('d0'), enforceCacheCoherency: false, iommu: null });
  vm.revision = 1;
  const pins = new Float64Array(4 * RANGES);
  const attr = packAttr('WB', false, true, 0);
  for (let i = 0; i < RANGES; i++) {
    pins[4 * i] = 2 * i;
    pins[4 * i + 1] = 1;
    pins[4 * i + 2] = 0x100000 + 2 * i;
    pins[4 * i + 3] = attr;
  }
  vm.flaggedPages = RANGES;
  engine.write([
    { kind: 'append', changes: [{ seq: 1, at: 1_000, command: { type: 'put-vm', vmId: vm.id, arch: 'x86_64' }, effects: [{ vmId: vm.id, record: encodeVmRecord(vm), ops: null }] }] },
    { kind: 'snapshot', snapshot: { vmId: vm.id, seq: 1, record: encodeVmRecord(vm), pins } }
  ]);
  engine.close();
  return dataDir;
}

describe('restore of a large state', () => {
  it(`/healthz answers within a second throughout the restore of ${RANGES.toLocaleString('en')} ranges; /readyz waits for it`, async () => {
    const dataDir = bigDataDir();
    const server = await startServer({ STORE: 'sqlite', DATA_DIR: dataDir }, { waitReady: false });
    running.push(server);
    let slowest = 0;
    let probes = 0;
    let sawNotReady = false;
    for (let i = 0; i < 1200; i++) {
      const started = performance.now();
      const health = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
      slowest = Math.max(slowest, performance.now() - started);
      probes++;
      expect(health.status).toBe(200);
      const ready = await fetch(`${server.url}/readyz`);
      if (ready.status === 200) break;
      sawNotReady = true;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(sawNotReady).toBe(true);
    expect(probes).toBeGreaterThan(1);
    expect(slowest).toBeLessThan(1_000);
    const vm = (await (await fetch(`${server.url}/v1/vms/big`)).json()) as { pinned: { ranges: number; flushOnUnpinBytes: string } };
    expect(vm.pinned.ranges).toBe(RANGES);
    expect(vm.pinned.flushOnUnpinBytes).toBe(`0x${(RANGES * 4096).toString(16)}`);
  });
});
