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

/** One server's circuit breaker. */
export class Breaker {
  #settings: BreakerSettings;
  #state: BreakerState = "closed";
  #consecutive = 0;
  #openUntil = 0;
  #ejections = 0;
  #probing = false;
  #lastCooldown = 0;
  #totals = new Array<number>(BUCKETS).fill(0);
  #failures = new Array<number>(BUCKETS).fill(0);
  #bucketAt = new Array<number>(BUCKETS).fill(0);

  /**
   * Creates a closed breaker.
   *
   * @param settings Thresholds and times.
   */
  constructor(settings: BreakerSettings) {
    this.#settings = settings;
  }

  /** Replaces the settings (on a config change); the state is kept. */
  set settings(settings: BreakerSettings) {
    this.#settings = settings;
    if (!settings.enabled) this.#close();
  }

  /** The current state. */
  get state(): BreakerState {
    return this.#state;
  }

  /** How many times the server was ejected. */
  get ejections(): number {
    return this.#ejections;
  }

  /** When an open breaker lets a probe through, in milliseconds since the epoch. */
  get openUntil(): number {
    return this.#openUntil;
  }

  /**
   * Tells whether a new request may go to the server now. An open breaker whose cool-down has
   * passed admits exactly one probe.
   *
   * @param now The current time in milliseconds.
   * @returns Whether the server may be picked.
   */
  admits(now: number): boolean {
    if (this.#state === "closed") return true;
    if (this.#state === "open") return now >= this.#openUntil;
    return !this.#probing;
  }

  /**
   * Marks a request as sent; an open breaker past its cool-down becomes half-open with this
   * request as its probe.
   *
   * @param now The current time in milliseconds.
   * @returns Whether this request is the probe.
   */
  onSend(now: number): boolean {
    if (this.#state === "open" && now >= this.#openUntil) this.#state = "half_open";
    if (this.#state === "half_open" && !this.#probing) {
      this.#probing = true;
      return true;
    }
    return false;
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
    const { probe, now } = options;
    if (!this.#settings.enabled) return undefined;
    if (probe) {
      this.#probing = false;
      if (failed) return this.#open(now, true);
      this.#close();
      return "restored";
    }
    if (this.#state !== "closed") return undefined;
    this.#count(failed, now);
    this.#consecutive = failed ? this.#consecutive + 1 : 0;
    if (this.#consecutive >= this.#settings.consecutive_failures) return this.#open(now, false);
    const [total, failures] = this.#windowTotals(now);
    if (total >= this.#settings.min_requests && failures / total >= this.#settings.error_rate) {
      return this.#open(now, false);
    }
    return undefined;
  }

  #open(now: number, again: boolean): "ejected" {
    const base = this.#settings.cooldown * 1000;
    const previous = this.#openUntil > 0 ? this.#lastCooldown : base;
    const cooldown = again ? Math.min(previous * 2, this.#settings.max_cooldown * 1000) : base;
    this.#lastCooldown = cooldown;
    this.#state = "open";
    this.#openUntil = now + cooldown;
    this.#consecutive = 0;
    this.#totals.fill(0);
    this.#failures.fill(0);
    this.#ejections++;
    return "ejected";
  }

  #close(): void {
    this.#state = "closed";
    this.#consecutive = 0;
    this.#probing = false;
    this.#openUntil = 0;
  }

  #count(failed: boolean, now: number): void {
    const span = (this.#settings.window * 1000) / BUCKETS;
    const slot = Math.floor(now / span);
    const index = slot % BUCKETS;
    if (this.#bucketAt[index] !== slot) {
      this.#bucketAt[index] = slot;
      this.#totals[index] = 0;
      this.#failures[index] = 0;
    }
    this.#totals[index]!++;
    if (failed) this.#failures[index]!++;
  }

  #windowTotals(now: number): [number, number] {
    const span = (this.#settings.window * 1000) / BUCKETS;
    const oldest = Math.floor(now / span) - BUCKETS + 1;
    let total = 0;
    let failures = 0;
    for (let i = 0; i < BUCKETS; i++) {
      if (this.#bucketAt[i]! >= oldest) {
        total += this.#totals[i]!;
        failures += this.#failures[i]!;
      }
    }
    return [total, failures];
  }
}
