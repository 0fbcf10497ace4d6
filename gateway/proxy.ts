/**
 * Forwards one request to one server and streams the answer back as it arrives.
 *
 * The body is passed through chunk by chunk with no read-ahead; a client disconnect aborts the
 * upstream request; `onEnd` runs exactly once on every path (success, upstream error, timeout,
 * client abort), which is what releases in-flight counters.
 *
 * @module
 */
import type { RequestOutcome } from "../strategies/types.ts";
import { HttpError } from "./errors.ts";
import { clientResponseHeaders, upstreamRequestHeaders } from "./headers.ts";

/** How a forwarded request ended. */
export interface ForwardResult {
  /** `success`, `error` (upstream failed or answered 5xx) or `aborted` (the client left). */
  outcome: RequestOutcome;
  /** The upstream status, when one arrived. */
  status?: number;
  /** Milliseconds until the upstream's response headers, when they arrived. */
  firstByteMs?: number;
}

/** What {@link forward} needs. */
export interface ForwardOptions {
  /** The client's request (its headers are forwarded, its signal tells of a disconnect). */
  request: Request;
  /** The server's base URL. */
  serverUrl: string;
  /** The endpoint path, e.g. `/v1/chat/completions`. */
  path: string;
  /** The body to send. */
  body: Uint8Array<ArrayBuffer>;
  /** The request id sent upstream and returned. */
  requestId: string;
  /** Milliseconds to wait for the upstream's response headers. */
  firstByteTimeoutMs: number;
  /** Called exactly once when the request ends, on every path. */
  onEnd(result: ForwardResult): void;
}

const encoder = new TextEncoder();

/**
 * Sends the request upstream and returns the client's response, whose body streams through.
 *
 * @param options The request, the server and the end callback.
 * @returns The response for the client.
 * @throws HttpError 502 when the server cannot be reached, 504 on a first-byte timeout.
 */
export async function forward(options: ForwardOptions): Promise<Response> {
  const { request, serverUrl, requestId } = options;
  const started = performance.now();
  const upstreamAbort = new AbortController();
  let timedOut = false;
  let clientGone = false;
  let ended = false;
  const result: ForwardResult = { outcome: "success" };

  function onClientAbort(): void {
    clientGone = true;
    upstreamAbort.abort();
  }
  function end(outcome: RequestOutcome): void {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    request.signal.removeEventListener("abort", onClientAbort);
    result.outcome = outcome;
    options.onEnd(result);
  }

  const timer = setTimeout(() => {
    timedOut = true;
    upstreamAbort.abort();
  }, options.firstByteTimeoutMs);
  if (request.signal.aborted) onClientAbort();
  else request.signal.addEventListener("abort", onClientAbort, { once: true });

  let upstream: Response;
  try {
    upstream = await fetch(serverUrl + options.path, {
      method: "POST",
      headers: upstreamRequestHeaders(request.headers, requestId),
      body: options.body,
      signal: upstreamAbort.signal,
      redirect: "manual",
    });
  } catch (error) {
    if (clientGone) {
      end("aborted");
      throw new HttpError(499, "invalid_request_error", "The client closed the request", {
        cause: error,
      });
    }
    end("error");
    if (timedOut) {
      throw new HttpError(
        504,
        "timeout_error",
        `Server "${serverUrl}" sent no response within ${options.firstByteTimeoutMs / 1000} s`,
        { code: "upstream_timeout", cause: error },
      );
    }
    throw new HttpError(
      502,
      "server_error",
      `The gateway failed to reach server "${serverUrl}": ${errorText(error)}`,
      { code: "upstream_unreachable", cause: error },
    );
  }
  clearTimeout(timer);
  result.status = upstream.status;
  result.firstByteMs = performance.now() - started;
  const okOutcome: RequestOutcome = upstream.status >= 500 ? "error" : "success";
  const headers = clientResponseHeaders(upstream.headers, requestId);
  if (!upstream.body) {
    end(okOutcome);
    return new Response(null, { status: upstream.status, headers });
  }

  const reader = upstream.body.getReader();
  const isSse = (upstream.headers.get("content-type") ?? "").includes("text/event-stream");
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = await reader.read();
        if (chunk.done) {
          controller.close();
          end(okOutcome);
        } else {
          controller.enqueue(chunk.value);
        }
      } catch (error) {
        if (clientGone) {
          end("aborted");
          controller.error(error);
          return;
        }
        end("error");
        if (!isSse) {
          controller.error(error);
          return;
        }
        // A stream that fails midway ends with an OpenAI-shaped error event, so no client hangs.
        const event = {
          error: {
            message: `Server "${serverUrl}" failed mid-stream: ${errorText(error)}`,
            type: "server_error",
            param: null,
            code: "upstream_stream_error",
          },
        };
        controller.enqueue(encoder.encode(`data: ${JSON.stringify(event)}\n\n`));
        controller.close();
      }
    },
    cancel(reason) {
      clientGone = true;
      upstreamAbort.abort();
      end("aborted");
      return reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
  return new Response(body, { status: upstream.status, headers });
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
    return `${error.message.split("\n")[0]}${cause}`;
  }
  return String(error);
}
