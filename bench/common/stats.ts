/**
 * Small statistics helpers for the proxy benchmark.
 *
 * @module
 */

/** Percentiles of a sample, in the sample's unit. */
export interface Summary {
  /** Number of values. */
  count: number;
  /** Median. */
  p50: number;
  /** 99th percentile. */
  p99: number;
  /** Largest value. */
  max: number;
}

/**
 * Summarises values by nearest-rank percentiles.
 *
 * @param values The sample (not modified).
 * @returns Count, p50, p99 and max; NaN percentiles for an empty sample.
 */
export function summarize(values: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(values).sort();
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length > 0 ? sorted[sorted.length - 1]! : NaN,
  };
}

/**
 * The nearest-rank percentile of a sorted sample.
 *
 * @param sorted Values in ascending order.
 * @param p The percentile, 0 to 100.
 * @returns The value, or NaN for an empty sample.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}
