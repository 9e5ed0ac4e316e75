/**
 * `npm ci && npm start`: npm ci builds the service (the `prepare` script), so `npm start` only
 * starts what was built, with no build of its own, and serves the README's default store.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };

describe('npm start', () => {
  it('starts the service npm ci built, without building it again', () => {
    expect(pkg.scripts['prepare']).toBe('npm run build');
    expect(pkg.scripts['start']).toBe('node dist/server.js');
    expect(pkg.scripts['prestart']).toBeUndefined();
  });

  it('answers /healthz and /readyz on the embedded store', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'coherency-start-'));
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const child = spawn('npm', ['start', '--silent'], { env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn' }, stdio: 'ignore', detached: true });
    try {
      let ready = 0;
      for (let i = 0; i < 300 && ready !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        ready = (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status ?? 0;
      }
      expect(ready).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        // npm and the node it started are one process group.
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
