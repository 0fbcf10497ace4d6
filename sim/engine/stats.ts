/**
 * Counters and histograms the simulated engine keeps for `/metrics`.
 *
 * @module
 */

/** Why a request finished, as vLLM labels `request_success_total`. */
export type FinishReason = "stop" | "length" | "abort";

/** vLLM's time-to-first-token buckets, in seconds. */
export const TTFT_BUCKETS: readonly number[] = [
  0.001,
  0.005,
  0.01,
  0.02,
  0.04,
  0.06,
  0.08,
  0.1,
  0.25,
  0.5,
  0.75,
  1.0,
  2.5,
  5.0,
  7.5,
  10.0,
  20.0,
  40.0,
  80.0,
  160.0,
  640.0,
  2560.0,
];

/** vLLM's inter-token latency buckets, in seconds. */
export const ITL_BUCKETS: readonly number[] = [
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.15,
  0.2,
  0.3,
  0.4,
  0.5,
  0.75,
  1.0,
  2.5,
  5.0,
  7.5,
  10.0,
  20.0,
  40.0,
  80.0,
];

/** vLLM's request latency buckets (e2e, queue, prefill, decode), in seconds. */
export const REQUEST_LATENCY_BUCKETS: readonly number[] = [
  0.3,
  0.5,
  0.8,
  1.0,
  1.5,
  2.0,
  2.5,
  5.0,
  10.0,
  15.0,
  20.0,
  30.0,
  40.0,
  50.0,
  60.0,
  120.0,
  240.0,
  480.0,
  960.0,
  1920.0,
  7680.0,
];

/**
 * A Prometheus histogram with fixed upper bounds.
 *
 * @example
 * ```ts
 * const h = new Histogram(TTFT_BUCKETS);
 * h.observe(0.03);
 * h.count; // 1
 * ```
 */
export class Histogram {
  /** Upper bounds, ascending, without `+Inf`. */
  readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last entry is `+Inf`. */
  readonly counts: number[];
  /** Sum of all observations. */
  sum = 0;
  /** Number of observations. */
  count = 0;

  /**
   * Creates an empty histogram.
   *
   * @param bounds Upper bounds, ascending.
   */
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  /**
   * Records one value.
   *
   * @param value The observation.
   */
  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > (this.bounds[i] ?? Infinity)) i++;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.sum += value;
    this.count++;
  }

  /**
   * Cumulative counts per bound, `+Inf` last.
   *
   * @returns One count per bucket.
   */
  cumulative(): number[] {
    let total = 0;
    return this.counts.map((n) => (total += n));
  }
}

/** Everything the engine counts since start. */
export class EngineStats {
  /** When the stats were created, in seconds since the epoch (for `_created` series). */
  readonly created = Date.now() / 1000;
  /** Prompt tokens of admitted requests. */
  promptTokens = 0;
  /** Generated tokens. */
  generationTokens = 0;
  /** Prompt tokens looked up in the prefix cache. */
  prefixQueries = 0;
  /** Prompt tokens found in the prefix cache. */
  prefixHits = 0;
  /** Running requests preempted for lack of KV blocks. */
  preemptions = 0;
  /** Engine steps that ran. */
  steps = 0;
  /** Requests scheduled, summed over steps (busy slots per step times steps). */
  scheduledRequests = 0;
  /** Seconds spent prefilling (for llama.cpp's throughput gauges). */
  prefillSeconds = 0;
  /** Seconds spent decoding. */
  decodeSeconds = 0;
  /** Output tokens per second of the last step. */
  lastThroughput = 0;
  /** Finished requests per reason. */
  readonly finished: Record<FinishReason, number> = { stop: 0, length: 0, abort: 0 };
  /** Time to first token. */
  readonly ttft = new Histogram(TTFT_BUCKETS);
  /** Time between consecutive output tokens. */
  readonly itl = new Histogram(ITL_BUCKETS);
  /** Arrival to finish, for requests that finish normally. */
  readonly e2e = new Histogram(REQUEST_LATENCY_BUCKETS);
  /** Arrival to first scheduling. */
  readonly queueTime = new Histogram(REQUEST_LATENCY_BUCKETS);
  /**
   * HTTP requests answered, keyed `"METHOD handler status"` (`"POST /tokenize 2xx"`), as vLLM's
   * API server counts them in `http_requests_total` (not `/metrics`, `/health`, `/load`).
   */
  readonly httpRequests = new Map<string, number>();
}
