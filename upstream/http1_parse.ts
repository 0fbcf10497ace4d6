/**
 * HTTP/1.1 response framing for the upstream client: the status line and headers, how the body
 * is delimited (RFC 9112 section 6.3), and a decoder for chunked bodies that works on the
 * connection's buffer without copying.
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

/** A response that breaks HTTP/1.1 framing rules. */
export class ProtocolError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was wrong.
   */
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

const CR = 13;
const LF = 10;

/**
 * Finds the end of a response head: the index just past the blank line.
 *
 * @param bytes The buffer.
 * @param options The range to search.
 * @returns The index after `\r\n\r\n`, or -1 when the head is not complete yet.
 */
export function findHeadEnd(bytes: Uint8Array, options: { start: number; end: number }): number {
  for (let i = options.start + 3; i < options.end; i++) {
    if (bytes[i] === LF && bytes[i - 1] === CR && bytes[i - 2] === LF && bytes[i - 3] === CR) {
      return i + 1;
    }
  }
  return -1;
}

/** Options for {@link parseResponseHead}. */
export interface ParseHeadOptions {
  /** The request method (`HEAD` answers have no body). */
  method: string;
}

/**
 * Parses a complete response head (status line and headers, without the final blank line).
 *
 * @param text The head as a byte string (one character per byte).
 * @param options The request method.
 * @returns The parsed head.
 * @throws ProtocolError when the head is malformed.
 */
export function parseResponseHead(text: string, options: ParseHeadOptions): ResponseHead {
  const lines = text.split("\r\n");
  const statusLine = lines[0] ?? "";
  const match = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(statusLine);
  if (!match) throw new ProtocolError(`Malformed status line ${JSON.stringify(statusLine)}`);
  const http10 = match[1] === "0";
  const status = Number(match[2]);
  const headers: [string, string][] = [];
  let connection = "";
  let transferEncoding = "";
  let contentLength: string | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0 || line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9) {
      throw new ProtocolError(`Malformed header line ${JSON.stringify(line)}`);
    }
    const name = line.slice(0, colon).toLowerCase();
    if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(name)) {
      throw new ProtocolError(`Malformed header name ${JSON.stringify(name)}`);
    }
    const value = line.slice(colon + 1).trim();
    headers.push([name, value]);
    if (name === "connection") connection += `,${value.toLowerCase()}`;
    else if (name === "transfer-encoding") transferEncoding += `,${value.toLowerCase()}`;
    else if (name === "content-length") {
      if (contentLength !== undefined && contentLength !== value) {
        throw new ProtocolError("Conflicting content-length headers");
      }
      contentLength = value;
    }
  }
  const tokens = connection.split(",").map((token) => token.trim());
  let keepAlive = http10 ? tokens.includes("keep-alive") : !tokens.includes("close");
  let framing: Framing;
  let length = 0;
  if (options.method === "HEAD" || status < 200 || status === 204 || status === 304) {
    framing = "none";
  } else if (transferEncoding !== "") {
    const codings = transferEncoding.split(",").map((token) => token.trim()).filter(Boolean);
    framing = codings.at(-1) === "chunked" ? "chunked" : "close";
  } else if (contentLength !== undefined) {
    if (!/^\d{1,15}$/.test(contentLength)) {
      throw new ProtocolError(`Malformed content-length ${JSON.stringify(contentLength)}`);
    }
    length = Number(contentLength);
    framing = length === 0 ? "none" : "length";
  } else {
    framing = "close";
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

/** Longest chunk-size or trailer line accepted. */
const MAX_LINE = 4096;

type ChunkState = "size" | "data" | "data_end" | "trailer" | "done";

/** Payload found in a buffer by {@link ChunkedDecoder.decode}. */
export interface DecodeResult {
  /** Bytes of the buffer consumed. */
  consumed: number;
  /** Payload views into the buffer (valid until the buffer is reused). */
  payload: Uint8Array[];
}

/** Decodes a chunked body incrementally; payload comes out as views of the input buffer. */
export class ChunkedDecoder {
  #state: ChunkState = "size";
  #remaining = 0;

  /** True once the final chunk and trailers were read. */
  get done(): boolean {
    return this.#state === "done";
  }

  /**
   * Decodes as much of `bytes` as is complete.
   *
   * @param bytes The buffered bytes (from the current read position).
   * @returns How many bytes were consumed, and the payload they held.
   * @throws ProtocolError on a malformed chunk.
   */
  decode(bytes: Uint8Array): DecodeResult {
    const payload: Uint8Array[] = [];
    let pos = 0;
    while (pos < bytes.length && this.#state !== "done") {
      if (this.#state === "data") {
        const take = Math.min(this.#remaining, bytes.length - pos);
        payload.push(bytes.subarray(pos, pos + take));
        pos += take;
        this.#remaining -= take;
        if (this.#remaining === 0) this.#state = "data_end";
        continue;
      }
      const lineEnd = bytes.indexOf(LF, pos);
      if (lineEnd < 0) {
        if (bytes.length - pos > MAX_LINE) throw new ProtocolError("Chunk line too long");
        break;
      }
      // The line without its CR, read byte by byte (no text decoding per chunk).
      const end = lineEnd > pos && bytes[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
      const start = pos;
      pos = lineEnd + 1;
      if (this.#state === "data_end") {
        if (end !== start) throw new ProtocolError("Missing CRLF after chunk data");
        this.#state = "size";
      } else if (this.#state === "size") {
        this.#remaining = chunkSize(bytes, start, end);
        this.#state = this.#remaining === 0 ? "trailer" : "data";
      } else if (end === start) {
        this.#state = "done";
      }
    }
    return { consumed: pos, payload };
  }
}

/** Parses a chunk-size line: hex digits, then optional whitespace and extensions (`;...`). */
function chunkSize(bytes: Uint8Array, start: number, end: number): number {
  let size = 0;
  let i = start;
  for (; i < end; i++) {
    const digit = hexValue(bytes[i]!);
    if (digit < 0) break;
    size = size * 16 + digit;
  }
  const digits = i - start;
  while (i < end && (bytes[i] === 32 || bytes[i] === 9)) i++;
  if (digits === 0 || digits > 12 || (i < end && bytes[i] !== 59)) {
    const line = String.fromCharCode(...bytes.subarray(start, Math.min(end, start + 64)));
    throw new ProtocolError(`Malformed chunk size ${JSON.stringify(line)}`);
  }
  return size;
}

function hexValue(byte: number): number {
  if (byte >= 48 && byte <= 57) return byte - 48;
  if (byte >= 97 && byte <= 102) return byte - 87;
  if (byte >= 65 && byte <= 70) return byte - 55;
  return -1;
}
