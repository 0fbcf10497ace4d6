/**
 * Handles one inference request (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`):
 * read the body once, find the model, let its strategy pick a server, forward, and log one line
 * when the request ends.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { HttpError } from "./errors.ts";
import type { Gateway } from "./gateway.ts";
import { Endpoint } from "./pool.ts";
import { forward, type ForwardResult } from "./proxy.ts";
import { readInferenceBody, requestFacts } from "./request.ts";

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

/**
 * Routes and forwards one inference request.
 *
 * @param gateway The running gateway.
 * @param options The request, its path and id.
 * @returns The response streaming from the chosen server.
 * @throws HttpError for bad input (400, 404, 413), no server (503) and upstream failures.
 */
export async function handleInference(
  gateway: Gateway,
  options: InferenceOptions,
): Promise<Response> {
  const { request, path, requestId } = options;
  const started = performance.now();
  const spec = gateway.spec;
  const parsed = await readInferenceBody(request, { maxBytes: spec.limits.max_body_bytes });
  const route = gateway.routes.get(parsed.model);
  if (!route) {
    const available = [...gateway.routes.keys()].map((name) => `"${name}"`).join(", ");
    throw new HttpError(
      404,
      "not_found_error",
      `Unknown model "${parsed.model}": available models are ${available || "(none)"}`,
      { param: "model", code: "model_not_found" },
    );
  }
  if (route.endpoints.length === 0) {
    throw new HttpError(
      503,
      "service_unavailable_error",
      `Model "${route.name}" has no server to take the request`,
      { code: "no_server_available" },
    );
  }
  const facts = requestFacts(parsed, { path, headers: request.headers });
  const picked = route.strategy.pick(route.endpoints, facts);
  if (!picked) {
    throw new HttpError(
      503,
      "service_unavailable_error",
      `Strategy "${route.strategyRef}" found no server for model "${route.name}"`,
      { code: "no_server_available" },
    );
  }
  if (!(picked instanceof Endpoint) || route.endpoints[picked.index] !== picked) {
    throw new Error(`Strategy "${route.strategyRef}" returned a server that is not in its list`);
  }
  const endpoint = picked;
  const body = route.upstreamModel === undefined
    ? parsed.bytes
    : encoder.encode(JSON.stringify({ ...parsed.json, model: route.upstreamModel }));

  endpoint.server.begin();
  route.strategy.onStart?.(endpoint, facts);
  const onEnd = (result: ForwardResult): void => {
    endpoint.server.end();
    route.strategy.onEnd?.(endpoint, facts, result.outcome);
    logger.info(
      "{method} {path} model={model} server={server} status={status} outcome={outcome} " +
        "first_byte_ms={firstByteMs} duration_ms={durationMs} id={requestId}",
      {
        method: request.method,
        path,
        model: route.name,
        server: endpoint.url,
        status: result.status ?? null,
        outcome: result.outcome,
        firstByteMs: round(result.firstByteMs),
        durationMs: round(performance.now() - started),
        requestId,
      },
    );
  };
  return await forward({
    request,
    serverUrl: endpoint.url,
    path,
    body,
    requestId,
    firstByteTimeoutMs: spec.limits.first_byte_timeout * 1000,
    onEnd,
  });
}

function round(ms: number | undefined): number | null {
  return ms === undefined ? null : Math.round(ms * 10) / 10;
}
