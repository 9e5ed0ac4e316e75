/**
 * A full disk under a running server (a 4 MiB tmpfs mounted for the test; the test needs the
 * right to mount one and says so when it does not have it): the process stays up, a change is
 * refused with 503 and nothing kept (never a 500), /readyz says not ready while commits fail
 * and recovers by itself once a real write succeeds again, and after kill -9 and a restart
 * every acknowledged pin is there.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { callServer, startServer, type ServerProcess } from '../helpers/server-process.js';

const mountPoint = mkdtempSync(join(tmpdir(), 'coherency-full-'));
let mounted = false;
let why = '';
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint], { stdio: 'pipe' });
  mounted = true;
} catch (err) {
  why = err instanceof Error ? err.message : String(err);
}

const running: ServerProcess[] = [];
afterAll(async () => {
  for (const s of running) await s.kill('SIGKILL');
  if (mounted) execFileSync('umount', [mountPoint]);
  rmSync(mountPoint, { recursive: true, force: true });
});

const call = callServer;

/** Fills the file system with one file until it is full; returns its path. */
function fill(dir: string): string {
  const filler = join(dir, 'filler');
  const chunk = Buffer.alloc(64 * 1024, 1);
  let data = Buffer.alloc(0);
  for (;;) {
    try {
      data = Buffer.concat([data, chunk]);
      writeFileSync(filler, data);
    } catch {
      return filler;
    }
  }
}

async function waitReady(server: ServerProcess, ready: boolean): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${server.url}/readyz`);
    if ((res.status === 200) === ready) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`/readyz did not become ${ready ? 'ready' : 'not ready'}`);
}

describe('disk full', () => {
  it(mounted ? 'refuses changes with 503 while the disk is full, stays up, recovers by itself, loses nothing acknowledged' : `needs a tmpfs mount (${why})`, async () => {
    expect(mounted, `mounting a tmpfs failed: ${why}`).toBe(true);
    const dataDir = join(mountPoint, 'data');
    const server = await startServer({ STORE: 'sqlite', DATA_DIR: dataDir });
    running.push(server);
    await call(server, 'PUT', '/v1/vms/vm1', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
    await call(server, 'PUT', '/v1/vms/vm1/domains/d0', { enforceCacheCoherency: false });
    const acknowledged: string[] = [];
    const pin = async (i: number): Promise<number> => {
      const iova = `0x${(i * 0x200000).toString(16)}`;
      const res = await call(server, 'POST', '/v1/vms/vm1/pins', { iova, hpa: `0x${(0x100000000 + i * 0x200000).toString(16)}`, length: '0x200000' });
      if (res.status === 200) acknowledged.push(iova);
      return res.status;
    };
    for (let i = 0; i < 20; i++) expect(await pin(i)).toBe(200);

    const filler = fill(mountPoint);
    const statuses = new Set<number>();
    for (let i = 20; i < 200; i++) statuses.add(await pin(i));
    // Whatever fitted was acknowledged; the rest refused: never a 500.
    expect([...statuses].every((s) => s === 200 || s === 503)).toBe(true);
    expect(statuses.has(503)).toBe(true);
    const refused = await call(server, 'POST', '/v1/vms/vm1/pins', { iova: '0x100000000', hpa: '0x0', length: '0x1000' });
    expect(refused.status).toBe(503);
    expect(refused.body['code']).toBe('STORE_UNAVAILABLE');
    await waitReady(server, false);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);

    rmSync(filler);
    await waitReady(server, true);
    expect(await pin(500)).toBe(200);
    const listed = (await call(server, 'GET', '/v1/vms/vm1/pins?limit=1000')).body['items'] as { iova: string; flushOnUnpin: boolean }[];
    expect(listed.map((p) => p.iova).sort()).toEqual([...acknowledged].sort());

    await server.kill('SIGKILL');
    const again = await startServer({ STORE: 'sqlite', DATA_DIR: dataDir });
    running.push(again);
    const after = (await call(again, 'GET', '/v1/vms/vm1/pins?limit=1000')).body['items'] as { iova: string; flushOnUnpin: boolean }[];
    expect(after.map((p) => p.iova).sort()).toEqual([...acknowledged].sort());
    expect(after.every((p) => p.flushOnUnpin)).toBe(true);
  });
});
