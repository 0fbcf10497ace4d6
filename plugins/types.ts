/**
 * The plugin contract. A plugin file exports a default factory `create(options)` returning a
 * {@link Plugin}; the spec enables plugins in a list, and they run in that order.
 *
 * - `onRequest` runs for every inference request after its body is read and before a server is
 *   picked. Returning a `Response` answers the request at once (e.g. 401, 429).
 * - `onResponse` runs exactly once when the request has ended (stream included), with its status,
 *   timings, the server that answered and the token usage.
 * - `routes` may serve extra paths (e.g. `GET /metrics`).
 *
 * @example A plugin that refuses requests without an `x-team` header
 * ```ts
 * import type { Plugin, PluginOptions } from "./types.ts";
 *
 * export default function create(_options: PluginOptions): Plugin {
 *   return {
 *     onRequest(request) {
 *       if (request.request.headers.has("x-team")) return undefined;
 *       return Response.json({ error: { message: "Missing x-team", type: "invalid_request_error",
 *         param: null, code: "missing_team" } }, { status: 400 });
 *     },
 *   };
 * }
 * ```
 *
 * @module
 */

/** What an extra route handler receives. */
export interface RouteContext {
  /** The client's request. */
  readonly request: Request;
  /** The path, without query and trailing slash. */
  readonly path: string;
  /** The request id (from the client or generated). */
  readonly requestId: string;
  /** The client's address, when the request came over the network. */
  readonly remoteAddr?: Deno.NetAddr | undefined;
}

/**
 * An extra set of routes (e.g. `GET /metrics`): answers the paths it owns and returns `undefined`
 * for the rest, directly or through a promise (returning `undefined` directly for paths it does
 * not own spares every other request a promise). It may throw `HttpError` (`common/errors.ts`); the gateway
 * renders it.
 */
export type RouteHandler = (
  context: RouteContext,
) => Promise<Response | undefined> | Response | undefined;

/** Token counts from a response's `usage`. */
export interface TokenUsage {
  /** Prompt tokens. */
  readonly prompt_tokens: number;
  /** Generated tokens (0 for embeddings). */
  readonly completion_tokens: number;
  /** Their sum. */
  readonly total_tokens: number;
}

/** One inference request as plugins see it. */
export interface PluginRequest {
  /** The request id (from the client or generated). */
  readonly requestId: string;
  /** The client's request (read its headers; the body is already read). */
  readonly request: Request;
  /** The endpoint path, e.g. `/v1/chat/completions`. */
  readonly path: string;
  /** The body's `model`. */
  readonly model: string;
  /** Whether `model` is a configured model. */
  readonly known: boolean;
  /** The parsed body (read-only). */
  readonly body: Readonly<Record<string, unknown>>;
  /** Headers sent upstream; plugins may set or delete them. */
  readonly upstreamHeaders: Headers;
  /** Headers added to the client's response, whatever it is. */
  readonly responseHeaders: Headers;
  /**
   * Removes a header from those sent upstream (cheaper than `upstreamHeaders.delete`: the
   * `Headers` object is not made).
   *
   * @param name A lower-case name.
   */
  deleteUpstreamHeader(name: string): void;
  /**
   * Sets a header on the client's response (cheaper than `responseHeaders.set`).
   *
   * @param name A lower-case name.
   * @param value The value.
   */
  setResponseHeader(name: string, value: string): void;
  /** Per-request values plugins share (e.g. the caller's key id). */
  readonly state: Map<string, unknown>;
  /** When the request arrived (`performance.now()`). */
  readonly started: number;
}

/** How a request ended, for `onResponse`. */
export interface PluginOutcome {
  /** The status the client got. */
  readonly status: number;
  /**
   * `success`, `error` (server or gateway failure), `aborted` (the client left) or `client_slow`
   * (the client stopped reading longer than `timeouts.client_idle` and was cut; never counted
   * against the server).
   */
  readonly outcome: "success" | "error" | "aborted" | "client_slow";
  /** The configured model that answered (a fallback's name if one did), when any did. */
  readonly model: string | undefined;
  /** The server that answered, or `null`. */
  readonly server: string | null;
  /** Tries made (0 when the gateway answered by itself). */
  readonly attempts: number;
  /** Milliseconds until the first byte of the answer's body, when one came. */
  readonly ttftMs: number | undefined;
  /** Milliseconds from arrival to the end of the answer. */
  readonly durationMs: number;
  /** Milliseconds spent in the gateway itself: `durationMs` minus time waiting on servers. */
  readonly overheadMs: number;
  /** Token usage from the answer, when the server reported it. */
  readonly usage: TokenUsage | undefined;
  /** The gateway's error code, when the gateway answered with an error. */
  readonly errorCode: string | undefined;
  /** Why each failed try failed, e.g. `http://a:8000: upstream_unreachable`. */
  readonly retried: readonly string[];
}

/** A plugin instance. */
export interface Plugin {
  /**
   * Runs before a server is picked; a returned response answers the request.
   *
   * @param request The request.
   * @returns A response to answer with, or `undefined` to go on.
   */
  onRequest?(request: PluginRequest): Response | undefined | Promise<Response | undefined>;
  /**
   * Runs once when the request has ended; must not throw or block.
   *
   * @param request The request.
   * @param outcome How it ended.
   */
  onResponse?(request: PluginRequest, outcome: PluginOutcome): void;
  /** Extra routes (tried before the gateway's own). */
  routes?: RouteHandler;
  /**
   * Set when the plugin needs token usage: the gateway then reads it from answers. Read per
   * request, so a getter may turn it on and off.
   */
  readonly wantsUsage?: boolean;
  /** Releases resources (connections, timers) when the plugin is replaced or the gateway stops. */
  close?(): void | Promise<void>;
}

/** One server of the fleet as a plugin sees it, read at the moment it is asked for. */
export interface FleetServer {
  /** The server's base URL. */
  readonly url: string;
  /** Requests the gateway has in flight on it. */
  readonly inFlight: number;
  /** Requests waiting for one of its slots (`max_concurrent` reached). */
  readonly queued: number;
  /** Whether it passes active health checks. */
  readonly healthy: boolean;
  /** Its circuit breaker's state. */
  readonly breakerState: "closed" | "open" | "half_open";
  /** Times its breaker ejected it. */
  readonly ejections: number;
  /** Failed scrapes of its `/metrics`. */
  readonly scrapeErrors: number;
  /** When its metrics were last scraped, in milliseconds since the epoch (0: never). */
  readonly metricsAt: number;
  /** Whether its scraped metrics are missing or too old to count. */
  readonly metricsStale: boolean;
}

/** One model's route as a plugin sees it. */
export interface FleetRoute {
  /** The model name clients send. */
  readonly model: string;
  /**
   * Its servers in spec order, each with its weight now: the strategy's live weight where it
   * reports one, else the spec's; 0 while the server cannot take traffic.
   */
  readonly servers: readonly { readonly url: string; readonly weight: number }[];
}

/**
 * What a plugin shares with its twins in the gateway's other workers, when several run (`workers`
 * in the spec, `--workers`): memory every worker sees, and answers gathered from every worker.
 */
export interface WorkerPeers {
  /** How many workers serve. */
  readonly count: number;
  /**
   * A buffer every worker sees, made by the control plane before the workers start.
   *
   * @param name `rate_limit` (the rate limiter's counters).
   * @returns The buffer, or `undefined` for an unknown name.
   */
  sharedMemory(name: string): SharedArrayBuffer | undefined;
  /**
   * Registers this worker's answer to {@link WorkerPeers.gather} of a topic (the last one wins).
   *
   * @param topic A name, e.g. `metrics.requests`.
   * @param answer Returns a structured-cloneable value.
   * @returns A function that unregisters it.
   */
  serve(topic: string, answer: () => unknown): () => void;
  /**
   * Asks every worker, this one included, for its answer to a topic.
   *
   * @param topic The topic.
   * @returns The answers of the workers that serve it.
   */
  gather(topic: string): Promise<unknown[]>;
}

/**
 * What a plugin may read of the running gateway: the fleet's servers and routes, read fresh on
 * each call, and config changes. Nothing here changes the gateway.
 */
export interface PluginContext {
  /** The gateway's other workers, when several serve (absent with one). */
  readonly workers?: WorkerPeers;
  /** Scrape intervals after which a server's metrics are stale. */
  readonly staleIntervals: number;
  /**
   * Whether the gateway asks servers for usage on every stream (the spec's
   * `usage.add_stream_usage`), read now.
   */
  addsStreamUsage(): boolean;
  /** Every configured server, once each. */
  servers(): FleetServer[];
  /** Every model's route. */
  routes(): FleetRoute[];
  /** The configured model names. */
  models(): string[];
  /**
   * Whether a URL is a configured server.
   *
   * @param url A base URL.
   */
  hasServer(url: string): boolean;
  /**
   * Registers a function called after each new spec is put in force.
   *
   * @param listener Called after the change.
   * @returns A function that unregisters it.
   */
  onSpecChange(listener: () => void): () => void;
}

/** What a plugin factory receives. */
export interface PluginOptions {
  /** The plugin's name in the spec. */
  readonly name: string;
  /** The plugin's `options` from the spec (`${VAR}` already substituted). */
  readonly options: Readonly<Record<string, unknown>>;
  /** What the plugin may read of the running gateway. */
  readonly context: PluginContext;
}

/** The default export of a plugin file. */
export type PluginFactory = (options: PluginOptions) => Plugin | Promise<Plugin>;
