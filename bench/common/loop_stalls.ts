/**
 * Event-loop stalls of the benchmark's own process: how often its timers fired late, and by how
 * much. A stall delays every simulator and client in the process at once, so it lands in every
 * request in flight, whichever contender routes them; the reports print it so that a reader can
 * tell the machine's noise from routing.
 *
 * @module
 */

/** Stalls seen since the watch started or was last reset. */
export interface LoopStalls {
  /** Timer ticks that fired at least the threshold late. */
  count: number;
  /** The longest of them, ms late. */
  longestMs: number;
  /** Their lateness summed, ms. */
  totalMs: number;
}

/** A running watch; see {@link watchLoop}. */
export interface LoopWatch {
  /** The stalls since the start or the last reset, so far. */
  readonly stalls: LoopStalls;
  /** Forgets the stalls seen so far (e.g. at the end of a warm-up). */
  reset(): void;
  /**
   * Stops the watch.
   *
   * @returns The stalls since the start or the last reset.
   */
  stop(): LoopStalls;
}

/**
 * Starts watching this process's event loop with a timer every `tickMs` (unreferenced: it does
 * not keep the process alive).
 *
 * @param options `tickMs`: the timer's period (default 2); `thresholdMs`: the lateness that counts
 *   as a stall (default 5).
 * @returns The watch.
 * @example
 * ```ts
 * const watch = watchLoop({ thresholdMs: 5 });
 * // ... run the load ...
 * const { count, longestMs } = watch.stop();
 * ```
 */
export function watchLoop(options: { tickMs?: number; thresholdMs?: number } = {}): LoopWatch {
  const tickMs = options.tickMs ?? 2;
  const thresholdMs = options.thresholdMs ?? 5;
  let stalls: LoopStalls = { count: 0, longestMs: 0, totalMs: 0 };
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const late = now - last - tickMs;
    last = now;
    if (late < thresholdMs) return;
    stalls.count++;
    stalls.totalMs += late;
    stalls.longestMs = Math.max(stalls.longestMs, late);
  }, tickMs);
  // A watch never keeps the process alive, even when a failing run skips `stop()`.
  Deno.unrefTimer(timer);
  return {
    get stalls() {
      return { ...stalls };
    },
    reset() {
      stalls = { count: 0, longestMs: 0, totalMs: 0 };
    },
    stop() {
      clearInterval(timer);
      return stalls;
    },
  };
}
