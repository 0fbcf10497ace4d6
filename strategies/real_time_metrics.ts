/**
 * Real-time metrics: smooth weighted round robin (as nginx does it) with weights computed on every
 * pick from each server's live load and its learned speed.
 *
 * Load of a server, from its fresh scraped metrics plus what this gateway sent to it and got back
 * from it since the scrape:
 *
 *     load   = max(0, queue_weight * waiting + running + sent_since_scrape - ended_since_scrape)
 *     kv     = max(min_kv_factor, 1 - kv_cache_usage)          (1 when the engine has no KV gauge)
 *     weight = spec_weight * kv * (speed / (1 + load)) ^ power
 *
 * `speed` is the server's service rate relative to the fastest server of the model, learned from
 * what the gateway sees (1 until known): by Little's law a server's time per request is its mean
 * `running` over its completion rate, both averaged over the last `speed_window` seconds, and
 * `speed = fastest time per request / this server's`. So `(1 + load) / speed` is the work ahead of
 * a new request in units of the fastest server's request time, and a server half as fast gets
 * traffic only once the others carry twice its load (shortest expected delay). `speed_window: 0`
 * turns learning off (every `speed` is 1).
 *
 * When a server's metrics are stale (older than three scrape intervals) or missing, its load is
 * the gateway's own in-flight count and `kv` is 1. A saturated server (KV usage at or above
 * `saturated_kv`, or `waiting` at or above `saturated_queue`) gets `min_weight * spec_weight`:
 * tiny, never zero, so it still sees a request now and then and is not starved forever. No other
 * weight falls below that floor; it is small (1e-6) so that busy but unsaturated servers keep
 * distinct weights.
 *
 * Smooth weighted round robin: every pick adds each server's weight to its running score, picks the
 * highest score, and subtracts the total weight from the winner. Traffic follows the weights
 * closely without bursts to one server.
 *
 * Options (`strategy_options`): `queue_weight` (4), `power` (2), `min_kv_factor` (0.05),
 * `saturated_kv` (0.98), `saturated_queue` (64), `min_weight` (1e-6), `speed_window` (10).
 *
 * @module
 */
import type { RequestOutcome, ServerView, Strategy, StrategyOptions } from "./types.ts";
import { SmoothWeighted } from "./_smooth_weighted.ts";
import { SpeedLearner } from "./_speed_learner.ts";

/** Tunable parameters of the weight formula. */
export interface MetricsWeightParams {
  /** How many running requests one waiting request counts as. */
  queueWeight: number;
  /** Exponent on `speed / (1 + load)`: higher sends more traffic to the least loaded servers. */
  power: number;
  /** Smallest KV factor before saturation. */
  minKvFactor: number;
  /** KV usage at which a server counts as saturated. */
  saturatedKv: number;
  /** Waiting requests at which a server counts as saturated. */
  saturatedQueue: number;
  /** Weight of a saturated server, relative to its spec weight; the floor of every weight. */
  minWeight: number;
  /** Seconds over which speeds are learned; 0 turns learning off. */
  speedWindow: number;
}

/** The defaults documented above. */
export const DEFAULT_PARAMS: Readonly<MetricsWeightParams> = {
  queueWeight: 4,
  power: 2,
  minKvFactor: 0.05,
  saturatedKv: 0.98,
  saturatedQueue: 64,
  minWeight: 1e-6,
  speedWindow: 10,
};

/** What the strategy learned about a server, for {@link liveWeight}. */
export interface LiveFacts {
  /** Service rate relative to the fastest server, in (0, 1] (default 1). */
  speed?: number;
  /** Requests to the server that ended since its metrics were scraped (default 0). */
  endedSinceScrape?: number;
}

/**
 * A server's live load: `queue_weight * waiting + running + sent_since_scrape -
 * ended_since_scrape` from its fresh metrics (never below 0), or the gateway's in-flight count on
 * it when its metrics are stale.
 *
 * @param server The server's view.
 * @param queueWeight Running requests one waiting request counts as.
 * @param endedSinceScrape Requests to it that ended since its metrics were scraped.
 * @returns The load.
 */
export function liveLoad(
  server: ServerView,
  queueWeight: number,
  endedSinceScrape: number,
): number {
  const metrics = server.metrics;
  if (metrics === undefined) return server.inFlight;
  return Math.max(
    0,
    queueWeight * metrics.waiting + metrics.running + server.sentSinceScrape - endedSinceScrape,
  );
}

/**
 * Computes a server's live weight; always positive.
 *
 * @param server The server's view.
 * @param params Formula parameters.
 * @param facts Learned speed and requests ended since the scrape.
 * @returns The weight.
 */
export function liveWeight(
  server: ServerView,
  params: Readonly<MetricsWeightParams>,
  facts: LiveFacts = {},
): number {
  const floor = server.weight * params.minWeight;
  const speed = facts.speed ?? 1;
  const load = liveLoad(server, params.queueWeight, facts.endedSinceScrape ?? 0);
  const metrics = server.metrics;
  if (metrics === undefined) {
    return Math.max(floor, server.weight * (speed / (1 + load)) ** params.power);
  }
  const kvUsage = metrics.kvUsage ?? 0;
  if (kvUsage >= params.saturatedKv || metrics.waiting >= params.saturatedQueue) return floor;
  const kv = Math.max(params.minKvFactor, 1 - kvUsage);
  return Math.max(floor, server.weight * kv * (speed / (1 + load)) ** params.power);
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
  const learner = new SpeedLearner(params.speedWindow);
  return {
    pick(servers: readonly ServerView[]): ServerView | undefined {
      const now = Date.now();
      for (const server of servers) learner.observe(server);
      const speeds = learner.speeds(servers);
      return smooth.pick(servers, (server) =>
        liveWeight(server, params, {
          speed: speeds.get(server.url) ?? 1,
          endedSinceScrape: learner.endedSince(server, now),
        }));
    },
    onStart(server: ServerView): void {
      learner.started(server);
    },
    onEnd(server: ServerView, _request, outcome: RequestOutcome): void {
      learner.ended(server, outcome);
    },
    weightOf(server: ServerView, servers: readonly ServerView[]): number {
      return liveWeight(server, params, {
        speed: learner.speeds(servers).get(server.url) ?? 1,
        endedSinceScrape: learner.endedSince(server, Date.now()),
      });
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
    ["speed_window", "speedWindow"],
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
