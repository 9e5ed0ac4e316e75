/**
 * SOCKET_PATH: the real server also listens on a Unix domain socket (a child process; the typed
 * client connects with `socketPath`). Its file gets SOCKET_MODE; a file left by a server killed
 * with kill -9 is replaced at the next start, a socket a live server answers on is refused, and
 * a graceful stop removes the file.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CoherencyClient } from '../../src/client/index.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const dir = mkdtempSync(join(tmpdir(), 'coherency-socket-'));
const servers: ServerProcess[] = [];
afterAll(async () => {
  for (const s of servers) await s.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function serve(env: Record<string, string>): Promise<ServerProcess> {
  const server = await startServer({ STORE: 'memory', ...env });
  servers.push(server);
  return server;
}

describe('SOCKET_PATH (a real server process)', () => {
  it('answers the same API over the socket and TCP, with the file mode asked for', async () => {
    const path = join(dir, 'a.sock');
    const server = await serve({ SOCKET_PATH: path, SOCKET_MODE: '0600' });
    expect(statSync(path).isSocket()).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const local = new CoherencyClient('http://localhost', { socketPath: path });
    const tcp = new CoherencyClient(server.url);
    try {
      await local.putVm('sock', { arch: 'x86_64', policy: { mode: 'pessimistic' } });
      await local.putDomain('sock', 'd0', { enforceCacheCoherency: false });
      const pin = await local.pin('sock', { iova: '0x0', hpa: '0x100000', length: '0x1000' });
      expect(pin.flush.required).toBe(true);
      // One service behind both: the VM made over the socket is there over TCP, at the same revision.
      expect((await tcp.getVm('sock')).revision).toBe(pin.revision);
      const answer = await local.mustFlush('sock', { op: 'unmap', ranges: [{ iova: '0x0', length: '0x1000' }] });
      expect(answer.results.map((r) => r.required)).toEqual([true]);
    } finally {
      await local.close();
      await tcp.close();
    }
    await server.kill('SIGTERM');
    expect(server.child.exitCode).toBe(0);
    // A graceful stop removes the file.
    expect(() => statSync(path)).toThrow(/ENOENT/);
  });

  it('replaces the file a server killed with kill -9 left, and refuses a socket a live server answers on', async () => {
    const path = join(dir, 'b.sock');
    const first = await serve({ SOCKET_PATH: path });
    expect(statSync(path).mode & 0o777).toBe(0o660);
    await first.kill('SIGKILL');
    expect(statSync(path).isSocket()).toBe(true);

    const second = await serve({ SOCKET_PATH: path });
    const client = new CoherencyClient('http://localhost', { socketPath: path });
    try {
      expect((await client.putVm('again', { arch: 'x86_64' })).revision).toBeGreaterThan(0);
    } finally {
      await client.close();
    }

    const third = await startServer({ STORE: 'memory', SOCKET_PATH: path }, { waitReady: false });
    servers.push(third);
    if (third.child.exitCode === null) await once(third.child, 'exit');
    expect(third.child.exitCode).toBe(1);
    expect(third.log.join('\n')).toContain('is in use: another server answers on it');
    // The live server keeps its socket.
    const still = new CoherencyClient('http://localhost', { socketPath: path });
    try {
      expect((await still.getVm('again')).id).toBe('again');
    } finally {
      await still.close();
    }
    await second.kill('SIGTERM');
  });
});
