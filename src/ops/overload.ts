import { monitorEventLoopDelay } from 'node:perf_hooks';

/** How often the event loop's delay is sampled, in milliseconds. */
const RESOLUTION_MS = 10;

export interface LoopWatch {
  /** True while the event loop lags more than allowed: new requests are refused (503 `overloaded`). */
  readonly overloaded: boolean;
  stop(): void;
}

/**
 * Watches the event loop's delay: every `sampleMs` it takes the mean delay of the 10 ms samples since
 * its last look, minus those 10 ms, and how late the look itself is, and compares both with `maxDelayMs`. It reads nothing but a
 * histogram: a process out of file descriptors (where `process.memoryUsage()` throws EMFILE) keeps
 * running, refusing what it cannot take, and recovers.
 */
export function watchEventLoop(maxDelayMs: number, sampleMs: number): LoopWatch {
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  let overloaded = false;
  let lastLook = performance.now();
  const look = setInterval(() => {
    const now = performance.now();
    // How late this look itself is: a stall seen directly, even before the histogram has recorded it
    // (its own timer may run after this one when both were held up).
    const lateMs = now - lastLook - sampleMs;
    lastLook = now;
    const delayMs = histogram.mean / 1e6 - RESOLUTION_MS;
    // No sample at all since the last look: the loop was stuck for the whole window.
    overloaded = Number.isNaN(delayMs) || delayMs > maxDelayMs || lateMs > maxDelayMs;
    histogram.reset();
  }, sampleMs);
  look.unref();
  return {
    get overloaded() {
      return overloaded;
    },
    stop() {
      clearInterval(look);
      histogram.disable();
    },
  };
}
