/**
 * The rate limit plugin's in-memory stores: one isolate's counters ({@link MemoryStore}), or
 * counters shared by the gateway's workers ({@link SharedMemoryStore}); both exact and
 * synchronous. Counters of keys that went quiet for two windows are dropped (or reused).
 *
 * @module
 */
import { SharedTable } from "../common/shared_table.ts";
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

/** Records of the shared store: keys and models with counters at once. */
const SHARED_CAPACITY = 16_384;
// Fields of a shared record.
const WINDOW = 0;
const REQUESTS_CURRENT = 1;
const TOKENS_CURRENT = 3; // each current count is followed by the previous window's
const IN_FLIGHT = 5;
const FIELDS = 6;

/** Bytes of the buffer a {@link SharedMemoryStore} needs. */
export const SHARED_STORE_BYTES: number = SharedTable.bytes(SHARED_CAPACITY, FIELDS);

/**
 * Counters in memory shared by the gateway's workers (a `SharedArrayBuffer`), exact across them:
 * each admission is decided under its record's lock. In-flight requests are counted rather than
 * named (each is released once). When the table is full of live keys, new keys are admitted
 * unlimited, and that is logged once.
 */
export class SharedMemoryStore implements RateLimitStore {
  readonly #table: SharedTable;
  readonly #now: () => number;
  #full = false;
  readonly #onFull: () => void;

  /**
   * Views the shared counters.
   *
   * @param memory A buffer of {@link SHARED_STORE_BYTES} bytes, the same in every worker.
   * @param options `now` replaces the clock; `onFull` runs the first time the table is full.
   */
  constructor(
    memory: SharedArrayBuffer,
    options: { now?: () => number; onFull?: () => void } = {},
  ) {
    this.#table = new SharedTable(memory, { capacity: SHARED_CAPACITY, fields: FIELDS });
    this.#now = options.now ?? Date.now;
    this.#onFull = options.onFull ?? (() => {});
  }

  /** {@inheritDoc RateLimitStore.admit} */
  admit(bucketId: string, options: Parameters<RateLimitStore["admit"]>[1]): Promise<Admission> {
    const now = this.#now();
    const window = Math.floor(now / WINDOW_MS);
    const elapsed = (now % WINDOW_MS) / WINDOW_MS;
    const { limits } = options;
    const admission = this.#table.update(bucketId, {
      reusable: (cells, base) =>
        cells[base + WINDOW]! < window - 1 && cells[base + IN_FLIGHT] === 0,
      section: (cells, base) => {
        roll(cells, base, window);
        const requests = counts(cells, base + REQUESTS_CURRENT, elapsed);
        const tokens = counts(cells, base + TOKENS_CURRENT, elapsed);
        const inFlight = cells[base + IN_FLIGHT]!;
        const refused = refusal(limits, { requests, tokens, inFlight });
        if (refused === undefined) {
          if (limits.requests_per_minute !== undefined) cells[base + REQUESTS_CURRENT]!++;
          if (limits.concurrent !== undefined) cells[base + IN_FLIGHT]!++;
        }
        return {
          refused,
          requests: counts(cells, base + REQUESTS_CURRENT, elapsed),
          tokens,
          inFlight: cells[base + IN_FLIGHT]!,
        };
      },
    });
    if (admission !== undefined) return Promise.resolve(admission);
    if (!this.#full) {
      this.#full = true;
      this.#onFull();
    }
    const none = { current: 0, previous: 0, elapsed };
    return Promise.resolve({ refused: undefined, requests: none, tokens: none, inFlight: 0 });
  }

  /** {@inheritDoc RateLimitStore.charge} */
  charge(bucketId: string, tokens: number): Promise<void> {
    const window = Math.floor(this.#now() / WINDOW_MS);
    this.#table.existing(bucketId, (cells, base) => {
      roll(cells, base, window);
      cells[base + TOKENS_CURRENT]! += tokens;
    });
    return Promise.resolve();
  }

  /** {@inheritDoc RateLimitStore.release} */
  release(bucketId: string, _requestId: string): Promise<void> {
    this.#table.existing(bucketId, (cells, base) => {
      if (cells[base + IN_FLIGHT]! > 0) cells[base + IN_FLIGHT]!--;
    });
    return Promise.resolve();
  }

  /** {@inheritDoc RateLimitStore.close} */
  close(): Promise<void> {
    // The counters belong to every worker (and the next plugin instance): they stay.
    return Promise.resolve();
  }
}

/** Moves a record's counters to `window`. */
function roll(cells: Float64Array, base: number, window: number): void {
  const at = cells[base + WINDOW]!;
  if (at === window) return;
  for (const current of [base + REQUESTS_CURRENT, base + TOKENS_CURRENT]) {
    cells[current + 1] = at === window - 1 ? cells[current]! : 0;
    cells[current] = 0;
  }
  cells[base + WINDOW] = window;
}

function counts(cells: Float64Array, current: number, elapsed: number): WindowCounts {
  return { current: cells[current]!, previous: cells[current + 1]!, elapsed };
}
