/**
 * HTTP/1.1 response heads for the upstream client: the status line and headers, validated as
 * hyper and undici validate them, and how the body is delimited (RFC 9112 section 6.3). Chunked
 * bodies are decoded by `http1_chunked.ts`.
 *
 * Validation is a scan of the head's characters (one per byte), done once per response: a status
 * outside 100-599, a header name that is not a token, a control byte other than HTAB in a value,
 * more than {@link MAX_HEADERS} headers or an unusable framing is a {@link ProtocolError}, which the
 * gateway answers with 502 `upstream_bad_response`. Nothing a server sends reaches `Headers` or
 * `Response` unchecked (Deno panics writing some control bytes out).
 *
 * @module
 */

/** How a response body is delimited. */
export type Framing = "none" | "length" | "chunked" | "close";

/** A parsed response head. */
export interface ResponseHead {
  /** The status code. */
  status: number;
  /** Header pairs in the order received, names lower-cased. */
  headers: [string, string][];
  /** How the body is delimited. */
  framing: Framing;
  /** The body length, when `framing` is `length`. */
  length: number;
  /** Whether the connection may carry another request after this response. */
  keepAlive: boolean;
}

/**
 * A response that breaks HTTP/1.1 rules. The message completes a sentence starting with the
 * server, e.g. `sent an invalid status "999"`.
 */
export class ProtocolError extends Error {
  /**
   * Creates the error.
   *
   * @param message What the server did, e.g. `sent an invalid status "999"`.
   */
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** Most header lines accepted in one response head (hyper's default). */
export const MAX_HEADERS = 100;

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;

/** `tchar` of RFC 9110 section 5.6.2, by character code: 1 for a token character. */
const TOKEN = new Uint8Array(128);
for (
  const char of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
) {
  TOKEN[char.charCodeAt(0)] = 1;
}

/**
 * Finds the end of a head: the index just past the blank line. Lines may end in CRLF or, as RFC
 * 9112 section 2.2 allows a recipient to accept, in a bare LF.
 *
 * @param bytes The buffer.
 * @param options The range to search.
 * @returns The index after the blank line, or -1 when the head is not complete yet.
 */
export function findHeadEnd(bytes: Uint8Array, options: { start: number; end: number }): number {
  const end = options.end;
  for (let i = options.start; i < end; i++) {
    if (bytes[i] !== LF) continue;
    const next = bytes[i + 1];
    if (next === LF && i + 1 < end) return i + 2;
    if (next === CR && i + 2 < end && bytes[i + 2] === LF) return i + 3;
  }
  return -1;
}

/** Options for {@link parseResponseHead}. */
export interface ParseHeadOptions {
  /** The request method (`HEAD` answers have no body). */
  method: string;
}

/**
 * Parses and validates a complete response head (it may include its final blank line).
 *
 * @param text The head as a byte string (one character per byte).
 * @param options The request method.
 * @returns The parsed head.
 * @throws ProtocolError when the head breaks HTTP/1.1 rules.
 */
export function parseResponseHead(text: string, options: ParseHeadOptions): ResponseHead {
  let lineEnd = text.indexOf("\n");
  if (lineEnd < 0) lineEnd = text.length;
  const statusEnd = lineEnd > 0 && text.charCodeAt(lineEnd - 1) === CR ? lineEnd - 1 : lineEnd;
  const version = text.charCodeAt(7);
  if (
    statusEnd < 12 || !text.startsWith("HTTP/1.") || (version !== 48 && version !== 49) ||
    text.charCodeAt(8) !== SP || (statusEnd > 12 && text.charCodeAt(12) !== SP) ||
    !digit(text, 9) || !digit(text, 10) || !digit(text, 11) || hasControl(text, 13, statusEnd)
  ) {
    throw new ProtocolError(`sent a malformed status line ${quote(text.slice(0, statusEnd))}`);
  }
  const status = Number(text.slice(9, 12));
  if (status < 100 || status > 599) {
    throw new ProtocolError(`sent an invalid status ${quote(text.slice(9, 12))}`);
  }
  const http10 = version === 48;
  const headers: [string, string][] = [];
  let connection = "";
  let transferEncoding = "";
  let contentLength: string | undefined;
  for (let pos = lineEnd + 1; pos < text.length;) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = text.length;
    const stop = end > pos && text.charCodeAt(end - 1) === CR ? end - 1 : end;
    const start = pos;
    pos = end + 1;
    if (stop === start) continue;
    if (headers.length === MAX_HEADERS) {
      throw new ProtocolError(`sent more than ${MAX_HEADERS} headers`);
    }
    let colon = start;
    let upper = false;
    for (; colon < stop; colon++) {
      const code = text.charCodeAt(colon);
      if (code === COLON) break;
      if (code > 127 || TOKEN[code] === 0) {
        throw new ProtocolError(`sent a malformed header line ${quote(text.slice(start, stop))}`);
      }
      if (code <= 90 && code >= 65) upper = true;
    }
    if (colon === start || colon === stop) {
      throw new ProtocolError(`sent a malformed header line ${quote(text.slice(start, stop))}`);
    }
    const raw = text.slice(start, colon);
    const name = upper ? raw.toLowerCase() : raw;
    // Only SP and HTAB are trimmed (String.prototype.trim would also drop 0xA0 and others).
    let from = colon + 1;
    let to = stop;
    while (from < to && isBlank(text.charCodeAt(from))) from++;
    while (to > from && isBlank(text.charCodeAt(to - 1))) to--;
    if (hasControl(text, from, to)) {
      throw new ProtocolError(`sent a control byte in the value of header ${quote(name)}`);
    }
    const value = text.slice(from, to);
    headers.push([name, value]);
    if (name === "connection") connection += `,${value.toLowerCase()}`;
    else if (name === "transfer-encoding") transferEncoding += `,${value.toLowerCase()}`;
    else if (name === "content-length") {
      if (contentLength !== undefined && contentLength !== value) {
        throw new ProtocolError(
          `sent conflicting content-length headers ${quote(contentLength)} and ${quote(value)}`,
        );
      }
      contentLength = value;
    }
  }
  // RFC 9112 section 9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
  let keepAlive = connection === ""
    ? !http10
    : !hasToken(connection, "close") && (!http10 || hasToken(connection, "keep-alive"));
  let framing: Framing;
  let length = 0;
  if (options.method === "HEAD" || status < 200 || status === 204 || status === 304) {
    framing = "none";
  } else if (transferEncoding !== "") {
    // RFC 9112 section 6.1: with both headers, or in HTTP/1.0, the framing is suspect: read
    // this response and close the connection.
    if (contentLength !== undefined || http10) keepAlive = false;
    framing = lastToken(transferEncoding) === "chunked" ? "chunked" : "close";
  } else if (contentLength !== undefined) {
    if (!/^\d{1,15}$/.test(contentLength)) {
      throw new ProtocolError(`sent an invalid content-length ${quote(contentLength)}`);
    }
    length = Number(contentLength);
    framing = length === 0 ? "none" : "length";
  } else {
    framing = "close";
  }
  if (status === 205 && framing !== "none") {
    // 205 has no content (RFC 9110 section 15.3.6); whatever follows is dropped with the connection.
    framing = "none";
    keepAlive = false;
  }
  if (framing === "close") keepAlive = false;
  return { status, headers, framing, length, keepAlive };
}

/**
 * A response head's bytes as a string with one character per byte (so any byte a server sends in
 * a header value survives as a valid `ByteString`).
 *
 * @param bytes The head's bytes.
 * @returns The text.
 */
export function byteString(bytes: Uint8Array): string {
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i]! > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return asciiDecoder.decode(bytes);
  let text = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    text += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return text;
}

const asciiDecoder = new TextDecoder();

/**
 * Quotes a value from the wire for a message: JSON string syntax (control bytes escaped), cut to
 * 80 characters.
 *
 * @param value The value.
 * @returns The quoted value.
 */
export function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
}

function digit(text: string, index: number): boolean {
  const code = text.charCodeAt(index);
  return code >= 48 && code <= 57;
}

function isBlank(code: number): boolean {
  return code === SP || code === HTAB;
}

/** Whether `text[from, to)` holds a control character other than HTAB (NUL, CR, LF, DEL...). */
function hasControl(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const code = text.charCodeAt(i);
    if ((code < SP && code !== HTAB) || code === 127) return true;
  }
  return false;
}

/** Whether a comma-separated list (lower-cased) holds a token. */
function hasToken(list: string, token: string): boolean {
  for (const part of list.split(",")) if (part.trim() === token) return true;
  return false;
}

function lastToken(list: string): string {
  const parts = list.split(",");
  for (let i = parts.length - 1; i >= 0; i--) {
    const part = parts[i]!.trim();
    if (part !== "") return part;
  }
  return "";
}
