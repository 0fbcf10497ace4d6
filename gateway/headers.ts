/**
 * Which headers cross the gateway: hop-by-hop headers never do; the rest pass both ways.
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

/** Request headers not sent upstream: the client sets its own host, length and encoding. */
const REQUEST_DROP = new Set([
  ...HOP_BY_HOP,
  "host",
  "content-length",
  "accept-encoding",
  "expect",
]);

/**
 * Response headers not returned to the client: `Deno.serve` frames the body itself. The body
 * passes through as the server encoded it, so `content-encoding` stays.
 */
const RESPONSE_DROP = new Set([
  ...HOP_BY_HOP,
  "content-length",
  "date",
  "server",
]);

/** A header name and value. */
export type HeaderPair = readonly [string, string];

/**
 * The headers sent upstream for one request: read from the client's once, kept as pairs, and
 * turned into a `Headers` object only when a plugin asks for one.
 */
export class UpstreamHeaders {
  /** Bytes of the client's headers (names, values and separators), for the size limit. */
  readonly clientBytes: number;
  #pairs: [string, string][];
  #headers: Headers | undefined;

  /**
   * Reads the client's headers.
   *
   * @param incoming The client's headers.
   * @param requestId The request id to send as `x-request-id`.
   */
  constructor(incoming: Headers, requestId: string) {
    const pairs: [string, string][] = [];
    let size = 0;
    let connection: string | undefined;
    for (const [name, value] of incoming) {
      size += name.length + value.length + 4;
      if (name === "connection") connection = value;
      if (!REQUEST_DROP.has(name) && name !== "x-request-id") pairs.push([name, value]);
    }
    this.clientBytes = size;
    const named = connection === undefined ? EMPTY : connectionTokens(connection);
    this.#pairs = named.size === 0 ? pairs : pairs.filter(([name]) => !named.has(name));
    this.#pairs.push(["accept-encoding", "identity"], ["x-request-id", requestId]);
  }

  /** The headers as a mutable `Headers` object (made on first use; later changes count). */
  get headers(): Headers {
    this.#headers ??= new Headers(this.#pairs);
    return this.#headers;
  }

  /**
   * Removes a header; works on the pairs unless a `Headers` was already made.
   *
   * @param name A lower-case name.
   */
  delete(name: string): void {
    if (this.#headers) this.#headers.delete(name);
    else if (this.#pairs.some((pair) => pair[0] === name)) {
      this.#pairs = this.#pairs.filter((pair) => pair[0] !== name);
    }
  }

  /**
   * The pairs to send.
   *
   * @param authorization An `authorization` value replacing the client's, if any.
   * @returns The pairs.
   */
  pairs(authorization?: string): Iterable<HeaderPair> {
    const pairs: Iterable<HeaderPair> = this.#headers ?? this.#pairs;
    if (authorization === undefined) return pairs;
    return [
      ...[...pairs].filter(([name]) => name !== "authorization"),
      ["authorization", authorization],
    ];
  }
}

/**
 * Builds the client's response headers from the server's and the gateway's own.
 *
 * @param upstream The server's header pairs (lower-case names).
 * @param own Headers the gateway sets; they replace the server's of the same name.
 * @returns Pairs with hop-by-hop and framing headers removed.
 */
export function clientResponseHeaders(
  upstream: readonly HeaderPair[],
  own: Iterable<HeaderPair>,
): [string, string][] {
  const out: [string, string][] = [];
  const ownList = [...own];
  const connection = headerValue(upstream, "connection");
  const named = connection === "" ? EMPTY : connectionTokens(connection);
  for (const [name, value] of upstream) {
    if (RESPONSE_DROP.has(name) || named.has(name)) continue;
    if (ownList.some(([own]) => own === name)) continue;
    out.push([name, value]);
  }
  for (const pair of ownList) out.push([pair[0], pair[1]]);
  return out;
}

/**
 * The first value of a header in a list of pairs.
 *
 * @param pairs Pairs with lower-case names.
 * @param name A lower-case name.
 * @returns The value, or an empty string.
 */
export function headerValue(pairs: readonly HeaderPair[], name: string): string {
  for (const pair of pairs) if (pair[0] === name) return pair[1];
  return "";
}

/** Headers a `Connection` header names are hop-by-hop too. */
function connectionTokens(value: string): Set<string> {
  return new Set(value.split(",").map((token) => token.trim().toLowerCase()).filter(Boolean));
}

const EMPTY: Set<string> = new Set();

/**
 * Whether a `Content-Type` value is `text/event-stream`, in any case, with or without parameters.
 *
 * @param value The header value.
 * @returns Whether the body is an SSE stream.
 */
export function isEventStream(value: string): boolean {
  let start = 0;
  while (value.charCodeAt(start) === 32 || value.charCodeAt(start) === 9) start++;
  const end = start + EVENT_STREAM.length;
  if (value.length < end) return false;
  const type = value.slice(start, end);
  if (type !== EVENT_STREAM && type.toLowerCase() !== EVENT_STREAM) return false;
  const next = value.charCodeAt(end);
  return Number.isNaN(next) || next === 59 || next === 32 || next === 9;
}

const EVENT_STREAM = "text/event-stream";
