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
import type { TokenUsage } from "../plugins/types.ts";
import { clientResponseHeaders } from "./headers.ts";
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

/** Timeouts of one forwarded request, in milliseconds. */
export interface ForwardTimeouts {
  /** To open a connection (checked apart, see `connect_check.ts`). */
  connectMs: number;
  /** Until the server's response headers arrive. */
  firstByteMs: number;
  /** Longest gap between body chunks. */
  idleMs: number;
  /** The whole request, body included. */
  totalMs: number;
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
  /** The request id returned to the client. */
  requestId: string;
  /** Headers to send upstream (already filtered, with the request id). */
  headers: Headers;
  /** Read token usage from the answer (for plugins). */
  readUsage: boolean;
  /** Timeouts. */
  timeouts: ForwardTimeouts;
  /** Called exactly once when the request ends, on every path. */
  onEnd(result: ForwardResult): void;
}

const encoder = new TextEncoder();

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
  const { request, serverUrl, requestId, timeouts } = options;
  const started = performance.now();
  const upstreamAbort = new AbortController();
  let expired: Expiry | undefined;
  let clientGone = false;
  let ended = false;
  let headersAt = 0;
  let lastChunkAt = 0;
  let buffering = false;
  const result: ForwardResult = { outcome: "success" };

  const watched = {
    check(now: number): void {
      if (expired !== undefined || ended) return;
      if (headersAt === 0) {
        if (now - started > timeouts.firstByteMs) expired = "first_byte";
      } else if (!buffering && now - lastChunkAt > timeouts.idleMs) expired = "idle";
      if (expired === undefined && now - started > timeouts.totalMs) expired = "total";
      if (expired !== undefined) upstreamAbort.abort();
    },
  };
  function onClientAbort(): void {
    clientGone = true;
    upstreamAbort.abort();
  }
  let tap: UsageTap | undefined;
  function end(outcome: RequestOutcome): void {
    if (ended) return;
    ended = true;
    const usage = tap?.finish();
    if (usage) result.usage = usage;
    watchdog.delete(watched);
    request.signal.removeEventListener("abort", onClientAbort);
    result.outcome = outcome;
    options.onEnd(result);
  }

  watchdog.add(watched);
  if (request.signal.aborted) onClientAbort();
  else request.signal.addEventListener("abort", onClientAbort, { once: true });

  let upstream: Response;
  try {
    upstream = await fetch(serverUrl + options.path, {
      method: "POST",
      headers: options.headers,
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
    if (expired !== undefined) {
      const limit = expired === "total" ? timeouts.totalMs : timeouts.firstByteMs;
      throw new HttpError(
        504,
        "timeout_error",
        `Server "${serverUrl}" sent no response within ${limit / 1000} s`,
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
  headersAt = lastChunkAt = performance.now();
  result.status = upstream.status;
  result.firstByteMs = headersAt - started;
  const okOutcome: RequestOutcome = upstream.status >= 500 ? "error" : "success";
  const headers = clientResponseHeaders(upstream.headers, requestId);
  if (!upstream.body) {
    end(okOutcome);
    return new Response(null, { status: upstream.status, headers });
  }

  const isSse = (upstream.headers.get("content-type") ?? "").includes("text/event-stream");
  if (!isSse) {
    // A JSON answer is read whole and sent as one buffer: Deno then writes it natively, which
    // is about twice as fast as passing each chunk through JavaScript. SSE streams chunk by chunk.
    buffering = true;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = await upstream.bytes();
    } catch (error) {
      if (clientGone) {
        end("aborted");
        throw new HttpError(499, "invalid_request_error", "The client closed the request", {
          cause: error,
        });
      }
      end("error");
      throw new HttpError(
        expired === undefined ? 502 : 504,
        expired === undefined ? "server_error" : "timeout_error",
        expired === undefined
          ? `Server "${serverUrl}" failed while sending its answer: ${errorText(error)}`
          : `Server "${serverUrl}" did not finish its answer within ${timeouts.totalMs / 1000} s`,
        { code: expired === undefined ? "upstream_body_error" : "upstream_timeout", cause: error },
      );
    }
    result.firstChunkMs = performance.now() - started;
    if (options.readUsage) {
      tap = new UsageTap(false);
      tap.chunk(bytes);
    }
    end(okOutcome);
    return new Response(bytes, { status: upstream.status, headers });
  }
  const reader = byteReader(upstream.body);
  if (options.readUsage) tap = new UsageTap(true);
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = await reader.read();
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
        if (!isSse) {
          controller.error(error);
          return;
        }
        // A stream that fails midway ends with an OpenAI-shaped error event, so no client hangs.
        controller.enqueue(encoder.encode(streamErrorEvent(serverUrl, expired, timeouts, error)));
        controller.close();
      }
    },
    cancel(reason) {
      clientGone = true;
      upstreamAbort.abort();
      end(okOutcome === "error" ? "error" : "aborted");
      return reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
  return new Response(body, { status: upstream.status, headers });
}

/** Reads a body chunk by chunk; each chunk is a copy of exactly its bytes. */
interface ByteReader {
  /** The next chunk, or `undefined` at the end. */
  read(): Promise<Uint8Array<ArrayBuffer> | undefined>;
  /** Stops reading. */
  cancel(reason?: unknown): Promise<void>;
}

/** Bytes read at once from a streamed answer. */
const READ_BYTES = 16 * 1024;

/**
 * A reader of an upstream body that does not hold on to Deno's buffers: `fetch` hands out each
 * chunk as a view on a fresh 64 KiB buffer, which a stream of small SSE events would keep alive
 * until the client took them (hundreds of MB for a thousand streams). A BYOB reader fills one
 * reused buffer and each chunk is copied out at its real size.
 */
function byteReader(body: ReadableStream<Uint8Array>): ByteReader {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream: read chunks and copy them.
  }
  if (byob) {
    const reader = byob;
    let buffer = new ArrayBuffer(READ_BYTES);
    return {
      async read() {
        const { done, value } = await reader.read(new Uint8Array(buffer));
        if (done || value === undefined) return undefined;
        const copy = value.slice();
        buffer = value.buffer as ArrayBuffer;
        return copy;
      },
      cancel: (reason) => reader.cancel(reason),
    };
  }
  const reader = body.getReader();
  return {
    async read() {
      const { done, value } = await reader.read();
      return done ? undefined : value.slice() as Uint8Array<ArrayBuffer>;
    },
    cancel: (reason) => reader.cancel(reason),
  };
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
