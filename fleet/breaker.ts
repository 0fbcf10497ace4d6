/**
 * Passive outlier ejection (a circuit breaker) for one server, fed by real traffic.
 *
 * Connection errors, timeouts and 5xx answers count as failures; 4xx answers never do (they are
 * the client's fault). A server is ejected after `consecutive_failures` failures in a row, or when
 * at least `min_requests` requests in the last `window` seconds failed at `error_rate` or more.
 * After the cool-down one probe request is let through: success closes the breaker, failure ejects
 * the server again for twice as long (up to `max_cooldown`).
 *
 * @module
 */
import { lockCell, type LockRef, underLock, unlockCell } from "../common/shared_lock.ts";

/** Breaker settings, in seconds where they are times. */
export interface BreakerSettings {
  /** Whether passive ejection is on. */
  enabled: boolean;
  /** Failures in a row that eject. */
  consecutive_failures: number;
  /** Failure share over the window that ejects. */
  error_rate: number;
  /** Requests in the window before the rate counts. */
  min_requests: number;
  /** Window length in seconds. */
  window: number;
  /** First ejection time in seconds. */
  cooldown: number;
  /** Longest ejection time in seconds. */
  max_cooldown: number;
}

/** The breaker's state: `closed` (serving), `open` (ejected) or `half_open` (probing). */
export type BreakerState = "closed" | "open" | "half_open";

const BUCKETS = 10;
const STATES: readonly BreakerState[] = ["closed", "open", "half_open"];
// The state cell holds an index of STATES.
const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;
// Cells of the breaker's state, in a Float64Array (shared between workers when there are several).
const STATE = 0;
const CONSECUTIVE = 1;
const OPEN_UNTIL = 2;
const EJECTIONS = 3;
const PROBING = 4;
const LAST_COOLDOWN = 5;
const TOTALS = 6;
const FAILURES = TOTALS + BUCKETS;
const BUCKET_AT = FAILURES + BUCKETS;
/** Float64 cells a breaker keeps its state in. */
export const BREAKER_CELLS = BUCKET_AT + BUCKETS;

/** Where a breaker keeps its state: its own cells, or cells shared by workers with their lock. */
export interface BreakerStorage {
  /** At least {@link BREAKER_CELLS} cells, zero at first. */
  readonly cells: Float64Array;
  /** The lock every change is made under, when the cells are shared. */
  readonly lock?: LockRef;
}

/**
 * One server's circuit breaker. With shared storage every worker sees one breaker: each change is
 * made under its lock, so an ejection or a probe is decided once.
 */
export class Breaker {
  #settings: BreakerSettings;
  readonly #d: Float64Array;
  readonly #lock: LockRef | undefined;

  /**
   * Creates a closed breaker.
   *
   * @param settings Thresholds and times.
   * @param storage Shared cells and their lock (default: cells of its own).
   */
  constructor(settings: BreakerSettings, storage?: BreakerStorage) {
    this.#settings = settings;
    this.#d = storage?.cells ?? new Float64Array(BREAKER_CELLS);
    this.#lock = storage?.lock;
  }

  /** Replaces the settings (on a config change); the state is kept. */
  set settings(settings: BreakerSettings) {
    this.#settings = settings;
    if (!settings.enabled) underLock(this.#lock, () => this.#close());
  }

  /** The current state. */
  get state(): BreakerState {
    return STATES[this.#d[STATE]!]!;
  }

  /** How many times the server was ejected. */
  get ejections(): number {
    return this.#d[EJECTIONS]!;
  }

  /** When an open breaker lets a probe through, in milliseconds since the epoch. */
  get openUntil(): number {
    return this.#d[OPEN_UNTIL]!;
  }

  /**
   * Tells whether a new request may go to the server now. An open breaker whose cool-down has
   * passed admits exactly one probe.
   *
   * @param now The current time in milliseconds.
   * @returns Whether the server may be picked.
   */
  admits(now: number): boolean {
    const state = this.#d[STATE]!;
    if (state === CLOSED) return true;
    if (state === OPEN) return now >= this.#d[OPEN_UNTIL]!;
    return this.#d[PROBING] === 0;
  }

  /**
   * Marks a request as sent; an open breaker past its cool-down becomes half-open with this
   * request as its probe.
   *
   * @param now The current time in milliseconds.
   * @returns Whether this request is the probe.
   */
  onSend(now: number): boolean {
    if (this.#d[STATE] === CLOSED) return false;
    return underLock(this.#lock, () => {
      const d = this.#d;
      if (d[STATE] === OPEN && now >= d[OPEN_UNTIL]!) d[STATE] = HALF_OPEN;
      if (d[STATE] === HALF_OPEN && d[PROBING] === 0) {
        d[PROBING] = 1;
        return true;
      }
      return false;
    });
  }

  /**
   * Records how a request ended.
   *
   * @param failed Whether it failed (connection error, timeout, 5xx).
   * @param options `probe`: whether it was the probe; `now`: the time in milliseconds.
   * @returns `"ejected"` when this outcome ejected the server, `"restored"` when it closed the
   *   breaker again, else `undefined`.
   */
  record(
    failed: boolean,
    options: { probe: boolean; now: number },
  ): "ejected" | "restored" | undefined {
    if (!this.#settings.enabled) return undefined;
    const lock = this.#lock;
    if (lock === undefined) return this.#record(failed, options);
    lockCell(lock.cells, lock.index);
    try {
      return this.#record(failed, options);
    } finally {
      unlockCell(lock.cells, lock.index);
    }
  }

  #record(
    failed: boolean,
    options: { probe: boolean; now: number },
  ): "ejected" | "restored" | undefined {
    const { probe, now } = options;
    const d = this.#d;
    if (probe) {
      d[PROBING] = 0;
      if (failed) return this.#open(now, true);
      this.#close();
      return "restored";
    }
    if (d[STATE] !== CLOSED) return undefined;
    this.#count(failed, now);
    d[CONSECUTIVE] = failed ? d[CONSECUTIVE]! + 1 : 0;
    if (d[CONSECUTIVE]! >= this.#settings.consecutive_failures) return this.#open(now, false);
    const [total, failures] = this.#windowTotals(now);
    if (total >= this.#settings.min_requests && failures / total >= this.#settings.error_rate) {
      return this.#open(now, false);
    }
    return undefined;
  }

  #open(now: number, again: boolean): "ejected" {
    const d = this.#d;
    const base = this.#settings.cooldown * 1000;
    const previous = d[OPEN_UNTIL]! > 0 ? d[LAST_COOLDOWN]! : base;
    const cooldown = again ? Math.min(previous * 2, this.#settings.max_cooldown * 1000) : base;
    d[LAST_COOLDOWN] = cooldown;
    d[STATE] = OPEN;
    d[OPEN_UNTIL] = now + cooldown;
    d[CONSECUTIVE] = 0;
    d.fill(0, TOTALS, BUCKET_AT);
    d[EJECTIONS]!++;
    return "ejected";
  }

  #close(): void {
    const d = this.#d;
    d[STATE] = CLOSED;
    d[CONSECUTIVE] = 0;
    d[PROBING] = 0;
    d[OPEN_UNTIL] = 0;
  }

  #count(failed: boolean, now: number): void {
    const d = this.#d;
    const span = (this.#settings.window * 1000) / BUCKETS;
    const slot = Math.floor(now / span);
    const index = slot % BUCKETS;
    if (d[BUCKET_AT + index] !== slot) {
      d[BUCKET_AT + index] = slot;
      d[TOTALS + index] = 0;
      d[FAILURES + index] = 0;
    }
    d[TOTALS + index]!++;
    if (failed) d[FAILURES + index]!++;
  }

  #windowTotals(now: number): [number, number] {
    const d = this.#d;
    const span = (this.#settings.window * 1000) / BUCKETS;
    const oldest = Math.floor(now / span) - BUCKETS + 1;
    let total = 0;
    let failures = 0;
    for (let i = 0; i < BUCKETS; i++) {
      if (d[BUCKET_AT + i]! >= oldest) {
        total += d[TOTALS + i]!;
        failures += d[FAILURES + i]!;
      }
    }
    return [total, failures];
  }
}
