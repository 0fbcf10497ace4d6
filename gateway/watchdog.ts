/**
 * One timer for every request's deadlines: instead of a timer per request (or per chunk), each
 * request in flight registers a check, and a single interval runs them all. The interval stops at
 * the first tick with nothing registered, so an idle gateway has no timer.
 *
 * The registered checks are kept in an array, each knowing its slot, not in a `Set`: with a `Set`
 * that lives long (in V8's old space) and takes and drops an entry per request, the
 * young-generation GC kept every request's objects alive and promoted them (about 4.5 KB a
 * request, 10 ms pauses), most likely through the `Set`'s discarded tables.
 * The array took small-request throughput from ~9,200 to ~12,100 req/s (`--trace-gc-nvp`:
 * promoted bytes per scavenge 4.3 MB → 0).
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

/** Where a registered item sits in the watchdog's array. */
const SLOT = Symbol("watchdog slot");

type Slotted = Watched & { [SLOT]?: number | undefined };

/** Runs registered checks on one shared interval. */
export class Watchdog {
  #watched: Slotted[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * Starts checking an item.
   *
   * @param item The item.
   */
  add(item: Watched): void {
    const slotted = item as Slotted;
    const slot = slotted[SLOT];
    if (slot !== undefined && this.#watched[slot] === item) return;
    slotted[SLOT] = this.#watched.length;
    this.#watched.push(slotted);
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
    const slotted = item as Slotted;
    const slot = slotted[SLOT];
    if (slot === undefined || this.#watched[slot] !== item) return;
    slotted[SLOT] = undefined;
    // The last item takes the freed slot; `pop` clears the array's last cell.
    const last = this.#watched.pop()!;
    if (last !== item) {
      this.#watched[slot] = last;
      last[SLOT] = slot;
    }
  }

  /** Items registered now. */
  get size(): number {
    return this.#watched.length;
  }

  #tick(): void {
    // The interval stops at the first tick that finds nothing to watch, not on every delete:
    // starting and clearing a timer per request costs more than the request's own checks.
    if (this.#watched.length === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = performance.now();
    // From the end: a check that deletes its own item moves an already-checked one into its slot.
    for (let i = this.#watched.length - 1; i >= 0; i--) this.#watched[i]?.check(now);
  }
}

/** The process-wide watchdog. */
export const watchdog: Watchdog = new Watchdog();
