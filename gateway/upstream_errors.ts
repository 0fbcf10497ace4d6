/**
 * What the client is told when a forwarded request fails: an OpenAI-shaped {@link HttpError}
 * before the answer started, or an SSE error event once a stream is under way. Every message
 * names the server, in the form `Server "http://a:8000" sent an invalid status "999"`.
 *
 * @module
 */
import { errorLine, HttpError } from "../common/errors.ts";
import type { ForwardTimeouts } from "../fleet/routes.ts";
import { ConnectError } from "../upstream/http1_pool.ts";
import { ProtocolError } from "../upstream/http1_parse.ts";
import type { Expiry } from "./exchange.ts";

/** What went wrong, as the exchange saw it. */
export interface FailureFacts {
  /** The server's URL. */
  serverUrl: string;
  /** The deadline that passed, if one did. */
  expired: Expiry | undefined;
  /** The timeouts in force. */
  timeouts: ForwardTimeouts;
  /** Whether the head had arrived (the body failed) or not. */
  stage: "head" | "body";
}

/**
 * The error for a request that failed before anything reached the client.
 *
 * @param error What was thrown.
 * @param facts The server, the passed deadline and the stage.
 * @returns 504 for a timeout, 502 otherwise (`upstream_bad_response` for a broken answer).
 */
export function upstreamError(error: unknown, facts: FailureFacts): HttpError {
  const { serverUrl, expired, timeouts, stage } = facts;
  const server = `Server "${serverUrl}"`;
  if (expired === "first_byte" || expired === "total") {
    const message = stage === "head" && expired === "first_byte"
      ? `${server} sent no response within ${timeouts.firstByteMs / 1000} s`
      : `${server} did not finish its answer within ${timeouts.totalMs / 1000} s`;
    return new HttpError(504, "timeout_error", message, { code: "upstream_timeout", cause: error });
  }
  if (expired === "idle") {
    return new HttpError(
      504,
      "timeout_error",
      `${server} sent nothing for ${timeouts.idleMs / 1000} s while sending its answer`,
      { code: "upstream_idle_timeout", cause: error },
    );
  }
  if (error instanceof ProtocolError) {
    return new HttpError(502, "server_error", `${server} ${error.message}`, {
      code: "upstream_bad_response",
      cause: error,
    });
  }
  if (error instanceof ConnectError) {
    return new HttpError(502, "server_error", `${server} ${error.message}`, {
      code: "upstream_unreachable",
      cause: error,
    });
  }
  return new HttpError(
    502,
    "server_error",
    stage === "head"
      ? `The gateway failed to reach server "${serverUrl}": ${errorText(error)}`
      : `${server} failed while sending its answer: ${errorText(error)}`,
    { code: stage === "head" ? "upstream_unreachable" : "upstream_body_error", cause: error },
  );
}

/**
 * The SSE event that ends a stream the server broke or the gateway timed out; it follows whole
 * events only (see `sse_framer.ts`).
 *
 * @param error What was thrown.
 * @param facts The server and the passed deadline.
 * @returns The event's text.
 */
export function streamErrorEvent(error: unknown, facts: FailureFacts): string {
  const { serverUrl, expired, timeouts } = facts;
  const server = `Server "${serverUrl}"`;
  let message: string;
  let code: string;
  if (expired === "idle") {
    message = `${server} sent nothing for ${timeouts.idleMs / 1000} s mid-stream`;
    code = "upstream_idle_timeout";
  } else if (expired === "total") {
    message = `${server} did not finish within ${timeouts.totalMs / 1000} s`;
    code = "upstream_total_timeout";
  } else if (error instanceof ProtocolError) {
    message = `${server} ${error.message}`;
    code = "upstream_bad_response";
  } else {
    message = `${server} failed mid-stream: ${errorText(error)}`;
    code = "upstream_stream_error";
  }
  const type = expired === undefined ? "server_error" : "timeout_error";
  return `data: ${JSON.stringify({ error: { message, type, param: null, code } })}\n\n`;
}

function errorText(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error
    ? `: ${error.cause.message}`
    : "";
  return `${errorLine(error)}${cause}`;
}
