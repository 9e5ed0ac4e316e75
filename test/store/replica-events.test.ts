/**
 * Two replicas on one PostgreSQL: a VMM following a VM's events on replica B hears of a change
 * made through replica A (`changed`, with the revision to read at least).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, parseDomainId, parseQuirkFile, parseVmId } from '../../src/domain/index.js';
import { createRuntime, type Runtime } from '../../src/service/runtime.js';
import type { VmEvent } from '../../src/service/vm-events.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { dropSchemas, freshSchema, PG_URL } from '../helpers/postgres.js';

const schemas: string[] = [];
const runtimes: Runtime[] = [];
afterAll(async () => {
  for (const r of runtimes) await r.close();
  await dropSchemas(schemas);
});

async function replica(schema: string): Promise<Runtime> {
  const runtime = createRuntime({ defaults: DEFAULT_POLICY, quirks: parseQuirkFile({ quirks: [] }), store: new PostgresStore({ connectionString: PG_URL, schema }) });
  runtimes.push(runtime);
  await runtime.start();
  return runtime;
}

describe('events across replicas (real PostgreSQL)', () => {
  it('a subscriber on replica B sees a change made through replica A', async () => {
    const schema = freshSchema('events');
    schemas.push(schema);
    const a = await replica(schema);
    const b = await replica(schema);
    const vmId = parseVmId('vm1');
    await a.service.apply({ type: 'put-vm', vmId, arch: 'x86_64', policy: {} });
    b.service.follow(20);
    const seen: VmEvent[] = [];
    const stop = b.service.events.subscribe(vmId, undefined, (e) => seen.push(e));
    const changed = await a.service.apply({ type: 'put-domain', vmId, domainId: parseDomainId('d0'), enforceCacheCoherency: false });
    for (let i = 0; i < 200 && !seen.some((e) => e.type === 'changed' && e.revision === changed.revision); i++) await new Promise((r) => setTimeout(r, 10));
    stop();
    expect(seen.find((e) => e.type === 'changed' && e.revision === changed.revision)).toMatchObject({ type: 'changed', vmId: 'vm1' });
    expect(seen.every((e) => e.type === 'changed' && e.vmId === 'vm1')).toBe(true);
    expect(b.service.vm(vmId).domains.map((d) => d.id)).toEqual(['d0']);
  });
});
