/**
 * How late the event loop runs: the mean delay of the last sample interval (a second), measured
 * by Node's event-loop delay histogram at 10 ms resolution, less that resolution. Read per request
 * as a number; the histogram is read once per interval, off the request path.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

const RESOLUTION_MS = 10;

export class EventLoopWatch {
  /** The last interval's mean delay in ms; Infinity when nothing could be measured (the loop never ran its timer). */
  delayMs = 0;
  readonly #histogram: IntervalHistogram;
  readonly #timer: NodeJS.Timeout;

  constructor(sampleMs = 1000) {
    this.#histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.#histogram.enable();
    this.#timer = setInterval(() => this.sample(), Math.max(RESOLUTION_MS, sampleMs));
    this.#timer.unref();
  }

  /** Takes the histogram's mean since the last sample and starts a new interval. */
  sample(): void {
    const mean = this.#histogram.mean / 1e6 - RESOLUTION_MS;
    this.delayMs = Number.isNaN(mean) ? Infinity : Math.max(0, mean);
    this.#histogram.reset();
  }

  close(): void {
    clearInterval(this.#timer);
    this.#histogram.disable();
  }
}
