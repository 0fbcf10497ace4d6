/**
 * Forwards one request to one server and streams the answer back as it arrives.
 *
 * The body is passed through chunk by chunk with no read-ahead; a client disconnect aborts the
 * upstream request; `onEnd` runs exactly once on every path (success, upstream error, timeout,
 * client abort), which is what releases in-flight counters.
 *
 * @module
 */
import type { ForwardTimeouts } from "../fleet/routes.ts";
import type { RequestOutcome } from "../strategies/types.ts";
import { HttpError } from "../common/errors.ts";
import type { TokenUsage } from "../plugins/types.ts";
import { clientResponseHeaders, headerValue } from "./headers.ts";
import { ConnectError, type Http1Pool, type UpstreamResponse } from "../upstream/http1_pool.ts";
import { UsageTap } from "./usage_tap.ts";
import { watchdog } from "./watchdog.ts";

/** How a forwarded request ended. */
export interface ForwardResult {
  /** `success`, `error` (upstream failed or answered 5xx) or `aborted` (the client left). */
  outcome: RequestOutcome;
  /** The upstream status, when one arrived. */
  status?: number;
  /** Milliseconds until the upstream's response headers, when they arrived. */
  firstByteMs?: number;
  /** Milliseconds until the first body chunk, when one arrived. */
  firstChunkMs?: number;
  /** Token usage read from the body, when asked for and reported. */
  usage?: TokenUsage;
}

/** What {@link forward} needs. */
export interface ForwardOptions {
  /** The client's request (its signal tells of a disconnect). */
  request: Request;
  /** The server's base URL (for messages). */
  serverUrl: string;
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
 * Milliseconds before a request starts listening for its client's disconnect. Reading
 * `request.signal` costs `Deno.serve` a cancel watch per request (about a tenth of a small
 * request's CPU), and most answers come sooner; a disconnect before that is seen on first access.
 * Streams also learn of a disconnect from their body's `cancel()`.
 */
export const CLIENT_WATCH_AFTER_MS = 50;

/** Why the gateway aborted an upstream request itself. */
type Expiry = "first_byte" | "idle" | "total";

/**
 * Sends the request upstream and returns the client's response, whose body streams through.
 *
 * @param options The request, the server, timeouts and the end callback.
 * @returns The response for the client.
 * @throws HttpError 502 when the server cannot be reached, 504 on a first-byte timeout, 499 when
 *   the client left first.
 */
export async function forward(options: ForwardOptions): Promise<Response> {
  const { request, serverUrl, timeouts } = options;
  const started = performance.now();
  let expired: Expiry | undefined;
  let clientGone = false;
  let ended = false;
  let headersAt = 0;
  let lastChunkAt = 0;
  let buffering = false;
  const result: ForwardResult = { outcome: "success" };
  const call = options.pool.send({
    method: "POST",
    path: options.path,
    headers: options.headers,
    body: options.body,
  }, { connectTimeoutMs: timeouts.connectMs });

  let listening = false;
  const watched = {
    check(now: number): void {
      if (expired !== undefined || ended) return;
      if (!listening && now - started >= CLIENT_WATCH_AFTER_MS) listenForDisconnect();
      if (headersAt === 0) {
        if (now - started > timeouts.firstByteMs) expired = "first_byte";
      } else if (!buffering && now - lastChunkAt > timeouts.idleMs) expired = "idle";
      if (expired === undefined && now - started > timeouts.totalMs) expired = "total";
      if (expired !== undefined) call.abort();
    },
  };
  function onClientAbort(): void {
    clientGone = true;
    call.abort();
  }
  function listenForDisconnect(): void {
    listening = true;
    const signal = request.signal;
    if (signal.aborted) onClientAbort();
    else signal.addEventListener("abort", onClientAbort, { once: true });
  }
  let tap: UsageTap | undefined;
  function end(outcome: RequestOutcome): void {
    if (ended) return;
    ended = true;
    const usage = tap?.finish();
    if (usage) result.usage = usage;
    watchdog.delete(watched);
    if (listening) request.signal.removeEventListener("abort", onClientAbort);
    result.outcome = outcome;
    options.onEnd(result);
  }
  /** The error for a failure, after ending the request. */
  function failed(error: unknown, what: "head" | "body"): HttpError {
    if (clientGone) {
      end("aborted");
      return new HttpError(499, "invalid_request_error", "The client closed the request", {
        cause: error,
      });
    }
    end("error");
    if (expired !== undefined) {
      const limit = expired === "total" ? timeouts.totalMs : timeouts.firstByteMs;
      return new HttpError(
        504,
        "timeout_error",
        what === "head"
          ? `Server "${serverUrl}" sent no response within ${limit / 1000} s`
          : `Server "${serverUrl}" did not finish its answer within ${timeouts.totalMs / 1000} s`,
        { code: "upstream_timeout", cause: error },
      );
    }
    if (error instanceof ConnectError) {
      return new HttpError(502, "server_error", `Server "${serverUrl}" ${error.message}`, {
        code: "upstream_unreachable",
        cause: error,
      });
    }
    return new HttpError(
      502,
      "server_error",
      what === "head"
        ? `The gateway failed to reach server "${serverUrl}": ${errorText(error)}`
        : `Server "${serverUrl}" failed while sending its answer: ${errorText(error)}`,
      { code: what === "head" ? "upstream_unreachable" : "upstream_body_error", cause: error },
    );
  }

  watchdog.add(watched);

  let upstream: UpstreamResponse;
  try {
    upstream = await call.response;
  } catch (error) {
    throw failed(error, "head");
  }
  headersAt = lastChunkAt = performance.now();
  result.status = upstream.status;
  result.firstByteMs = headersAt - started;
  const okOutcome: RequestOutcome = upstream.status >= 500 ? "error" : "success";
  const headers = clientResponseHeaders(upstream.headers, options.responseHeaders);
  if (!upstream.body) {
    end(okOutcome);
    return new Response(null, { status: upstream.status, headers });
  }

  const isSse = headerValue(upstream.headers, "content-type").includes("text/event-stream");
  const body = upstream.body;
  if (!isSse) {
    // A JSON answer is read whole and sent as one buffer: Deno then writes it natively, which
    // is about twice as fast as passing each chunk through JavaScript. SSE streams chunk by chunk.
    buffering = true;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = await body.bytes();
    } catch (error) {
      throw failed(error, "body");
    }
    result.firstChunkMs = performance.now() - started;
    if (options.readUsage) {
      tap = new UsageTap(false);
      tap.chunk(bytes);
    }
    end(okOutcome);
    return new Response(bytes, { status: upstream.status, headers });
  }
  if (options.readUsage) tap = new UsageTap(true);
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = await body.read();
        if (chunk === undefined) {
          controller.close();
          end(okOutcome);
        } else {
          lastChunkAt = performance.now();
          result.firstChunkMs ??= lastChunkAt - started;
          tap?.chunk(chunk);
          controller.enqueue(chunk);
        }
      } catch (error) {
        if (clientGone) {
          end("aborted");
          controller.error(error);
          return;
        }
        end("error");
        // A stream that fails midway ends with an OpenAI-shaped error event, so no client hangs.
        controller.enqueue(encoder.encode(streamErrorEvent(serverUrl, expired, timeouts, error)));
        controller.close();
      }
    },
    cancel() {
      clientGone = true;
      body.cancel();
      end(okOutcome === "error" ? "error" : "aborted");
    },
  }, { highWaterMark: 0 });
  return new Response(stream, { status: upstream.status, headers });
}

/** The SSE event that ends a stream the server broke or the gateway timed out. */
function streamErrorEvent(
  serverUrl: string,
  expired: Expiry | undefined,
  timeouts: ForwardTimeouts,
  error: unknown,
): string {
  const message = expired === "idle"
    ? `Server "${serverUrl}" sent nothing for ${timeouts.idleMs / 1000} s mid-stream`
    : expired === "total"
    ? `Server "${serverUrl}" did not finish within ${timeouts.totalMs / 1000} s`
    : `Server "${serverUrl}" failed mid-stream: ${errorText(error)}`;
  const code = expired === undefined ? "upstream_stream_error" : `upstream_${expired}_timeout`;
  const event = {
    error: { message, type: expired ? "timeout_error" : "server_error", param: null, code },
  };
  return `data: ${JSON.stringify(event)}\n\n`;
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
    return `${error.message.split("\n")[0]}${cause}`;
  }
  return String(error);
}
