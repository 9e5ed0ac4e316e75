/**
 * kill -9 in the middle of a stream of pins: after a restart on the same data directory every
 * acknowledged pin is there (at most the one in flight more), with its flushOnUnpin flag.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CoherencyClient, type PinnedRangeState } from '../../src/client/index.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const dir = mkdtempSync(join(tmpdir(), 'coherency-crash-'));
const running: ServerProcess[] = [];
afterAll(async () => {
  for (const s of running) await s.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function allPins(client: CoherencyClient, vmId: string): Promise<PinnedRangeState[]> {
  const out: PinnedRangeState[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listPins(vmId, { limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return out;
}

describe('crash safety (SQLite)', () => {
  it('every acknowledged pin survives kill -9, with its sticky flag', async () => {
    const first = await startServer({ DATA_DIR: dir, STORE: 'sqlite' });
    running.push(first);
    const client = new CoherencyClient(first.url, { connections: 2 });
    await client.putVm('vm1', { arch: 'x86_64', policy: { mode: 'trap', onEnable: 'allow' } });
    await client.putDomain('vm1', 'd0', { enforceCacheCoherency: false });
    await client.putDevice('vm1', '0000:01:00.0', { domainId: 'd0', vendorId: '0x15b3', deviceId: '0x1017', nosnoop: 'disabled' });
    const acknowledged: string[] = [];
    // The first half is pinned while no device may no-snoop (no flag); an enable then flags them
    // (F2); the second half is pinned flagged.
    for (let i = 0; i < 150; i++) {
      if (i === 75) await client.devctl('vm1', '0000:01:00.0', { nosnoopEnable: true });
      const iova = `0x${(i * 0x10000).toString(16)}`;
      await client.pin('vm1', { iova, hpa: `0x${(i * 0x2000).toString(16)}`, length: '0x1000' });
      acknowledged.push(iova);
    }
    // One more in flight, then the process dies without warning.
    const inflight = client.pin('vm1', { iova: '0x7000000', hpa: '0x7000000', length: '0x1000' }).catch(() => undefined);
    await first.kill('SIGKILL');
    await inflight;
    await client.close().catch(() => undefined);

    const second = await startServer({ DATA_DIR: dir, STORE: 'sqlite' });
    running.push(second);
    const again = new CoherencyClient(second.url);
    expect(await again.ready()).toMatchObject({ status: 'ready' });
    const pins = await allPins(again, 'vm1');
    const iovas = new Set(pins.map((p) => p.iova));
    for (const iova of acknowledged) expect(iovas.has(iova), iova).toBe(true);
    expect(pins.length - acknowledged.length).toBeLessThanOrEqual(1);
    for (const p of pins) expect(p.flushOnUnpin, p.iova).toBe(true);
    const vm = await again.getVm('vm1');
    expect(vm.devices[0]?.nosnoop).toBe('enabled');
    expect(vm.domains[0]?.exposed).toBe(true);
    // The sticky flags still drive the unpin flush after the restart.
    const unpin = await again.unpin('vm1', { iova: '0x0', length: '0x1000' });
    expect(unpin.flush.bytes).toBe('0x1000');
    await again.close();
    await second.kill('SIGTERM');
  });
});
