/**
 * One timer for every request's deadlines: instead of a timer per request (or per chunk), each
 * request in flight registers a check, and a single interval runs them all. The interval stops at
 * the first tick with nothing registered, so an idle gateway has no timer.
 *
 * @module
 */

/** Something with deadlines, checked on every tick. */
export interface Watched {
  /**
   * Checks deadlines; aborts what is overdue.
   *
   * @param now `performance.now()` at the tick.
   */
  check(now: number): void;
}

/** Milliseconds between checks: the precision of every timeout. */
export const WATCHDOG_TICK_MS = 25;

/** Runs registered checks on one shared interval. */
export class Watchdog {
  #watched = new Set<Watched>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * Starts checking an item.
   *
   * @param item The item.
   */
  add(item: Watched): void {
    this.#watched.add(item);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), WATCHDOG_TICK_MS);
    }
  }

  /**
   * Stops checking an item.
   *
   * @param item The item.
   */
  delete(item: Watched): void {
    this.#watched.delete(item);
  }

  #tick(): void {
    // The interval stops at the first tick that finds nothing to watch, not on every delete:
    // starting and clearing a timer per request costs more than the request's own checks.
    if (this.#watched.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = performance.now();
    for (const item of this.#watched) item.check(now);
  }
}

/** The process-wide watchdog. */
export const watchdog: Watchdog = new Watchdog();
