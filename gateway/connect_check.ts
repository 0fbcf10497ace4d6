/**
 * The connect timeout. Deno's `fetch` does not report connection set-up apart from waiting for the
 * answer, so a server that drops connection attempts (a dead host, a black-holed route) would hold
 * a request for the whole first-byte timeout, which must be long for queued LLM requests. Before
 * sending to a server that has not answered recently (so no pooled connection is likely), the
 * gateway opens and closes one TCP connection with the connect timeout; a server that does not
 * accept it in time fails the attempt at once, and the request is retried elsewhere.
 *
 * @module
 */
import { HttpError } from "./errors.ts";

/** A server that answered within this many milliseconds is assumed to have a pooled connection. */
export const RECENT_ANSWER_MS = 10_000;

/**
 * Checks that a server accepts a TCP connection within a time limit.
 *
 * @param serverUrl The server's base URL.
 * @param timeoutMs The connect timeout in milliseconds.
 * @throws HttpError 502 `upstream_unreachable` when it refuses or does not accept in time.
 */
export async function checkConnect(serverUrl: string, timeoutMs: number): Promise<void> {
  const url = new URL(serverUrl);
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const connection = await Deno.connect({ hostname, port, signal });
    connection.close();
  } catch (error) {
    const reason = signal.aborted
      ? `did not accept a connection within ${timeoutMs / 1000} s`
      : `refused the connection (${error instanceof Error ? error.message : error})`;
    throw new HttpError(502, "server_error", `Server "${serverUrl}" ${reason}`, {
      code: "upstream_unreachable",
      cause: error,
    });
  }
}
