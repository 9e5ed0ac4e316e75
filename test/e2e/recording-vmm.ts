import type { CoherencyClient } from '../../src/client/index.js';
import { followVm } from './vmm-loop.js';

/** Runs the loop for VM `vmId`, recording the ranges it flushes, until `stop()`. */
export function recordingVmm(client: CoherencyClient, vmId: string): { flushed: unknown[]; stop: () => Promise<void> } {
  const abort = new AbortController();
  const flushed: unknown[] = [];
  const loop = followVm(
    client,
    vmId,
    (ranges) => {
      flushed.push(ranges);
      return Promise.resolve();
    },
    () => undefined,
    abort.signal
  );
  return {
    flushed,
    stop: async () => {
      abort.abort();
      await loop.catch(() => undefined);
    }
  };
}
