/**
 * Forwards one request to one server and passes the answer back as it arrives.
 *
 * The answer's head is validated by the upstream client; a JSON answer up to
 * {@link JSON_BUFFER_BYTES} is read whole (Deno writes one buffer natively, about twice as fast
 * as chunk by chunk), anything longer and every SSE stream flows through at the client's pace
 * (the server is read only when the client has taken the previous part), SSE at event
 * boundaries. A client disconnect aborts the upstream request. Everything taken when the server
 * was picked is given back through the attempt's lease, once, on every path.
 *
 * @module
 */
import type { ServerLease } from "../fleet/lease.ts";
import type { ForwardTimeouts } from "../fleet/routes.ts";
import type { Http1Pool, UpstreamResponse } from "../upstream/http1_pool.ts";
import type { UpstreamBody } from "../upstream/http1_connection.ts";
import { HttpError } from "../common/errors.ts";
import { Exchange, type ForwardResult } from "./exchange.ts";
import { clientResponseHeaders, headerValue, isEventStream } from "./headers.ts";
import { SseFramer } from "./sse_framer.ts";
import { type FailureFacts, streamErrorEvent, upstreamError } from "./upstream_errors.ts";
import { UsageTap } from "./usage_tap.ts";

export type { ForwardResult } from "./exchange.ts";

/**
 * Largest JSON (non-SSE) answer read whole before it is passed on; a longer one streams through
 * with back-pressure. The idle timeout covers both.
 */
const JSON_BUFFER_BYTES = 1024 * 1024;

/** What {@link forward} needs. */
export interface ForwardOptions {
  /** The client's request (its signal tells of a disconnect). */
  request: Request;
  /** The lease on the picked server; the answer's stream adopts it, or it is released here. */
  lease: ServerLease;
  /** The server's connection pool. */
  pool: Http1Pool;
  /** The endpoint path, e.g. `/v1/chat/completions`. */
  path: string;
  /** The body to send. */
  body: Uint8Array<ArrayBuffer>;
  /** Header pairs to send upstream (already filtered, with the request id). */
  headers: Iterable<readonly [string, string]>;
  /** Header pairs the gateway adds to the client's response (the request id among them). */
  responseHeaders: Iterable<readonly [string, string]>;
  /** Read token usage from the answer (for plugins). */
  readUsage: boolean;
  /** Timeouts. */
  timeouts: ForwardTimeouts;
  /** Called exactly once when the request ends, on every path. */
  onEnd(result: ForwardResult): void;
}

const encoder = new TextEncoder();

/**
 * Sends the request upstream and returns the client's response, whose body streams through.
 *
 * @param options The request, the lease, timeouts and the end callback.
 * @returns The response for the client.
 * @throws HttpError 502 when the server cannot be reached or answers badly, 504 on a timeout,
 *   499 when the client left first.
 */
export async function forward(options: ForwardOptions): Promise<Response> {
  const { lease, timeouts } = options;
  const exchange = new Exchange(lease, options);
  const call = options.pool.send({
    method: "POST",
    path: options.path,
    headers: options.headers,
    body: options.body,
  }, { connectTimeoutMs: timeouts.connectMs });
  exchange.call = call;

  let upstream: UpstreamResponse;
  try {
    upstream = await call.response;
  } catch (error) {
    throw failed(exchange, error, "head");
  }
  const result = exchange.result;
  const status = upstream.status;
  result.status = status;
  result.firstByteMs = performance.now() - exchange.started;
  const blame = status >= 500;
  const headers = clientResponseHeaders(upstream.headers, options.responseHeaders);
  const body = upstream.body;
  if (!body) {
    const response = new Response(null, { status, headers });
    exchange.end(blame ? "error" : "success", blame);
    return response;
  }
  const sse = isEventStream(headerValue(upstream.headers, "content-type"));
  if (!sse) {
    exchange.reading();
    let bytes: Uint8Array<ArrayBuffer> | undefined;
    try {
      bytes = await body.buffer(JSON_BUFFER_BYTES);
    } catch (error) {
      throw failed(exchange, error, "body");
    }
    if (bytes !== undefined) {
      exchange.firstChunk();
      if (options.readUsage) {
        exchange.tap = new UsageTap(false);
        exchange.tap.chunk(bytes);
      }
      const response = new Response(bytes, { status, headers });
      exchange.end(blame ? "error" : "success", blame);
      return response;
    }
  }
  if (options.readUsage) exchange.tap = new UsageTap(sse);
  exchange.waitingForClient();
  const stream = answerStream(exchange, body, { sse, blame });
  const response = new Response(stream, { status, headers });
  // From here the stream owns the lease: it releases it however it ends.
  lease.adopt();
  return response;
}

/** Ends a request that failed before its answer was passed on, and says why. */
function failed(exchange: Exchange, error: unknown, stage: "head" | "body"): HttpError {
  if (exchange.clientGone) {
    exchange.end("aborted", false);
    return clientClosed(error);
  }
  const facts = factsOf(exchange, stage);
  exchange.end("error", true);
  return upstreamError(error, facts);
}

function factsOf(exchange: Exchange, stage: "head" | "body"): FailureFacts {
  return {
    serverUrl: exchange.lease.endpoint.url,
    expired: exchange.expired,
    timeouts: exchange.timeouts,
    stage,
  };
}

/**
 * The answer's body as a stream read at the client's pace: each pull reads the server once
 * (an SSE stream until an event ends), so at most one read of the server is buffered.
 */
function answerStream(
  exchange: Exchange,
  body: UpstreamBody,
  answer: { sse: boolean; blame: boolean },
): ReadableStream<Uint8Array> {
  const framer = answer.sse ? new SseFramer() : undefined;
  const blame = answer.blame;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      exchange.controller = controller;
    },
    async pull(controller) {
      exchange.reading();
      try {
        for (;;) {
          const chunk = await body.read();
          if (chunk === undefined) {
            framer?.drop();
            controller.close();
            exchange.end(blame ? "error" : "success", blame);
            return;
          }
          const out = framer ? framer.push(chunk) : chunk;
          if (out === undefined) continue;
          pass(exchange, controller, out);
          exchange.waitingForClient();
          return;
        }
      } catch (error) {
        if (exchange.ended) return;
        body.cancel();
        if (exchange.clientGone) {
          exchange.end("aborted", blame);
          controller.error(clientClosed(error));
          return;
        }
        const facts = factsOf(exchange, "body");
        exchange.end("error", true);
        if (!answer.sse) {
          // A JSON body cannot carry an error: the client sees the answer cut short (and Deno
          // logs this error's message).
          controller.error(upstreamError(error, facts));
          return;
        }
        // A stream that fails midway ends with an OpenAI-shaped error event, so no client hangs.
        controller.enqueue(encoder.encode(streamErrorEvent(error, facts)));
        controller.close();
      }
    },
    cancel() {
      exchange.clientGone = true;
      body.cancel();
      exchange.end(blame ? "error" : "aborted", blame);
    },
  }, { highWaterMark: 0 });
}

function pass(
  exchange: Exchange,
  controller: ReadableStreamDefaultController<Uint8Array>,
  bytes: Uint8Array,
): void {
  exchange.firstChunk();
  exchange.tap?.chunk(bytes);
  controller.enqueue(bytes);
}

function clientClosed(error: unknown): HttpError {
  return new HttpError(499, "invalid_request_error", "The client closed the request", {
    cause: error,
  });
}
