/**
 * The small HTTP/1.1 server side that `bench/common/upstream.ts` needs: read one request (head and body,
 * `content-length` or chunked) from a keep-alive connection, and write bytes fully.
 *
 * @module
 */

/** A connection's read buffer; bytes past `length` are free. */
export interface InputBuffer {
  /** The bytes (grown as needed). */
  buffer: Uint8Array;
  /** How many bytes are buffered. */
  length: number;
}

/** One parsed request. */
export interface BenchRequest {
  /** `GET`, `POST`, ... */
  method: string;
  /** The request target, e.g. `/v1/chat/completions`. */
  path: string;
  /** True when the connection closes after this answer (`Connection: close` or HTTP/1.0). */
  close: boolean;
  /** The body bytes (empty for none). */
  body: Uint8Array;
}

const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();
const CONTINUE = encoder.encode("HTTP/1.1 100 Continue\r\n\r\n");

/**
 * Writes every byte.
 *
 * @param conn The connection.
 * @param bytes What to write.
 */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Reads more bytes into the buffer; false at end of stream. */
async function fill(conn: Deno.Conn, input: InputBuffer): Promise<boolean> {
  if (input.length === input.buffer.length) {
    const bigger = new Uint8Array(input.buffer.length * 2);
    bigger.set(input.buffer.subarray(0, input.length));
    input.buffer = bigger;
  }
  const n = await conn.read(input.buffer.subarray(input.length));
  if (n === null) return false;
  input.length += n;
  return true;
}

/** Drops the first `count` buffered bytes. */
function consume(input: InputBuffer, count: number): void {
  input.buffer.copyWithin(0, count, input.length);
  input.length -= count;
}

/** Index of `\r\n\r\n` (or `\r\n` when `double` is false) from `from`, or -1. */
function findCrlf(input: InputBuffer, from: number, double: boolean): number {
  const bytes = input.buffer;
  const end = input.length - (double ? 3 : 1);
  for (let i = from; i < end; i++) {
    if (
      bytes[i] === 13 && bytes[i + 1] === 10 &&
      (!double || (bytes[i + 2] === 13 && bytes[i + 3] === 10))
    ) {
      return i;
    }
  }
  return -1;
}

/** Waits until `count` bytes are buffered; false when the stream ends first. */
async function need(conn: Deno.Conn, input: InputBuffer, count: number): Promise<boolean> {
  while (input.length < count) if (!(await fill(conn, input))) return false;
  return true;
}

/** Reads a chunked body; returns it, or undefined when the stream ends first. */
async function readChunked(conn: Deno.Conn, input: InputBuffer): Promise<Uint8Array | undefined> {
  const parts: Uint8Array[] = [];
  while (true) {
    let line = findCrlf(input, 0, false);
    while (line < 0) {
      if (!(await fill(conn, input))) return undefined;
      line = findCrlf(input, 0, false);
    }
    const size = parseInt(latin1.decode(input.buffer.subarray(0, line)).split(";")[0]!, 16);
    consume(input, line + 2);
    if (!Number.isFinite(size)) throw new Error("bad chunk size");
    if (size === 0) {
      // Trailers (if any) end with an empty line.
      let end = findCrlf(input, 0, false);
      while (end !== 0) {
        while (end < 0) {
          if (!(await fill(conn, input))) return undefined;
          end = findCrlf(input, 0, false);
        }
        if (end > 0) {
          consume(input, end + 2);
          end = findCrlf(input, 0, false);
        }
      }
      consume(input, 2);
      break;
    }
    if (!(await need(conn, input, size + 2))) return undefined;
    parts.push(input.buffer.slice(0, size));
    consume(input, size + 2);
  }
  if (parts.length === 1) return parts[0]!;
  const body = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    body.set(part, offset);
    offset += part.length;
  }
  return body;
}

const EMPTY = new Uint8Array(0);

/**
 * Reads the next request from a keep-alive connection.
 *
 * @param conn The connection.
 * @param input Its read buffer, kept between requests.
 * @returns The request, or null when the client closed the connection.
 */
export async function readRequest(
  conn: Deno.Conn,
  input: InputBuffer,
): Promise<BenchRequest | null> {
  let headEnd = findCrlf(input, 0, true);
  while (headEnd < 0) {
    if (!(await fill(conn, input))) return null;
    headEnd = findCrlf(input, 0, true);
  }
  const head = latin1.decode(input.buffer.subarray(0, headEnd));
  consume(input, headEnd + 4);
  const firstLine = head.indexOf("\r\n");
  const [method = "", path = "/", version = ""] = (firstLine < 0 ? head : head.slice(0, firstLine))
    .split(" ");
  const lower = head.toLowerCase();
  const close = version === "HTTP/1.0"
    ? !/\r\nconnection:[ \t]*keep-alive/.test(lower)
    : /\r\nconnection:[ \t]*close/.test(lower);
  if (/\r\nexpect:[ \t]*100-continue/.test(lower)) await writeAll(conn, CONTINUE);
  let body: Uint8Array | undefined = EMPTY;
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(lower)) {
    body = await readChunked(conn, input);
  } else {
    const length = Number(/\r\ncontent-length:[ \t]*(\d+)/.exec(lower)?.[1] ?? 0);
    if (length > 0) {
      if (!(await need(conn, input, length))) return null;
      body = input.buffer.slice(0, length);
      consume(input, length);
    }
  }
  if (body === undefined) return null;
  return { method, path, close, body };
}
