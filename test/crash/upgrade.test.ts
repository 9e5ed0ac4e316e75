/**
 * A data directory written by 0.1.0 (a log of commands replayed at every start) is migrated at
 * start with nothing lost: the state it held is the state served, the commands stay as the
 * audit trail, and the store then holds decided state (snapshots), so later starts replay
 * nothing. The fixture was made by 0.1.0 itself; answers.json is what that release answered.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const fixture = join(import.meta.dirname, '../fixtures/data-0.1.0');
const answers = JSON.parse(readFileSync(join(fixture, 'answers.json'), 'utf8')) as {
  gpu: Record<string, unknown>;
  net: Record<string, unknown>;
  gpuPins: Record<string, unknown>;
  quirks: { quirks: unknown[] };
  auditCount: number;
};
const dir = mkdtempSync(join(tmpdir(), 'coherency-upgrade-'));
const running: ServerProcess[] = [];
afterAll(async () => {
  for (const s of running) await s.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function get(server: ServerProcess, path: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${server.url}${path}`)).json()) as Record<string, unknown>;
}

/** A VM view without what 0.1.0 did not have (pendingNosnoop) or what moves (flush jobs). */
function comparable(view: Record<string, unknown>): Record<string, unknown> {
  const devices = (view['devices'] as Record<string, unknown>[]).map(({ pendingNosnoop: _pending, ...d }) => d);
  const { openFlushJobs: _jobs, ...rest } = view;
  return { ...rest, devices };
}

describe('upgrade from 0.1.0', () => {
  it('migrates a command-log data directory at start: same VMs, pins, flags and quirks, the audit trail kept', async () => {
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir);
    copyFileSync(join(fixture, 'coherency.db'), join(dataDir, 'coherency.db'));
    const first = await startServer({ STORE: 'sqlite', DATA_DIR: dataDir });
    running.push(first);
    expect(comparable(await get(first, '/v1/vms/gpu'))).toEqual(comparable(answers.gpu));
    expect(comparable(await get(first, '/v1/vms/net'))).toEqual(comparable(answers.net));
    expect(await get(first, '/v1/vms/gpu/pins')).toEqual(answers.gpuPins);
    expect((await get(first, '/v1/vms/gone'))['code']).toBe('UNKNOWN_VM');
    expect((await get(first, '/v1/quirks'))['quirks']).toEqual(answers.quirks.quirks);
    expect(((await get(first, '/v1/audit?limit=100'))['items'] as unknown[]).length).toBe(answers.auditCount);
    // A change after the upgrade carries on from the migrated state.
    const unpin = await fetch(`${first.url}/v1/vms/gpu/unpins`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ iova: '0x0', length: '0x200000' }) });
    expect(((await unpin.json()) as { flush: { required: boolean } }).flush.required).toBe(true);
    await first.kill('SIGTERM');

    const db = new Database(join(dataDir, 'coherency.db'), { readonly: true });
    expect(db.prepare("SELECT value FROM meta WHERE key = 'format'").get()).toEqual({ value: '2' });
    expect((db.prepare('SELECT vm FROM snapshots ORDER BY vm').all() as { vm: string }[]).map((r) => r.vm)).toEqual(['gpu', 'net']);
    db.close();

    const second = await startServer({ STORE: 'sqlite', DATA_DIR: dataDir });
    running.push(second);
    expect(((await get(second, '/v1/vms/gpu/pins'))['items'] as unknown[]).length).toBe(1);
    expect(comparable(await get(second, '/v1/vms/net'))).toEqual(comparable(answers.net));
    await second.kill('SIGTERM');
  });
});
