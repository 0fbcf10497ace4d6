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
import type { Gateway } from "../gateway/gateway.ts";
import type { RouteHandler } from "../gateway/server.ts";

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
  /** Per-request values plugins share (e.g. the caller's key id). */
  readonly state: Map<string, unknown>;
  /** When the request arrived (`performance.now()`). */
  readonly started: number;
}

/** How a request ended, for `onResponse`. */
export interface PluginOutcome {
  /** The status the client got. */
  readonly status: number;
  /** `success`, `error` (server or gateway failure) or `aborted` (the client left). */
  readonly outcome: "success" | "error" | "aborted";
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

/** What a plugin factory receives. */
export interface PluginOptions {
  /** The plugin's name in the spec. */
  readonly name: string;
  /** The plugin's `options` from the spec (`${VAR}` already substituted). */
  readonly options: Readonly<Record<string, unknown>>;
  /** The running gateway, for plugins that report on it (read only). */
  readonly gateway: Gateway;
}

/** The default export of a plugin file. */
export type PluginFactory = (options: PluginOptions) => Plugin | Promise<Plugin>;
