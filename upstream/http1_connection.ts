/**
 * One keep-alive HTTP/1.1 connection to a server: writes a request, reads the response head, and
 * hands out the body. Every connection owns one read buffer that is reused for every response, so
 * a stream of small SSE events costs one small copy per event and nothing else.
 *
 * @module
 */
import {
  byteString,
  ChunkedDecoder,
  findHeadEnd,
  parseResponseHead,
  ProtocolError,
  type ResponseHead,
} from "./http1_parse.ts";
import { concatBytes } from "../common/bytes.ts";

/**
 * Bytes a connection buffers at first: enough for a usual response head and a burst of SSE
 * events, small enough for thousands of open streams. A large head grows it up to
 * {@link MAX_HEAD_BYTES}, a large body up to {@link BODY_BUFFER_BYTES}.
 */
const BUFFER_BYTES = 4 * 1024;
/** Largest buffer for reading a body. */
const BODY_BUFFER_BYTES = 64 * 1024;
/** Largest response head accepted. */
export const MAX_HEAD_BYTES = 64 * 1024;

/** A response body read from a connection. */
export interface UpstreamBody {
  /**
   * Reads the next part of the body.
   *
   * @returns A copy of the bytes that arrived, or `undefined` at the end.
   */
  read(): Promise<Uint8Array<ArrayBuffer> | undefined>;
  /**
   * Reads the rest of the body.
   *
   * @returns The bytes.
   */
  bytes(): Promise<Uint8Array<ArrayBuffer>>;
  /** Stops reading; the connection is closed. */
  cancel(): void;
}

/** The server closed the connection or broke the protocol. */
export class UpstreamClosed extends Error {
  /**
   * Creates the error.
   *
   * @param message What happened.
   * @param options The cause.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UpstreamClosed";
  }
}

/** One connection; {@link Http1Pool} owns it. */
export class Http1Connection {
  readonly #conn: Deno.Conn;
  #buffer = new Uint8Array(BUFFER_BYTES);
  #start = 0;
  #end = 0;
  #idleRead: Promise<number | null> | undefined;
  #idle = false;
  #closed = false;
  /** Whether a byte of the current response arrived (a reused connection that failed before is retried). */
  received = false;
  /** Requests sent on this connection. */
  uses = 0;
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
   * Writes bytes fully.
   *
   * @param bytes The bytes.
   */
  async write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) {
      offset += await this.#conn.write(bytes.subarray(offset));
    }
  }

  /**
   * Reads the response head, skipping informational (1xx) answers.
   *
   * @param method The request method.
   * @returns The head; the body follows in the buffer.
   * @throws UpstreamClosed when the connection ends first or the head is malformed.
   */
  async readHead(method: string): Promise<ResponseHead> {
    for (;;) {
      const end = findHeadEnd(this.#buffer, { start: this.#start, end: this.#end });
      if (end >= 0) {
        const text = byteString(this.#buffer.subarray(this.#start, end - 4));
        this.#start = end;
        let head: ResponseHead;
        try {
          head = parseResponseHead(text, { method });
        } catch (error) {
          throw new UpstreamClosed(
            `The server sent a malformed response: ${(error as Error).message}`,
            { cause: error },
          );
        }
        if (head.status >= 100 && head.status < 200 && head.status !== 101) continue;
        return head;
      }
      if (this.#end - this.#start >= MAX_HEAD_BYTES) {
        throw new UpstreamClosed(`The server's response headers exceed ${MAX_HEAD_BYTES} bytes`);
      }
      if (!(await this.#fill(MAX_HEAD_BYTES))) {
        throw new UpstreamClosed("The server closed the connection before answering");
      }
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
    let finished = false;
    const finish = (complete: boolean): void => {
      if (finished) return;
      finished = true;
      const reusable = complete && head.keepAlive && this.#start === this.#end && !this.#closed;
      if (!reusable) this.close();
      onDone(reusable);
    };
    let remaining = head.length;
    const decoder = head.framing === "chunked" ? new ChunkedDecoder() : undefined;
    const read = async (): Promise<Uint8Array<ArrayBuffer> | undefined> => {
      try {
        for (;;) {
          if (finished) return undefined;
          if (head.framing === "none" || (head.framing === "length" && remaining === 0)) {
            finish(true);
            return undefined;
          }
          if (decoder?.done) {
            finish(true);
            return undefined;
          }
          if (this.#start < this.#end) {
            if (decoder) {
              const { consumed, payload } = decoder.decode(
                this.#buffer.subarray(this.#start, this.#end),
              );
              this.#start += consumed;
              // Copied before the connection may go back to the pool, whose idle read reuses
              // the buffer the payload views point into.
              const copy = payload.length > 0 ? joinCopy(payload) : undefined;
              if (decoder.done) finish(true);
              if (copy) return copy;
              if (consumed > 0) continue;
            } else {
              const take = head.framing === "length"
                ? Math.min(remaining, this.#end - this.#start)
                : this.#end - this.#start;
              const copy = this.#buffer.slice(this.#start, this.#start + take);
              this.#start += take;
              remaining -= take;
              if (head.framing === "length" && remaining === 0) finish(true);
              return copy;
            }
          }
          if (!(await this.#fill(BODY_BUFFER_BYTES))) {
            if (head.framing === "close") {
              finish(true);
              return undefined;
            }
            throw new UpstreamClosed("The server closed the connection before the end of the body");
          }
        }
      } catch (error) {
        finish(false);
        throw error instanceof ProtocolError
          ? new UpstreamClosed(`The server sent a malformed body: ${error.message}`, {
            cause: error,
          })
          : error;
      }
    };
    return {
      read,
      bytes: async () => {
        if (head.framing !== "length") return concatBytes(await readAll(read));
        const out = new Uint8Array(remaining);
        let offset = 0;
        try {
          const buffered = Math.min(remaining, this.#end - this.#start);
          out.set(this.#buffer.subarray(this.#start, this.#start + buffered));
          this.#start += buffered;
          offset = buffered;
          while (offset < out.length) {
            const n = await this.#conn.read(out.subarray(offset));
            if (n === null) {
              throw new UpstreamClosed(
                "The server closed the connection before the end of the body",
              );
            }
            offset += n;
          }
        } catch (error) {
          finish(false);
          throw error;
        }
        remaining = 0;
        finish(true);
        return out;
      },
      cancel: () => finish(false),
    };
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
    this.uses++;
  }

  /** Closes the socket (idempotent); pending reads fail. */
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
    this.received = true;
    return true;
  }
}

async function readAll(
  read: () => Promise<Uint8Array<ArrayBuffer> | undefined>,
): Promise<Uint8Array<ArrayBuffer>[]> {
  const parts: Uint8Array<ArrayBuffer>[] = [];
  for (let part = await read(); part !== undefined; part = await read()) parts.push(part);
  return parts;
}

function joinCopy(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  if (parts.length === 1) return parts[0]!.slice() as Uint8Array<ArrayBuffer>;
  return concatBytes(parts);
}
