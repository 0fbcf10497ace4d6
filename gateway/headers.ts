/**
 * Which headers cross the gateway: hop-by-hop headers never do, and headers describing an encoded
 * body are dropped because `fetch` hands the gateway a decoded body.
 *
 * @module
 */

/** Hop-by-hop headers (RFC 9110 section 7.6.1), never forwarded either way. */
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

/** Request headers not sent upstream: `fetch` sets its own host, length and encoding. */
const REQUEST_DROP = new Set([
  ...HOP_BY_HOP,
  "host",
  "content-length",
  "accept-encoding",
  "expect",
]);

/** Response headers not returned to the client: the body arrives decoded and re-framed. */
const RESPONSE_DROP = new Set([
  ...HOP_BY_HOP,
  "content-encoding",
  "content-length",
  "date",
  "server",
]);

/**
 * Builds the headers for the upstream request from the client's.
 *
 * @param incoming The client's headers.
 * @param requestId The request id to send as `x-request-id`.
 * @returns New headers with hop-by-hop ones removed and `accept-encoding: identity`.
 */
export function upstreamRequestHeaders(incoming: Headers, requestId: string): Headers {
  const out = new Headers();
  const named = connectionTokens(incoming);
  for (const [name, value] of incoming) {
    if (!REQUEST_DROP.has(name) && !named.has(name)) out.append(name, value);
  }
  out.set("accept-encoding", "identity");
  out.set("x-request-id", requestId);
  return out;
}

/**
 * Builds the client response headers from the upstream response's.
 *
 * @param upstream The upstream response headers.
 * @param requestId The request id to return as `x-request-id`.
 * @returns New headers with hop-by-hop and encoding headers removed.
 */
export function clientResponseHeaders(upstream: Headers, requestId: string): Headers {
  const out = new Headers();
  const named = connectionTokens(upstream);
  for (const [name, value] of upstream) {
    if (!RESPONSE_DROP.has(name) && !named.has(name)) out.append(name, value);
  }
  out.set("x-request-id", requestId);
  return out;
}

/** Headers a `Connection` header names are hop-by-hop too. */
function connectionTokens(headers: Headers): Set<string> {
  const value = headers.get("connection");
  if (!value) return EMPTY;
  return new Set(value.split(",").map((token) => token.trim().toLowerCase()).filter(Boolean));
}

const EMPTY: Set<string> = new Set();
