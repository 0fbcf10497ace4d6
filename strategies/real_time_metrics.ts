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
  const metrics = server.metrics;
  if (metrics === undefined) {
    return Math.max(floor, server.weight * (speed / (1 + server.inFlight)) ** params.power);
  }
  const kvUsage = metrics.kvUsage ?? 0;
  if (kvUsage >= params.saturatedKv || metrics.waiting >= params.saturatedQueue) return floor;
  const load = Math.max(
    0,
    params.queueWeight * metrics.waiting + metrics.running + server.sentSinceScrape -
      (facts.endedSinceScrape ?? 0),
  );
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

/** End times kept per server between scrapes, at most. */
const MAX_ENDS = 4096;

/** Per-server observations of a {@link SpeedLearner}. */
interface Observed {
  /** End times (ms since the epoch) not yet folded into the averages. */
  ends: number[];
  /** Ends counted for the averages so far, of successful requests. */
  successes: number[];
  /** `scrapedAt` of the last scrape folded in. */
  scrapedAt: number;
  /** Moving average of scraped `running`. */
  running: number;
  /** Moving average of successful completions per second. */
  rate: number;
  /** Successful completions folded in so far. */
  completions: number;
  /** Seconds per request (running / rate), once there is enough data. */
  timePerRequest: number | undefined;
}

/**
 * Learns each server's time per request by Little's law: mean requests running over mean
 * completions per second, both as exponential moving averages over `window` seconds, updated on
 * each new scrape. A server's estimate changes only while it completes requests, so a server that
 * gets little traffic keeps its last estimate.
 */
class SpeedLearner {
  #window: number;
  #servers = new Map<string, Observed>();

  constructor(window: number) {
    this.#window = window;
  }

  ended(server: ServerView, outcome: RequestOutcome): void {
    const observed = this.#of(server.url);
    const now = Date.now();
    observed.ends.push(now);
    if (outcome === "success") observed.successes.push(now);
    // Without scrapes nothing prunes these; keep the newest.
    if (observed.ends.length > MAX_ENDS) observed.ends.splice(0, MAX_ENDS / 2);
    if (observed.successes.length > MAX_ENDS) observed.successes.splice(0, MAX_ENDS / 2);
  }

  /** Requests that ended after the server's metrics were scraped. */
  endedSince(server: ServerView, now: number): number {
    const scrapedAt = server.metrics?.scrapedAt;
    if (scrapedAt === undefined) return 0;
    const ends = this.#of(server.url).ends;
    let count = 0;
    for (let i = ends.length - 1; i >= 0 && ends[i]! > scrapedAt; i--) if (ends[i]! <= now) count++;
    return count;
  }

  /** Folds a new scrape of the server into its averages. */
  observe(server: ServerView): void {
    const metrics = server.metrics;
    const observed = this.#of(server.url);
    if (metrics === undefined || metrics.scrapedAt <= observed.scrapedAt) return;
    const since = observed.scrapedAt;
    observed.scrapedAt = metrics.scrapedAt;
    observed.ends = observed.ends.filter((at) => at > metrics.scrapedAt);
    let completed = 0;
    const kept: number[] = [];
    for (const at of observed.successes) {
      if (at > metrics.scrapedAt) kept.push(at);
      else if (at > since) completed++;
    }
    observed.successes = kept;
    if (since === 0 || this.#window <= 0) return;
    const seconds = (metrics.scrapedAt - since) / 1000;
    const alpha = 1 - Math.exp(-seconds / this.#window);
    observed.running += alpha * (metrics.running - observed.running);
    observed.rate += alpha * (completed / seconds - observed.rate);
    observed.completions += completed;
    // Both averages start together, so their ratio is unbiased early on; three completions
    // make it mean something.
    if (observed.completions >= 3 && observed.rate > 0 && observed.running > 0) {
      observed.timePerRequest = observed.running / observed.rate;
    }
  }

  /** Speeds relative to the fastest server with an estimate; servers without one get 1. */
  speeds(servers: readonly ServerView[]): Map<string, number> {
    let fastest = Infinity;
    for (const server of servers) {
      const time = this.#servers.get(server.url)?.timePerRequest;
      if (time !== undefined && time < fastest) fastest = time;
    }
    const speeds = new Map<string, number>();
    for (const server of servers) {
      const time = this.#servers.get(server.url)?.timePerRequest;
      speeds.set(server.url, time === undefined ? 1 : Math.min(1, fastest / time));
    }
    return speeds;
  }

  #of(url: string): Observed {
    let observed = this.#servers.get(url);
    if (!observed) {
      observed = {
        ends: [],
        successes: [],
        scrapedAt: 0,
        running: 0,
        rate: 0,
        completions: 0,
        timePerRequest: undefined,
      };
      this.#servers.set(url, observed);
    }
    return observed;
  }
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
