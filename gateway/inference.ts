/**
 * Handles one inference request (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`):
 * read the body once, find the model, then try servers until one answers: a failure before any
 * byte reached the client (connection refused or reset, a retryable status, a first-byte timeout)
 * is retried on a different server, then on the model's fallbacks. One log line per request.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { HttpError } from "./errors.ts";
import type { Gateway } from "./gateway.ts";
import type { Endpoint } from "./pool.ts";
import { forward, type ForwardResult, type ForwardTimeouts } from "./proxy.ts";
import { readInferenceBody, requestFacts } from "./request.ts";
import type { ModelRoute } from "./routes.ts";
import type { RequestFacts } from "../strategies/types.ts";
import { acquireServer } from "./selection.ts";

const logger = getLogger(["llmstream", "request"]);
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

/** Per-request bookkeeping shared by attempts and the log line. */
interface Trace {
  readonly started: number;
  attempts: number;
  model: string;
  server: string | null;
  reasons: string[];
}

/**
 * Routes and forwards one inference request, retrying and falling back as the spec says.
 *
 * @param gateway The running gateway.
 * @param options The request, its path and id.
 * @returns The response streaming from the server that answered.
 * @throws HttpError for bad input (400, 404, 413), no server (503) and upstream failures.
 */
export async function handleInference(
  gateway: Gateway,
  options: InferenceOptions,
): Promise<Response> {
  const { request, path, requestId } = options;
  const spec = gateway.spec;
  const trace: Trace = {
    started: performance.now(),
    attempts: 0,
    model: "",
    server: null,
    reasons: [],
  };
  const parsed = await readInferenceBody(request, {
    maxBytes: spec.limits.max_body_bytes,
    timeoutMs: spec.limits.body_timeout * 1000,
  });
  const primary = gateway.routes.get(parsed.model);
  if (!primary) {
    const available = [...gateway.routes.keys()].map((name) => `"${name}"`).join(", ");
    throw new HttpError(
      404,
      "not_found_error",
      `Unknown model "${parsed.model}": available models are ${available || "(none)"}`,
      { param: "model", code: "model_not_found" },
    );
  }
  const facts = requestFacts(parsed, { path, headers: request.headers });
  const retries = spec.retries;
  const deadline = Date.now() + retries.deadline * 1000;
  const chain = [primary, ...primary.fallbacks.flatMap((name) => gateway.routes.get(name) ?? [])];
  let failure: Failed | undefined;
  try {
    for (const route of chain) {
      trace.model = route.name;
      const body = route === primary && route.upstreamModel === undefined
        ? parsed.bytes
        : encoder.encode(
          JSON.stringify({ ...parsed.json, model: route.upstreamModel ?? route.name }),
        );
      const tried = new Set<Endpoint>();
      while (tried.size < retries.max_attempts) {
        if (failure) {
          const backoff = retries.backoff * 1000 * 2 ** (trace.attempts - 1) * Math.random();
          if (Date.now() + backoff > deadline) break;
          await new Promise((resolve) => setTimeout(resolve, backoff));
        }
        const endpoint = await acquireServer(route, { facts, tried, spec, signal: request.signal });
        if (!endpoint) break;
        tried.add(endpoint);
        trace.attempts++;
        trace.server = endpoint.url;
        const fellBack = route !== primary;
        const outcome = await attempt(gateway, {
          route,
          endpoint,
          body,
          options,
          trace,
          facts,
          fellBack,
        });
        if (!retryable(outcome, retries.on_status)) {
          // A held answer from an earlier server is replaced: release it.
          await failure?.response?.body?.cancel();
          return outcome.deliver();
        }
        trace.reasons.push(`${endpoint.url}: ${reasonOf(outcome)}`);
        if (failure?.response) await failure.response.body?.cancel();
        failure = outcome;
      }
      if (Date.now() > deadline) break;
    }
    if (failure?.response) return failure.deliver();
    if (failure) throw failure.error;
    throw new HttpError(
      503,
      "service_unavailable_error",
      `Model "${primary.name}" has no server to take the request` +
        (chain.length > 1 ? ` and neither have its fallbacks ${primary.fallbacks.join(", ")}` : ""),
      { code: "no_server_available", headers: { "retry-after": "1" } },
    );
  } catch (error) {
    if (error instanceof HttpError) error.headers["x-llmstream-attempts"] = String(trace.attempts);
    logOutcome(request, { path, requestId, trace, error });
    throw error;
  }
}

/** What one attempt needs. */
interface AttemptOptions {
  route: ModelRoute;
  endpoint: Endpoint;
  body: Uint8Array<ArrayBuffer>;
  options: InferenceOptions;
  trace: Trace;
  facts: RequestFacts;
  fellBack: boolean;
}

/** How an attempt ended: an answer to deliver, or an error (maybe with the server's answer). */
interface Failed {
  /** The server's answer, when one came (its body not yet read). */
  response?: Response;
  /** The error, when no answer came. */
  error?: unknown;
  /** Hands the answer to the client: adds the gateway's headers and logs when it ends. */
  deliver(): Response;
}

/** Sends one attempt to a server whose slot the caller acquired. */
async function attempt(gateway: Gateway, attempt: AttemptOptions): Promise<Failed> {
  const { route, endpoint, body, options, trace, facts } = attempt;
  const spec = gateway.spec;
  const server = endpoint.server;
  const probe = server.breaker.onSend(Date.now());
  route.strategy.onStart?.(endpoint, facts);
  let final = false;
  const onEnd = (result: ForwardResult): void => {
    server.end();
    route.strategy.onEnd?.(endpoint, facts, result.outcome);
    const failed = result.outcome === "error" || (result.status ?? 0) >= 500;
    const change = server.breaker.record(failed, { probe, now: Date.now() });
    if (change === "ejected") {
      logger.warn("Server {url} ejected after failures; it gets no traffic until {until}", {
        url: server.url,
        until: new Date(server.breaker.openUntil).toISOString(),
      });
    } else if (change === "restored") {
      logger.info("Server {url} passed its probe request and gets traffic again", {
        url: server.url,
      });
    }
    if (final) logOutcome(options.request, { ...options, trace, result });
  };
  try {
    const response = await forward({
      request: options.request,
      serverUrl: endpoint.url,
      path: options.path,
      body,
      requestId: options.requestId,
      timeouts: timeoutsFor(spec, route),
      onEnd,
    });
    return {
      response,
      deliver(): Response {
        final = true;
        response.headers.set("x-llmstream-server", endpoint.url);
        response.headers.set("x-llmstream-attempts", String(trace.attempts));
        if (attempt.fellBack) response.headers.set("x-llmstream-model", route.name);
        return response;
      },
    };
  } catch (error) {
    return {
      error,
      deliver(): Response {
        throw error;
      },
    };
  }
}

function timeoutsFor(spec: Gateway["spec"], route: ModelRoute): ForwardTimeouts {
  const own = spec.models[route.name]?.timeouts ?? {};
  return {
    firstByteMs: (own.first_byte ?? spec.timeouts.first_byte) * 1000,
    idleMs: (own.idle ?? spec.timeouts.idle) * 1000,
    totalMs: (own.total ?? spec.timeouts.total) * 1000,
  };
}

function retryable(outcome: Failed, onStatus: readonly number[]): boolean {
  if (outcome.response) return onStatus.includes(outcome.response.status);
  const error = outcome.error;
  return error instanceof HttpError &&
    (error.code === "upstream_unreachable" || error.code === "upstream_timeout");
}

function reasonOf(outcome: Failed): string {
  if (outcome.response) return `HTTP ${outcome.response.status}`;
  const error = outcome.error;
  return error instanceof HttpError ? error.code ?? error.message : String(error);
}

/** Fields of the one log line a request gets. */
interface LogFields {
  path: string;
  requestId: string;
  trace: Trace;
  result?: ForwardResult;
  error?: unknown;
}

function logOutcome(request: Request, fields: LogFields): void {
  const { trace, result, error } = fields;
  const status = result?.status ?? (error instanceof HttpError ? error.status : 500);
  logger.info(
    "{method} {path} model={model} server={server} status={status} outcome={outcome} " +
      "attempts={attempts} first_byte_ms={firstByteMs} duration_ms={durationMs} id={requestId}",
    {
      method: request.method,
      path: fields.path,
      model: trace.model,
      server: trace.server,
      status,
      outcome: result?.outcome ?? "error",
      attempts: trace.attempts,
      firstByteMs: round(result?.firstByteMs),
      durationMs: round(performance.now() - trace.started),
      requestId: fields.requestId,
      ...(trace.reasons.length > 0 ? { retried: trace.reasons.join("; ") } : {}),
    },
  );
}

function round(ms: number | undefined): number | null {
  return ms === undefined ? null : Math.round(ms * 10) / 10;
}
