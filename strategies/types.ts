/**
 * The strategy contract: how a load-balancing strategy sees servers and requests.
 *
 * A strategy file exports a default factory `create(options)` returning a {@link Strategy}.
 * Selection is pure: a strategy reads the snapshot it is given and returns a choice; it never
 * fetches, sleeps or touches HTTP. Health, metrics scraping, retries and proxying live elsewhere.
 *
 * @example A strategy that always picks the first server
 * ```ts
 * import type { Strategy, StrategyOptions } from "./types.ts";
 *
 * export default function create(_options: StrategyOptions): Strategy {
 *   return { pick: (servers) => servers[0] };
 * }
 * ```
 *
 * @module
 */

/** Load facts a server reported on its `/metrics` endpoint, normalised across engines. */
export interface ServerMetrics {
  /** Requests in the running batch. */
  readonly running: number;
  /** Requests queued, not yet scheduled. */
  readonly waiting: number;
  /** KV-cache usage from 0 to 1, when the engine reports it. */
  readonly kvUsage?: number;
  /** Prefix-cache hits over queries since the previous scrape (0..1), when reported. */
  readonly prefixHitRate?: number;
  /**
   * The prefix-cache queries counter (tokens since the engine started), when reported; a value
   * lower than the last one means the server restarted with an empty cache.
   */
  readonly prefixQueries?: number;
  /** KV-cache capacity in tokens, when the engine reports its cache config (vLLM). */
  readonly cacheTokens?: number;
  /** When the scrape finished, in milliseconds since the epoch. */
  readonly scrapedAt: number;
}

/** One server of a model as a strategy sees it: static facts plus live stats. */
export interface ServerView {
  /** Base URL of the server, e.g. `http://10.0.0.5:8000`. */
  readonly url: string;
  /** Static weight from the spec (default 1). */
  readonly weight: number;
  /** Position of the server in the model's server list. */
  readonly index: number;
  /** Requests this gateway has in flight on the server now (all models). */
  readonly inFlight: number;
  /** Requests this gateway sent to the server since its metrics were last scraped. */
  readonly sentSinceScrape: number;
  /** Fresh scraped metrics for this model, or `undefined` when none are fresh. */
  readonly metrics: ServerMetrics | undefined;
}

/** Facts about the request being routed; affinity strategies may use them. */
export interface RequestFacts {
  /** The model name the client asked for. */
  readonly model: string;
  /** The endpoint path, e.g. `/v1/chat/completions`. */
  readonly path: string;
  /** The client's request headers. */
  readonly headers: Headers;
  /** The parsed JSON body (read-only: changes are not forwarded). */
  readonly body: Readonly<Record<string, unknown>>;
  /** The prompt text (messages' contents joined, or `prompt`/`input`), computed on first call. */
  prompt(): string;
}

/** How a request ended, for strategies that keep their own bookkeeping. */
export type RequestOutcome = "success" | "error" | "aborted";

/** A load-balancing strategy for one model. */
export interface Strategy {
  /**
   * Chooses a server for a request.
   *
   * @param servers The model's servers that can take traffic now (never empty).
   * @param request Facts about the request.
   * @returns The chosen server, or `undefined` to refuse (the client gets 503).
   */
  pick(servers: readonly ServerView[], request: RequestFacts): ServerView | undefined;
  /** Called when a request starts on the chosen server. */
  onStart?(server: ServerView, request: RequestFacts): void;
  /** Called exactly once when that request ends, on every path. */
  onEnd?(server: ServerView, request: RequestFacts, outcome: RequestOutcome): void;
  /**
   * Called with all of the model's servers (healthy or not) whenever the routing table is built:
   * at start and after every spec change, so a strategy can forget servers that left.
   *
   * @param servers The model's servers in spec order.
   */
  onServers?(servers: readonly ServerView[]): void;
  /**
   * Reports the weight the strategy would give a server now, for metrics and the admin API
   * (optional; strategies without weights leave it out).
   *
   * @param server The server.
   * @param servers All the model's servers that can take traffic.
   * @returns The weight.
   */
  weightOf?(server: ServerView, servers: readonly ServerView[]): number;
}

/** What a strategy factory receives. */
export interface StrategyOptions {
  /** The model the strategy serves. */
  readonly model: string;
  /** Strategy-specific options from the spec (`strategy_options`). */
  readonly options: Readonly<Record<string, unknown>>;
  /** Seconds between metrics scrapes (`metrics_update_interval`). */
  readonly metricsInterval: number;
  /**
   * When the gateway runs several workers: 15 cells every worker's instance of this strategy
   * shares (zero at first), for cursors that must hold across workers; use `Atomics` on them.
   * Picks run under a lock shared by the workers, so a read-then-write of a cell is safe in
   * `pick`. Absent with one worker.
   */
  readonly shared?: Int32Array;
}

/** The default export of a strategy file. */
export type StrategyFactory = (options: StrategyOptions) => Strategy;
