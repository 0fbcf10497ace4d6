/**
 * Real-time metrics: smooth weighted round robin (as nginx does it) with weights computed on every
 * pick from each server's live load.
 *
 * Load of a server, from its fresh scraped metrics plus what this gateway sent since the scrape:
 *
 *     load   = queue_weight * waiting + running + sent_since_scrape
 *     kv     = max(min_kv_factor, 1 - kv_cache_usage)          (1 when the engine has no KV gauge)
 *     weight = spec_weight * kv / (1 + load) ^ power
 *
 * When a server's metrics are stale (older than three scrape intervals) or missing, its load is
 * the gateway's own in-flight count and `kv` is 1. A saturated server (KV usage at or above
 * `saturated_kv`, or `waiting` at or above `saturated_queue`) gets `min_weight * spec_weight`:
 * tiny, never zero, so it still sees a request now and then and is not starved forever.
 *
 * Smooth weighted round robin: every pick adds each server's weight to its running score, picks the
 * highest score, and subtracts the total weight from the winner. Traffic follows the weights
 * closely without bursts to one server.
 *
 * Options (`strategy_options`): `queue_weight` (4), `power` (2), `min_kv_factor` (0.05),
 * `saturated_kv` (0.98), `saturated_queue` (64), `min_weight` (0.001).
 *
 * @module
 */
import type { ServerView, Strategy, StrategyOptions } from "./types.ts";
import { SmoothWeighted } from "./_smooth_weighted.ts";

/** Tunable parameters of the weight formula. */
export interface MetricsWeightParams {
  /** How many running requests one waiting request counts as. */
  queueWeight: number;
  /** Exponent on `1 + load`: higher sends more traffic to the least loaded servers. */
  power: number;
  /** Smallest KV factor before saturation. */
  minKvFactor: number;
  /** KV usage at which a server counts as saturated. */
  saturatedKv: number;
  /** Waiting requests at which a server counts as saturated. */
  saturatedQueue: number;
  /** Weight of a saturated server, relative to its spec weight. */
  minWeight: number;
}

/** The defaults documented above. */
export const DEFAULT_PARAMS: Readonly<MetricsWeightParams> = {
  queueWeight: 4,
  power: 2,
  minKvFactor: 0.05,
  saturatedKv: 0.98,
  saturatedQueue: 64,
  minWeight: 0.001,
};

/**
 * Computes a server's live weight; always positive.
 *
 * @param server The server's view.
 * @param params Formula parameters.
 * @returns The weight.
 */
export function liveWeight(server: ServerView, params: Readonly<MetricsWeightParams>): number {
  const metrics = server.metrics;
  if (metrics === undefined) return server.weight / (1 + server.inFlight) ** params.power;
  const kvUsage = metrics.kvUsage ?? 0;
  if (kvUsage >= params.saturatedKv || metrics.waiting >= params.saturatedQueue) {
    return server.weight * params.minWeight;
  }
  const load = params.queueWeight * metrics.waiting + metrics.running + server.sentSinceScrape;
  const kv = Math.max(params.minKvFactor, 1 - kvUsage);
  return Math.max(
    server.weight * params.minWeight,
    server.weight * kv / (1 + load) ** params.power,
  );
}

/**
 * Creates the real-time-metrics strategy.
 *
 * @param options `options.options` may override the formula's parameters (snake_case keys).
 * @returns The strategy.
 */
export default function createRealTimeMetrics(options: StrategyOptions): Strategy {
  const params = readParams(options.options);
  const smooth = new SmoothWeighted();
  const weightOf = (server: ServerView) => liveWeight(server, params);
  return {
    pick(servers: readonly ServerView[]): ServerView | undefined {
      return smooth.pick(servers, weightOf);
    },
  };
}

/**
 * Reads the formula's parameters from a model's `strategy_options`, over the defaults.
 *
 * @param raw The options.
 * @returns The parameters.
 * @throws Error naming an option that is not a non-negative number.
 */
export function readParams(raw: Readonly<Record<string, unknown>>): MetricsWeightParams {
  const params = { ...DEFAULT_PARAMS };
  const keys: [string, keyof MetricsWeightParams][] = [
    ["queue_weight", "queueWeight"],
    ["power", "power"],
    ["min_kv_factor", "minKvFactor"],
    ["saturated_kv", "saturatedKv"],
    ["saturated_queue", "saturatedQueue"],
    ["min_weight", "minWeight"],
  ];
  for (const [key, field] of keys) {
    const value = raw[key];
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new Error(`strategy option "${key}" must be a non-negative number, not ${value}`);
    }
    params[field] = value;
  }
  if (params.minWeight <= 0) throw new Error(`strategy option "min_weight" must be above 0`);
  return params;
}
