/**
 * A helper for cache-aware strategies: how many requests will share a prefix over the next while,
 * from those that shared it so far, counted by the chained hash of the prefix's last block
 * ({@link PromptBlocks}).
 *
 * The count decays with a time constant `τ`, so a prefix requested at a steady rate `r` for a time
 * `t` has a count of `r * τ * (1 - e^(-t/τ))`; dividing by `1 - e^(-t/τ)` gives the requests
 * expected over the next `τ`, `r * τ`, early as well as late (a prefix two requests shared a
 * second apart is expected about `τ / 1 s` more times). It tells how often a copy of the prefix on
 * one more server would be used, so the one-time prefill of that copy can be priced over those
 * uses. The table is bounded: past its size, the least recently counted prefix goes.
 *
 * @module
 */

/** Default time constant of the decay, in milliseconds. */
const DECAY_MS = 60_000;

/** Default number of prefixes kept. */
const SIZE = 4096;

/** The shortest time over which a rate is estimated, in milliseconds. */
const MIN_SPAN_MS = 1000;

/** Counts of requests per prefix, decaying over time. */
export class PrefixHeat {
  #counts = new Map<number, { count: number; at: number; since: number }>();
  #decayMs: number;
  #size: number;

  /**
   * @param options `decayMs`: the decay's time constant (60 s); `size`: prefixes kept (4096).
   */
  constructor(options: { decayMs?: number; size?: number } = {}) {
    this.#decayMs = options.decayMs ?? DECAY_MS;
    this.#size = options.size ?? SIZE;
  }

  /**
   * The requests expected to share a prefix over the next time constant, at the rate seen so far.
   *
   * @param hash The hash of the prefix's last block.
   * @param now The time, in milliseconds.
   * @returns The expected count, 0 for a prefix not counted.
   */
  expected(hash: number, now: number): number {
    const entry = this.#counts.get(hash);
    if (entry === undefined) return 0;
    const span = Math.max(MIN_SPAN_MS, now - entry.since);
    return this.#decayed(entry, now) / (1 - Math.exp(-span / this.#decayMs));
  }

  #decayed(entry: { count: number; at: number }, now: number): number {
    return entry.count * Math.exp((entry.at - now) / this.#decayMs);
  }

  /**
   * Counts one more request sharing a prefix.
   *
   * @param hash The hash of the prefix's last block.
   * @param now The time, in milliseconds.
   */
  add(hash: number, now: number): void {
    const entry = this.#counts.get(hash);
    const count = (entry === undefined ? 0 : this.#decayed(entry, now)) + 1;
    this.#counts.delete(hash);
    this.#counts.set(hash, { count, at: now, since: entry?.since ?? now });
    if (this.#counts.size > this.#size) {
      for (const oldest of this.#counts.keys()) {
        this.#counts.delete(oldest);
        break;
      }
    }
  }
}
