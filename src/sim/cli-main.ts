/** Process entry of coherency-sim (bin/coherency-sim.js loads it). */
import { main } from './cli.js';

process.exitCode = await main(
  process.argv.slice(2),
  (s) => process.stdout.write(s),
  (s) => process.stderr.write(s)
);
