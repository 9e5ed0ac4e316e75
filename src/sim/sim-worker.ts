/** Worker-thread entry of the simulation pool: one trace under one mode. */
import { simulateTask, type SimulateOutcome, type SimulateTask } from './simulate.js';

export default function simulate(task: SimulateTask): SimulateOutcome {
  return simulateTask(task);
}
