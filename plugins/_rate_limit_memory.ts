/**
 * The rate limit plugin's in-memory store: one process's counters, exact and synchronous. Counters
 * of keys that went quiet for two windows are dropped on the next sweep.
 *
 * @module
 */
import {
  type Admission,
  type RateLimitStore,
  refusal,
  WINDOW_MS,
  type WindowCounts,
} from "./_rate_limit_window.ts";

interface Counter {
  current: number;
  previous: number;
}

interface Bucket {
  /** The index of the fixed window `current` belongs to. */
  window: number;
  requests: Counter;
  tokens: Counter;
  inFlight: Set<string>;
}

/** Counters in this process's memory. */
export class MemoryStore implements RateLimitStore {
  #buckets = new Map<string, Bucket>();
  #now: () => number;
  #nextSweep = 0;

  /**
   * Creates an empty store.
   *
   * @param options `now` replaces the clock (milliseconds since the epoch).
   */
  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** {@inheritDoc RateLimitStore.admit} */
  admit(bucketId: string, options: Parameters<RateLimitStore["admit"]>[1]): Promise<Admission> {
    const now = this.#now();
    this.#sweep(now);
    const bucket = this.#bucket(bucketId, now);
    const elapsed = (now % WINDOW_MS) / WINDOW_MS;
    const counts = (counter: Counter): WindowCounts => ({ ...counter, elapsed });
    const { limits, requestId } = options;
    const refused = refusal(limits, {
      requests: counts(bucket.requests),
      tokens: counts(bucket.tokens),
      inFlight: bucket.inFlight.size,
    });
    if (refused === undefined) {
      if (limits.requests_per_minute !== undefined) bucket.requests.current++;
      if (limits.concurrent !== undefined) bucket.inFlight.add(requestId);
    }
    return Promise.resolve({
      refused,
      requests: counts(bucket.requests),
      tokens: counts(bucket.tokens),
      inFlight: bucket.inFlight.size,
    });
  }

  /** {@inheritDoc RateLimitStore.charge} */
  charge(bucketId: string, tokens: number): Promise<void> {
    this.#bucket(bucketId, this.#now()).tokens.current += tokens;
    return Promise.resolve();
  }

  /** {@inheritDoc RateLimitStore.release} */
  release(bucketId: string, requestId: string): Promise<void> {
    this.#buckets.get(bucketId)?.inFlight.delete(requestId);
    return Promise.resolve();
  }

  /** {@inheritDoc RateLimitStore.close} */
  close(): Promise<void> {
    this.#buckets.clear();
    return Promise.resolve();
  }

  /** The bucket, made or moved to the window `now` falls in. */
  #bucket(id: string, now: number): Bucket {
    const window = Math.floor(now / WINDOW_MS);
    let bucket = this.#buckets.get(id);
    if (!bucket) {
      bucket = {
        window,
        requests: { current: 0, previous: 0 },
        tokens: { current: 0, previous: 0 },
        inFlight: new Set(),
      };
      this.#buckets.set(id, bucket);
    }
    if (bucket.window !== window) {
      for (const counter of [bucket.requests, bucket.tokens]) {
        counter.previous = bucket.window === window - 1 ? counter.current : 0;
        counter.current = 0;
      }
      bucket.window = window;
    }
    return bucket;
  }

  /** Once a window, drops buckets with nothing counted in the last two windows. */
  #sweep(now: number): void {
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + WINDOW_MS;
    const window = Math.floor(now / WINDOW_MS);
    for (const [id, bucket] of this.#buckets) {
      if (bucket.window < window - 1 && bucket.inFlight.size === 0) this.#buckets.delete(id);
    }
  }
}
