/**
 * One keep-alive HTTP/1.1 connection to a server: writes a request while reading the response
 * (full duplex, so an early answer such as 413 arrives as the server sent it), reads and
 * validates the response head, and hands out the body. Every connection owns one read buffer
 * that is reused for every response, so a stream of small SSE events costs one small copy per
 * event and nothing else. The socket is read only when the body's reader asks (the client's
 * pace), so at most one buffer of a response waits in the gateway.
 *
 * @module
 */
import {
  byteString,
  findHeadEnd,
  parseResponseHead,
  ProtocolError,
  type ResponseHead,
} from "./http1_parse.ts";
import { bodyReader, type UpstreamBody, UpstreamClosed } from "./http1_body.ts";

export { type UpstreamBody, UpstreamClosed } from "./http1_body.ts";

/**
 * Bytes a connection buffers at first: enough for a usual response head and a burst of SSE
 * events, small enough for thousands of open streams. A large head grows it up to
 * {@link MAX_HEAD_BYTES}, a large body up to `BODY_BUFFER_BYTES` (`http1_body.ts`).
 */
const BUFFER_BYTES = 4 * 1024;
/** Largest response head accepted (interim 1xx heads included). */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Most interim (1xx) responses accepted before the final one. */
const MAX_INTERIM = 16;

/** One connection; {@link Http1Pool} owns it. */
export class Http1Connection {
  readonly #conn: Deno.Conn;
  #buffer = new Uint8Array(BUFFER_BYTES);
  #start = 0;
  #end = 0;
  #idleRead: Promise<number | null> | undefined;
  #idle = false;
  #closed = false;
  /** Whether the current request was written whole. */
  #written = true;
  /** Whether a byte of the current response arrived (a reused connection that failed before is retried). */
  received = false;
  /** Bytes read from the socket so far: deadlines see progress without a clock read per chunk. */
  bytesRead = 0;
  /** `performance.now()` when it went idle. */
  idleSince = 0;

  /**
   * Wraps an open socket.
   *
   * @param conn The socket.
   */
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Whether the socket was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Starts writing a request and returns at once: the response is read while it is written. A
   * write that fails (the server answered early and closed) is not an error by itself; the
   * connection is then not reused.
   *
   * @param parts The head, then the body if it is sent separately.
   */
  send(parts: readonly Uint8Array[]): void {
    this.#written = false;
    void this.#writeAll(parts);
  }

  /**
   * Reads the response head, skipping interim answers (100, 102, 103).
   *
   * @param method The request method.
   * @returns The head; the body follows in the buffer.
   * @throws ProtocolError when the head breaks HTTP/1.1 rules (or is an unsolicited 101).
   * @throws UpstreamClosed when the connection ends first.
   */
  async readHead(method: string): Promise<ResponseHead> {
    let interim = 0;
    let scanned = this.#start;
    for (;;) {
      const end = findHeadEnd(this.#buffer, { start: scanned, end: this.#end });
      if (end >= 0) {
        const text = byteString(this.#buffer.subarray(this.#start, end));
        this.#start = scanned = end;
        const head = parseResponseHead(text, { method });
        if (head.status === 101) {
          throw new ProtocolError(
            "sent 101 Switching Protocols to a request that asked for no upgrade",
          );
        }
        if (head.status < 200) {
          if (++interim > MAX_INTERIM) {
            throw new ProtocolError(`sent more than ${MAX_INTERIM} interim (1xx) responses`);
          }
          continue;
        }
        return head;
      }
      // Rescan only the last bytes of what was searched (a blank line may span two reads).
      scanned = Math.max(this.#start, this.#end - 2);
      if (this.#end - this.#start >= MAX_HEAD_BYTES) {
        throw new ProtocolError(`sent response headers larger than ${MAX_HEAD_BYTES} bytes`);
      }
      const before = this.#start;
      if (!(await this.#fill(MAX_HEAD_BYTES))) {
        throw new UpstreamClosed("The server closed the connection before answering");
      }
      scanned -= before - this.#start;
    }
  }

  /**
   * The body of a response whose head was read.
   *
   * @param head The head.
   * @param onDone Called once when the body ends or fails; `reusable` says whether the
   *   connection can carry another request.
   * @returns The body reader.
   */
  body(head: ResponseHead, onDone: (reusable: boolean) => void): UpstreamBody {
    return bodyReader(this, { head, onDone });
  }

  /** @internal Bytes buffered and not yet consumed. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** @internal A view of the buffered bytes (valid until the next read). */
  view(): Uint8Array {
    return this.#buffer.subarray(this.#start, this.#end);
  }

  /** @internal Marks buffered bytes as consumed. */
  consume(count: number): void {
    this.#start += count;
  }

  /** @internal Reads more into the buffer (growing it up to `limit`); false at end of file. */
  more(limit: number): Promise<boolean> {
    return this.#fill(limit);
  }

  /** @internal Reads straight into `out`, past the buffer; `null` at end of file. */
  async readInto(out: Uint8Array): Promise<number | null> {
    const n = await this.#conn.read(out);
    if (n !== null) this.bytesRead += n;
    return n;
  }

  /**
   * @internal Settles the connection after a body: reusable only when the body ended, the head
   * allows it, the request was written whole and nothing else arrived. Closes it otherwise.
   */
  settle(complete: boolean, keepAlive: boolean): boolean {
    const reusable = complete && keepAlive && this.#written && this.#start === this.#end &&
      !this.#closed;
    if (!reusable) this.close();
    return reusable;
  }

  /**
   * Parks the connection in the pool: a read stays pending so that a server closing the idle
   * connection is noticed at once (`onGone` runs), and the next response starts from it.
   *
   * @param onGone Called when the server closes the connection while it is idle.
   */
  park(onGone: () => void): void {
    this.#start = this.#end = 0;
    this.#idle = true;
    this.idleSince = performance.now();
    const pending = this.#conn.read(this.#buffer);
    this.#idleRead = pending;
    pending.then((n) => {
      if (this.#idle && n !== null) this.#end += n;
      if (this.#idle) {
        // Bytes or an end of file on an idle connection: either way it cannot be reused.
        this.close();
        onGone();
      }
    }, () => {
      if (this.#idle) {
        this.close();
        onGone();
      }
    });
  }

  /** Takes the connection out of the pool for a new request. */
  unpark(): void {
    this.#idle = false;
    this.received = false;
  }

  /** Closes the socket (idempotent); pending reads and writes fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#idle = false;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
  }

  /** Writes the parts; never rejects (the read side reports a failure: an answer, or the end). */
  async #writeAll(parts: readonly Uint8Array[]): Promise<void> {
    try {
      for (const bytes of parts) {
        let offset = 0;
        while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
      }
      this.#written = true;
    } catch {
      // The server closed the connection; what it answered first is still read.
    }
  }

  /** Reads more bytes; false at end of file. The buffer grows up to `limit` when full. */
  async #fill(limit: number): Promise<boolean> {
    if (this.#end === this.#buffer.length) {
      if (this.#start > 0) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else if (this.#buffer.length < limit) {
        const grown = new Uint8Array(Math.min(limit, this.#buffer.length * 2));
        grown.set(this.#buffer);
        this.#buffer = grown;
      }
    }
    const pending = this.#idleRead;
    this.#idleRead = undefined;
    const n = pending ? await pending : await this.#conn.read(this.#buffer.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    this.bytesRead += n;
    this.received = true;
    return true;
  }
}
