import { type CoherencyClient } from '../../src/client/index.js';

/** A VMM's event loop: perform every flush its VM is given, then acknowledge it. */
export async function followVm(client: CoherencyClient, vmId: string, flush: (ranges: unknown) => Promise<void>, reread: (vm: unknown) => void, signal: AbortSignal): Promise<void> {
  for await (const event of client.events(vmId, { signal })) {
    if (event.type === 'flush-job' && event.data.state === 'pending') {
      const jobId = event.data.id;
      await flush(await client.listFlushJobRanges(jobId));
      await client.ack(jobId);
    }
    if (event.type === 'reset') reread(await client.getVm(vmId)); // events missed
  }
}
