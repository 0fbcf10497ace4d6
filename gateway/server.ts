/**
 * The gateway's HTTP front: `Deno.serve`, path dispatch, request ids, and the one place where
 * errors become OpenAI-shaped responses.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { errorResponse, HttpError } from "../common/errors.ts";
import type { Gateway } from "./gateway.ts";
import { handleInference } from "./inference.ts";
import type { RouteContext, RouteHandler } from "../plugins/types.ts";

const logger = getLogger(["llmstream", "server"]);

/** Paths routed to a server by the body's `model`. */
export const INFERENCE_PATHS: ReadonlySet<string> = new Set([
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
]);

/** Known paths and the methods they take. */
const METHODS = new Map<string, string>([
  ...[...INFERENCE_PATHS].map((path) => [path, "POST"] as [string, string]),
  ["/v1/models", "GET"],
  ["/health", "GET"],
  ["/ready", "GET"],
]);

export type { RouteContext, RouteHandler };

/** Options for {@link handleRequest}. */
export interface HandleOptions {
  /** Extra routes tried, in order, before the built-in ones. */
  routes?: readonly RouteHandler[];
  /** The client's address, passed on to the extra routes. */
  remoteAddr?: Deno.NetAddr;
  /** The connection info `Deno.serve` gives; its address is read only when a route asks. */
  info?: Deno.ServeHandlerInfo<Deno.NetAddr>;
}

/** A route context whose client address is read on demand (`Deno.serve` makes it per access). */
class Context implements RouteContext {
  readonly request: Request;
  readonly path: string;
  readonly requestId: string;
  readonly #options: HandleOptions;

  constructor(request: Request, path: string, requestId: string, options: HandleOptions) {
    this.request = request;
    this.path = path;
    this.requestId = requestId;
    this.#options = options;
  }

  get remoteAddr(): Deno.NetAddr | undefined {
    return this.#options.remoteAddr ?? this.#options.info?.remoteAddr;
  }
}

/**
 * Answers one HTTP request.
 *
 * @param gateway The running gateway.
 * @param request The client's request.
 * @param options Extra routes.
 * @returns The response; never throws.
 */
export async function handleRequest(
  gateway: Gateway,
  request: Request,
  options: HandleOptions = {},
): Promise<Response> {
  const requestId = requestIdOf(request);
  try {
    const path = pathOf(request.url);
    const context = new Context(request, path, requestId, options);
    for (const routes of [options.routes, gateway.plugins.routes]) {
      if (routes === undefined) continue;
      for (const route of routes) {
        const answer = route(context);
        const response = answer instanceof Promise ? await answer : answer;
        if (response) return response;
      }
    }
    const method = METHODS.get(path);
    if (method === undefined) {
      throw new HttpError(404, "not_found_error", `Unknown path "${path}"`, {
        code: "unknown_path",
      });
    }
    if (request.method !== method && !(method === "GET" && request.method === "HEAD")) {
      throw new HttpError(
        405,
        "invalid_request_error",
        `Method "${request.method}" is not allowed on "${path}": use ${method}`,
        { code: "method_not_allowed", headers: { allow: method } },
      );
    }
    if (INFERENCE_PATHS.has(path)) {
      if (gateway.draining) {
        throw new HttpError(503, "service_unavailable_error", "The gateway is shutting down", {
          code: "shutting_down",
          headers: { "retry-after": "1", connection: "close" },
        });
      }
      return await handleInference(gateway, { request, path, requestId });
    }
    if (path === "/v1/models") return json(modelList(gateway), 200, requestId);
    if (path === "/health") {
      const health = json({ status: "ok" }, 200, requestId);
      // With several workers, which one answered (tests and operators pin connections by it).
      if (gateway.workerId !== undefined) {
        health.headers.set("x-llmstream-worker", String(gateway.workerId));
      }
      return health;
    }
    if (gateway.draining) return json({ status: "draining" }, 503, requestId);
    const missing = gateway.modelsWithoutServers();
    return missing.length === 0
      ? json({ status: "ready", models: gateway.routes.size }, 200, requestId)
      : json({ status: "not_ready", models_without_servers: missing }, 503, requestId);
  } catch (error) {
    if (!(error instanceof HttpError)) {
      logger.error("Request {requestId} failed: {error}", { requestId, error });
    }
    return errorResponse(error, { "x-request-id": requestId });
  }
}

/** Options for {@link startGateway}. */
export interface StartOptions extends HandleOptions {
  /** Address to bind (default `127.0.0.1`). */
  hostname?: string;
  /** Port (default 8000; 0 picks a free one). */
  port?: number;
  /** Share the port with other listeners (workers); needs `--unstable-net` (see `deno.json`). */
  reusePort?: boolean;
}

/** A listening gateway. */
export interface RunningGateway {
  /** The base URL, e.g. `http://127.0.0.1:8000`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** The underlying Deno server. */
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  /** Stops listening and waits for open requests. */
  close(): Promise<void>;
}

/**
 * Starts serving a gateway over HTTP.
 *
 * @param gateway The gateway state.
 * @param options Address and port.
 * @returns The running server.
 * @example
 * ```ts
 * const running = startGateway(new Gateway(await loadSpecFile("config.json")), { port: 0 });
 * console.log(running.url);
 * ```
 */
export function startGateway(gateway: Gateway, options: StartOptions = {}): RunningGateway {
  const routes = options.routes ?? [];
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 8000,
    ...(options.reusePort && { reusePort: true }),
    onListen() {},
  }, (request, info) => handleRequest(gateway, request, { routes, info }));
  const host = server.addr.hostname.includes(":")
    ? `[${server.addr.hostname}]`
    : server.addr.hostname;
  return {
    url: `http://${host}:${server.addr.port}`,
    port: server.addr.port,
    server,
    async close() {
      await server.shutdown();
      gateway.pool.closeConnections();
    },
  };
}

function modelList(gateway: Gateway): unknown {
  return {
    object: "list",
    data: [...gateway.routes.keys()].map((id) => ({
      id,
      object: "model",
      created: gateway.startedAt,
      owned_by: "llmstream",
    })),
  };
}

function json(body: unknown, status: number, requestId: string): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "x-request-id": requestId },
  });
}

/** The path of a request URL, without parsing the whole URL. */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  let end = url.length;
  const query = url.indexOf("?", start);
  if (query >= 0) end = query;
  const hash = url.indexOf("#", start);
  if (hash >= 0 && hash < end) end = hash;
  const path = url.slice(start, end);
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
}

/** The client's `x-request-id` when it is sane, else a new UUID. */
function requestIdOf(request: Request): string {
  const given = request.headers.get("x-request-id");
  if (given && given.length <= 128 && /^[\x21-\x7e]+$/.test(given)) return given;
  return crypto.randomUUID();
}
