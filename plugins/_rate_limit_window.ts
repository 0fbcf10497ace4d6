/**
 * The rate limit plugin's shared vocabulary: limits, what a store answers, and the arithmetic of the
 * sliding window (a fixed window with interpolation). The memory store runs this code; the Redis
 * store runs the same steps in Lua, so both decide alike.
 *
 * A window counter keeps the count of the current minute and of the one before. At a share `e` of
 * the current minute, the count in the last 60 seconds is estimated as
 * `previous * (1 - e) + current`: the previous minute's requests are assumed evenly spread.
 *
 * @module
 */

/** Length of one window: limits are per minute. */
export const WINDOW_MS = 60_000;

/** The names of the limits, as the spec spells them. */
export type LimitName = "requests_per_minute" | "tokens_per_minute" | "concurrent";

/** The limits in force for one key and model; `undefined` means no limit. */
export interface Limits {
  /** Requests admitted per minute. */
  readonly requests_per_minute: number | undefined;
  /** Tokens (`usage.total_tokens`) per minute. */
  readonly tokens_per_minute: number | undefined;
  /** Requests in flight at once. */
  readonly concurrent: number | undefined;
}

/** One window counter as read at some instant. */
export interface WindowCounts {
  /** The count in the current fixed window. */
  readonly current: number;
  /** The count in the previous fixed window. */
  readonly previous: number;
  /** The share of the current window already passed, 0..1. */
  readonly elapsed: number;
}

/** What a store answers when asked to admit a request. */
export interface Admission {
  /** The limit that refused the request, or `undefined` when it was admitted. */
  readonly refused: LimitName | undefined;
  /** The request counter, this request included when admitted. */
  readonly requests: WindowCounts;
  /** The token counter (tokens are charged when requests end). */
  readonly tokens: WindowCounts;
  /** Requests in flight, this one included when admitted. */
  readonly inFlight: number;
}

/** Where a store keeps the counters of one key and model. */
export interface RateLimitStore {
  /**
   * Admits a request, or names the limit that refuses it; counts it when admitted.
   *
   * @param bucket The key and model, encoded.
   * @param options The limits and a unique id for the concurrency slot the request takes.
   * @returns The decision and the counters.
   */
  admit(bucket: string, options: { limits: Limits; requestId: string }): Promise<Admission>;
  /**
   * Adds used tokens to the token counter.
   *
   * @param bucket The key and model, encoded.
   * @param tokens The tokens used.
   */
  charge(bucket: string, tokens: number): Promise<void>;
  /**
   * Frees the concurrency slot a request holds.
   *
   * @param bucket The key and model, encoded.
   * @param requestId The slot id given to {@link RateLimitStore.admit}.
   */
  release(bucket: string, requestId: string): Promise<void>;
  /** Disconnects and stops timers. */
  close(): Promise<void>;
}

/**
 * The count in the last window, interpolated.
 *
 * @param counts A window counter.
 * @returns `previous * (1 - elapsed) + current`.
 */
export function weighted(counts: WindowCounts): number {
  return counts.previous * (1 - counts.elapsed) + counts.current;
}

/**
 * Decides which limit, if any, refuses one more request: a request needs one request and one
 * token left (tokens are charged when it ends). Limits are checked in the order requests, tokens,
 * concurrent.
 *
 * @param limits The limits in force.
 * @param counters The request and token counters and the requests in flight, before this request.
 * @returns The refusing limit, or `undefined`.
 */
export function refusal(
  limits: Limits,
  counters: { requests: WindowCounts; tokens: WindowCounts; inFlight: number },
): LimitName | undefined {
  const rpm = limits.requests_per_minute;
  if (rpm !== undefined && weighted(counters.requests) + 1 > rpm) return "requests_per_minute";
  const tpm = limits.tokens_per_minute;
  if (tpm !== undefined && weighted(counters.tokens) + 1 > tpm) return "tokens_per_minute";
  const concurrent = limits.concurrent;
  if (concurrent !== undefined && counters.inFlight >= concurrent) return "concurrent";
  return undefined;
}

/**
 * What is left of a per-minute limit.
 *
 * @param limit The limit.
 * @param counts Its counter.
 * @returns The whole units left, at least 0.
 */
export function remaining(limit: number, counts: WindowCounts): number {
  return Math.max(0, Math.floor(limit - weighted(counts) + 1e-9));
}

/**
 * Milliseconds until a counter decays to at most `target`, when nothing new is counted.
 *
 * @param counts The counter now.
 * @param target The count to reach (0: the whole budget is back).
 * @returns Milliseconds, 0 when it is already there.
 */
export function msUntil(counts: WindowCounts, target: number): number {
  const { current, previous, elapsed } = counts;
  if (weighted(counts) <= target) return 0;
  if (current <= target) {
    // The previous window's share decays until the current window ends.
    return Math.max(0, WINDOW_MS * (1 - (target - current) / previous) - elapsed * WINDOW_MS);
  }
  // The current window ends, becomes the previous one, and decays in turn.
  return WINDOW_MS * (1 - elapsed) + WINDOW_MS * (1 - target / current);
}

/**
 * Formats a duration as OpenAI's rate limit headers do: `120ms`, `1.5s`, `1m0s`.
 *
 * @param ms Milliseconds.
 * @returns The duration text.
 */
export function formatDuration(ms: number): string {
  const whole = Math.ceil(ms);
  if (whole < 1000) return `${whole}ms`;
  const minutes = Math.floor(whole / 60_000);
  const seconds = Number(((whole - minutes * 60_000) / 1000).toFixed(3));
  return minutes > 0 ? `${minutes}m${seconds}s` : `${seconds}s`;
}
