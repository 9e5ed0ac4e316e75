/**
 * A simulator whose queue is full refuses by code: OVERLOADED, with a time after which to retry.
 */
import { describe, expect, it } from 'vitest';
import { defaultQuirksFile, parseQuirkFile } from '../../src/domain/index.js';
import { Simulator, SimulatorBusyError } from '../../src/sim/simulator.js';

describe('simulator overload', () => {
  it('refuses with SimulatorBusyError, code OVERLOADED, retry after 5 s', async () => {
    const simulator = new Simulator({ threads: 1, maxQueue: 0 });
    try {
      const err: unknown = await simulator.run({ reference: 'server-1tib' }, parseQuirkFile(defaultQuirksFile)).then(
        () => undefined,
        (e: unknown) => e
      );
      expect(err).toBeInstanceOf(SimulatorBusyError);
      expect(err).toMatchObject({ name: 'SimulatorBusyError', code: 'OVERLOADED', retryAfterSeconds: 5, message: 'too many simulations are waiting; retry shortly' });
    } finally {
      await simulator.close();
    }
  });
});
