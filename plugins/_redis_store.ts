/**
 * The rate limit plugin's Redis store, for several gateway replicas sharing limits. Every decision
 * is one atomic Lua script (`EVALSHA`, falling back to `EVAL` once after a Redis restart), timed
 * by Redis's clock. Concurrency slots are leases of {@link LEASE_MS} that this process renews
 * while its requests run, so slots of a replica that died free themselves.
 *
 * Commands fail fast while Redis is unreachable (no offline queue, a command timeout); the client
 * reconnects on its own. Changes between reachable and unreachable are logged once each.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { Redis } from "ioredis";
import { ADMIT, CHARGE, type LuaScript, RENEW } from "./_redis_scripts.ts";
import {
  type Admission,
  type LimitName,
  type RateLimitStore,
  WINDOW_MS,
  type WindowCounts,
} from "./_rate_limit_window.ts";

/** How long a concurrency slot lives unless renewed. */
export const LEASE_MS = 30_000;

const logger = getLogger(["llmstream", "rate_limit"]);
const REFUSED: readonly (LimitName | undefined)[] = [
  undefined,
  "requests_per_minute",
  "tokens_per_minute",
  "concurrent",
];

/** Options for {@link connectRedisStore}. */
export interface RedisStoreOptions {
  /** Prefix of every key. */
  prefix: string;
  /** Connect and command timeout in milliseconds. */
  timeoutMs: number;
  /** What the plugin does while Redis is unreachable, for the log line. */
  onError: "open" | "closed";
  /** How long a concurrency slot lives unless renewed (default {@link LEASE_MS}). */
  leaseMs?: number;
}

/**
 * Creates a Redis store and waits (up to the timeout) for its first connection; an unreachable
 * Redis is logged, not thrown: the client keeps reconnecting.
 *
 * @param url A `redis://` or `rediss://` URL.
 * @param options Key prefix, timeout and failure policy.
 * @returns The store.
 */
export async function connectRedisStore(
  url: string,
  options: RedisStoreOptions,
): Promise<RedisStore> {
  const store = new RedisStore(url, options);
  await store.connected();
  return store;
}

/** Counters in Redis, shared by every replica using the same URL and prefix. */
export class RedisStore implements RateLimitStore {
  #redis: Redis;
  #options: RedisStoreOptions;
  #where: string;
  #reachable: boolean | undefined;
  #held = new Map<string, Set<string>>();
  #renewTimer: ReturnType<typeof setInterval>;
  #leaseMs: number;

  /**
   * Creates a store; the connection starts at once.
   *
   * @param url A `redis://` or `rediss://` URL.
   * @param options Key prefix, timeout and failure policy.
   */
  constructor(url: string, options: RedisStoreOptions) {
    this.#options = options;
    this.#where = redactedUrl(url);
    this.#redis = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: options.timeoutMs,
      commandTimeout: options.timeoutMs,
      retryStrategy: (times: number) => Math.min(times * 100, 1000),
    });
    this.#redis.on("error", (error: unknown) => this.#down(error));
    this.#redis.on("ready", () => this.#up());
    this.#leaseMs = options.leaseMs ?? LEASE_MS;
    this.#renewTimer = setInterval(() => this.#renew(), this.#leaseMs / 3);
  }

  /** Resolves once the first connection succeeded or failed. */
  async connected(): Promise<void> {
    try {
      await this.#redis.connect();
    } catch (error) {
      this.#down(error);
    }
  }

  /** {@inheritDoc RateLimitStore.admit} */
  async admit(bucket: string, options: Parameters<RateLimitStore["admit"]>[1]): Promise<Admission> {
    const { limits, requestId } = options;
    const keys = this.#keys(bucket);
    const reply = await this.#run(ADMIT, [keys.requests, keys.tokens, keys.inFlight], [
      WINDOW_MS,
      limits.requests_per_minute ?? -1,
      limits.tokens_per_minute ?? -1,
      limits.concurrent ?? -1,
      requestId,
      this.#leaseMs,
    ]);
    if (!Array.isArray(reply) || reply.length !== 7 || !reply.every(Number.isFinite)) {
      throw new Error(`Redis answered the admit script with ${JSON.stringify(reply)}`);
    }
    const [refused, now, rc, rp, tc, tp, inFlight] = reply as number[];
    const elapsed = (now! % WINDOW_MS) / WINDOW_MS;
    const counts = (current: number, previous: number): WindowCounts => ({
      current,
      previous,
      elapsed,
    });
    const refusedLimit = REFUSED[refused!];
    if (refusedLimit === undefined && limits.concurrent !== undefined) {
      const held = this.#held.get(keys.inFlight) ?? new Set();
      held.add(requestId);
      this.#held.set(keys.inFlight, held);
    }
    return {
      refused: refusedLimit,
      requests: counts(rc!, rp!),
      tokens: counts(tc!, tp!),
      inFlight: inFlight!,
    };
  }

  /** {@inheritDoc RateLimitStore.charge} */
  async charge(bucket: string, tokens: number): Promise<void> {
    await this.#run(CHARGE, [this.#keys(bucket).tokens], [WINDOW_MS, tokens]);
  }

  /** {@inheritDoc RateLimitStore.release} */
  async release(bucket: string, requestId: string): Promise<void> {
    const key = this.#keys(bucket).inFlight;
    const held = this.#held.get(key);
    held?.delete(requestId);
    if (held?.size === 0) this.#held.delete(key);
    try {
      await this.#redis.zrem(key, requestId);
      this.#up();
    } catch (error) {
      this.#down(error);
      throw error;
    }
  }

  /** {@inheritDoc RateLimitStore.close} */
  async close(): Promise<void> {
    clearInterval(this.#renewTimer);
    try {
      if (this.#redis.status === "ready") await this.#redis.quit();
    } catch {
      // Closing anyway.
    } finally {
      this.#redis.disconnect();
    }
  }

  #keys(bucket: string): { requests: string; tokens: string; inFlight: string } {
    const base = `${this.#options.prefix}{${bucket}}`;
    return { requests: `${base}:r`, tokens: `${base}:t`, inFlight: `${base}:c` };
  }

  /** Runs a script by its SHA, loading it on `NOSCRIPT`; records reachability. */
  async #run(script: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      let reply: unknown;
      try {
        reply = await this.#redis.evalsha(script.sha, keys.length, ...keys, ...args);
      } catch (error) {
        if (!String(error).includes("NOSCRIPT")) throw error;
        reply = await this.#redis.eval(script.lua, keys.length, ...keys, ...args);
      }
      this.#up();
      return reply;
    } catch (error) {
      this.#down(error);
      throw error;
    }
  }

  /** Renews the leases of this process's requests in flight. */
  #renew(): void {
    for (const [key, ids] of this.#held) {
      this.#run(RENEW, [key], [WINDOW_MS, this.#leaseMs, ...ids]).catch(() => {});
    }
  }

  #up(): void {
    if (this.#reachable === true) return;
    if (this.#reachable === false) {
      logger.info('Rate limits use Redis at "{url}" again', { url: this.#where });
    }
    this.#reachable = true;
  }

  #down(error: unknown): void {
    if (this.#reachable === false) return;
    this.#reachable = false;
    const policy = this.#options.onError === "open"
      ? "requests pass without rate limits (on_store_error: open)"
      : "requests are refused with 503 (on_store_error: closed)";
    logger.warn('Rate limits cannot use Redis at "{url}": {policy}; error: {error}', {
      url: this.#where,
      policy,
      error: error instanceof Error ? error.message : String(error),
    });
  }
}

/** The URL with its password hidden, for logs. */
function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.href;
  } catch {
    return "(an invalid URL)";
  }
}
