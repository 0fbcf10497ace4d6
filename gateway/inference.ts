/**
 * Handles one inference request (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`):
 * read the body once, run the plugins' `onRequest`, then try servers until one answers. A failure
 * before any byte reached the client (connection refused or reset, a retryable status, a
 * first-byte timeout) is retried on a different server, then on the model's fallbacks. The
 * plugins' `onResponse` runs once when the request has ended.
 *
 * @module
 */
import type { PluginOutcome, PluginRequest } from "../plugins/types.ts";
import { InferenceRequest } from "./plugin_request.ts";
import { HttpError } from "../common/errors.ts";
import type { Gateway } from "./gateway.ts";
import { type HeaderPair, UpstreamHeaders } from "./headers.ts";
import type { Endpoint } from "../fleet/pool.ts";
import { forward, type ForwardResult } from "./proxy.ts";
import { type ParsedBody, readInferenceBody, requestFacts } from "./request.ts";
import type { ModelRoute } from "../fleet/routes.ts";
import { acquireServer } from "../fleet/selection.ts";
import type { ServerLease } from "../fleet/lease.ts";

const encoder = new TextEncoder();

/** What {@link handleInference} needs besides the gateway. */
export interface InferenceOptions {
  /** The client's request. */
  request: Request;
  /** The endpoint path. */
  path: string;
  /** The request id. */
  requestId: string;
}

/** Per-request bookkeeping shared by attempts and the outcome report. */
interface Trace {
  readonly started: number;
  parsedAt: number;
  upstreamMs: number;
  attempts: number;
  model: string | undefined;
  server: string | null;
  retried: string[];
}

/**
 * Routes and forwards one inference request, retrying and falling back as the spec says.
 *
 * @param gateway The running gateway.
 * @param options The request, its path and id.
 * @returns The response streaming from the server that answered, or a plugin's answer.
 * @throws HttpError for bad input (400, 404, 413), no server (503) and upstream failures.
 */
export async function handleInference(
  gateway: Gateway,
  options: InferenceOptions,
): Promise<Response> {
  const { request } = options;
  const spec = gateway.spec;
  const plugins = gateway.plugins;
  const trace: Trace = {
    started: performance.now(),
    parsedAt: 0,
    upstreamMs: 0,
    attempts: 0,
    model: undefined,
    server: null,
    retried: [],
  };
  const upstreamHeaders = new UpstreamHeaders(request.headers, options.requestId);
  let pluginRequest: InferenceRequest | undefined;
  try {
    const headerLimit = spec.limits.max_header_bytes;
    if (upstreamHeaders.clientBytes > headerLimit) {
      throw new HttpError(
        431,
        "invalid_request_error",
        `The request headers are larger than the limit of ${headerLimit} bytes ` +
          `(${upstreamHeaders.clientBytes} bytes)`,
        { code: "headers_too_large" },
      );
    }
    const parsed = await readInferenceBody(request, {
      maxBytes: spec.limits.max_body_bytes,
      timeoutMs: spec.limits.body_timeout * 1000,
    });
    trace.parsedAt = performance.now();
    const primary = gateway.routes.get(parsed.model);
    pluginRequest = new InferenceRequest({
      ...options,
      parsed,
      known: primary !== undefined,
      started: trace.started,
      upstreamHeaders,
    });
    const early = plugins.hasOnRequest ? await plugins.onRequest(pluginRequest) : undefined;
    if (early) {
      for (const [name, value] of pluginRequest.addedResponseHeaders()) {
        early.headers.set(name, value);
      }
      early.headers.set("x-request-id", options.requestId);
      report(gateway, pluginRequest, trace, { status: early.status, outcome: "error" });
      return early;
    }
    if (!primary) {
      const available = [...gateway.routes.keys()].map((name) => `"${name}"`).join(", ");
      throw new HttpError(
        404,
        "not_found_error",
        `Unknown model "${parsed.model}": available models are ${available || "(none)"}`,
        { param: "model", code: "model_not_found" },
      );
    }
    return await route(gateway, {
      primary,
      parsed,
      pluginRequest,
      upstreamHeaders,
      trace,
      options,
    });
  } catch (error) {
    pluginRequest ??= new InferenceRequest({
      ...options,
      known: false,
      started: trace.started,
      upstreamHeaders,
    });
    const status = error instanceof HttpError ? error.status : 500;
    if (error instanceof HttpError) {
      error.headers["x-llmstream-attempts"] = String(trace.attempts);
      for (const [name, value] of pluginRequest.addedResponseHeaders()) error.headers[name] = value;
    }
    report(gateway, pluginRequest, trace, {
      status,
      outcome: status === 499 ? "aborted" : "error",
      errorCode: error instanceof HttpError ? error.code ?? undefined : "internal_error",
    });
    throw error;
  }
}

/** What {@link route} needs. */
interface RouteOptions {
  primary: ModelRoute;
  parsed: ParsedBody;
  pluginRequest: InferenceRequest;
  upstreamHeaders: UpstreamHeaders;
  trace: Trace;
  options: InferenceOptions;
}

/** Tries the model's servers, then its fallbacks'; returns the answer to deliver. */
async function route(gateway: Gateway, routing: RouteOptions): Promise<Response> {
  const { primary, parsed, pluginRequest, upstreamHeaders, trace, options } = routing;
  const spec = gateway.spec;
  const retries = spec.retries;
  const facts = requestFacts(parsed, { path: options.path, headers: options.request.headers });
  const deadline = Date.now() + retries.deadline * 1000;
  const chain = [primary, ...primary.fallbacks.flatMap((name) => gateway.routes.get(name) ?? [])];
  const json = spec.usage.add_stream_usage && parsed.json["stream"] === true
    ? withStreamUsage(parsed.json)
    : parsed.json;
  let failure: Attempted | undefined;
  try {
    for (const model of chain) {
      trace.model = model.name;
      const body = model === primary && model.upstreamModel === undefined && json === parsed.json
        ? parsed.bytes
        : encoder.encode(JSON.stringify({ ...json, model: model.upstreamModel ?? model.name }));
      const tried = new Set<Endpoint>();
      while (tried.size < retries.max_attempts) {
        if (failure) {
          const backoff = retries.backoff * 1000 * 2 ** (trace.attempts - 1) * Math.random();
          if (Date.now() + backoff > deadline) break;
          await new Promise((resolve) => setTimeout(resolve, backoff));
        }
        const acquired = acquireServer(model, {
          facts,
          tried,
          spec,
          signal: () => options.request.signal,
        });
        // The lease's one owner: released when this block is left, unless the answer's stream
        // adopted it (then the stream releases it).
        using lease = acquired instanceof Promise ? await acquired : acquired;
        if (!lease) break;
        tried.add(lease.endpoint);
        trace.attempts++;
        trace.server = lease.endpoint.url;
        const outcome = await attempt(gateway, {
          route: model,
          lease,
          body,
          pluginRequest,
          upstreamHeaders,
          trace,
          fellBack: model !== primary,
        });
        if (!retryable(outcome, retries.on_status)) {
          // A held answer from an earlier server is replaced: release it.
          if (failure) await failure.response?.body?.cancel();
          failure = undefined;
          return outcome.deliver();
        }
        trace.retried.push(`${lease.endpoint.url}: ${reasonOf(outcome)}`);
        if (failure) await failure.response?.body?.cancel();
        failure = outcome;
      }
      if (Date.now() > deadline) break;
    }
    if (failure) {
      const last = failure;
      failure = undefined;
      return last.deliver();
    }
  } finally {
    // A held answer nobody will deliver (an exception on the way) gives its lease back.
    if (failure) await failure.response?.body?.cancel();
  }
  throw new HttpError(
    503,
    "service_unavailable_error",
    `Model "${primary.name}" has no server to take the request` +
      (chain.length > 1 ? ` and neither have its fallbacks ${primary.fallbacks.join(", ")}` : ""),
    { code: "no_server_available", headers: { "retry-after": "1" } },
  );
}

/** What one attempt needs. */
interface AttemptOptions {
  route: ModelRoute;
  lease: ServerLease;
  body: Uint8Array<ArrayBuffer>;
  pluginRequest: InferenceRequest;
  upstreamHeaders: UpstreamHeaders;
  trace: Trace;
  fellBack: boolean;
}

/** How an attempt ended: the server's answer, or an error. */
interface Attempted {
  /** The server's answer, when one came (its body not yet read). */
  response?: Response;
  /** The error, when no answer came. */
  error?: unknown;
  /** Hands the answer to the client (adds the gateway's headers), or throws the error. */
  deliver(): Response;
}

/** Sends one attempt to the server the caller leased. */
async function attempt(gateway: Gateway, attempt: AttemptOptions): Promise<Attempted> {
  const { route, lease, body, pluginRequest, trace } = attempt;
  const endpoint = lease.endpoint;
  const server = endpoint.server;
  let delivered = false;
  let ended: ForwardResult | undefined;
  let deliveredAt = 0;
  const reportEnd = (result: ForwardResult): void => {
    report(gateway, pluginRequest, trace, {
      status: result.status ?? 502,
      outcome: result.outcome,
      ttftMs: result.firstChunkMs === undefined
        ? undefined
        : sentAt + result.firstChunkMs - trace.started,
      usage: result.usage,
      // The gateway's own time: from the body read to the answer handed over, less the time
      // spent waiting on servers (every try's).
      overheadMs: deliveredAt - trace.parsedAt - trace.upstreamMs,
    });
  };
  const onEnd = (result: ForwardResult): void => {
    // A buffered answer ends before it is delivered; it is reported on delivery.
    if (delivered) reportEnd(result);
    else ended = result;
  };
  const sentAt = performance.now();
  // The gateway's own headers, set on the answer whichever way it is delivered.
  const own: HeaderPair[] = [
    ["x-request-id", pluginRequest.requestId],
    ["x-llmstream-server", endpoint.url],
    ["x-llmstream-attempts", String(trace.attempts)],
  ];
  if (attempt.fellBack) own.push(["x-llmstream-model", route.name]);
  own.push(...pluginRequest.addedResponseHeaders());
  try {
    const response = await forward({
      request: pluginRequest.request,
      lease,
      pool: server.connections,
      path: pluginRequest.path,
      body,
      headers: attempt.upstreamHeaders.pairs(
        server.apiKey === undefined ? undefined : `Bearer ${server.apiKey}`,
      ),
      responseHeaders: own,
      readUsage: gateway.plugins.wantsUsage,
      timeouts: route.timeouts,
      onEnd,
    });
    trace.upstreamMs += performance.now() - sentAt;
    return {
      response,
      deliver(): Response {
        delivered = true;
        deliveredAt = performance.now();
        if (ended) reportEnd(ended);
        return response;
      },
    };
  } catch (error) {
    trace.upstreamMs += performance.now() - sentAt;
    return {
      error,
      deliver(): Response {
        throw error;
      },
    };
  }
}

function retryable(outcome: Attempted, onStatus: readonly number[]): boolean {
  if (outcome.response) return onStatus.includes(outcome.response.status);
  const error = outcome.error;
  return error instanceof HttpError &&
    (error.code === "upstream_unreachable" || error.code === "upstream_timeout");
}

function reasonOf(outcome: Attempted): string {
  if (outcome.response) return `HTTP ${outcome.response.status}`;
  const error = outcome.error;
  return error instanceof HttpError ? error.code ?? error.message : String(error);
}

/** A copy of the body asking the server for a final usage chunk in the stream. */
function withStreamUsage(json: Record<string, unknown>): Record<string, unknown> {
  const options = json["stream_options"];
  const current = options !== null && typeof options === "object" ? options : {};
  return { ...json, stream_options: { ...current, include_usage: true } };
}

/** The parts of an outcome that differ between paths. */
type OutcomeFields = Pick<PluginOutcome, "status" | "outcome"> & Partial<PluginOutcome>;

function report(
  gateway: Gateway,
  request: PluginRequest,
  trace: Trace,
  fields: OutcomeFields,
): void {
  const durationMs = performance.now() - trace.started;
  gateway.plugins.onResponse(request, {
    model: trace.model,
    server: trace.server,
    attempts: trace.attempts,
    ttftMs: undefined,
    durationMs,
    overheadMs: trace.parsedAt === 0 ? durationMs : Math.max(0, durationMs - trace.upstreamMs),
    usage: undefined,
    errorCode: undefined,
    retried: trace.retried,
    ...fields,
  });
}
