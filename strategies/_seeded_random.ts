/**
 * A helper for strategies (files starting with `_` are not strategies): a random generator that can
 * be seeded, so tests and benchmarks repeat.
 *
 * @module
 */

/**
 * Returns a generator of floats in [0, 1): seeded (mulberry32) when `seed` is a number, else
 * `Math.random`.
 *
 * @param seed An optional seed, usually `strategy_options.seed`.
 * @returns The generator.
 * @example
 * ```ts
 * const random = seededRandom(42);
 * random(); // the same sequence on every run
 * ```
 */
export function seededRandom(seed: unknown): () => number {
  if (typeof seed !== "number") return Math.random;
  let state = seed >>> 0;
  return function next(): number {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
