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
import { ChunkedDecoder } from "./http1_chunked.ts";
import { concatBytes } from "../common/bytes.ts";

/**
 * Bytes a connection buffers at first: enough for a usual response head and a burst of SSE
 * events, small enough for thousands of open streams. A large head grows it up to
 * {@link MAX_HEAD_BYTES}, a large body up to {@link BODY_BUFFER_BYTES}.
 */
const BUFFER_BYTES = 4 * 1024;
/** Largest buffer for reading a body. */
const BODY_BUFFER_BYTES = 64 * 1024;
/** Largest response head accepted (interim 1xx heads included). */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Most interim (1xx) responses accepted before the final one. */
const MAX_INTERIM = 16;
/** Largest body allocated at once from a declared length; longer ones are read in parts. */
const MAX_PREALLOCATE = 16 * 1024 * 1024;

/** A response body read from a connection. */
export interface UpstreamBody {
  /**
   * Reads the next part of the body.
   *
   * @returns A copy of the bytes that arrived, or `undefined` at the end.
   */
  read(): Promise<Uint8Array<ArrayBuffer> | undefined>;
  /**
   * Reads the whole body when it is at most `limit` bytes long. A body with a larger declared
   * length is not read at all; one that grows past the limit keeps what was read for `read()`.
   *
   * @param limit The most bytes to hold.
   * @returns The bytes, or `undefined` when the body is longer (then read it with `read()`).
   */
  buffer(limit: number): Promise<Uint8Array<ArrayBuffer> | undefined>;
  /**
   * Reads the rest of the body, however long (for tests and trusted callers).
   *
   * @returns The bytes.
   */
  bytes(): Promise<Uint8Array<ArrayBuffer>>;
  /** Stops reading; the connection is closed. */
  cancel(): void;
}

/** The server closed the connection, or the request was aborted. */
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
  /** Whether the current request was written whole. */
  #written = true;
  /** Whether a byte of the current response arrived (a reused connection that failed before is retried). */
  received = false;
  /** Bytes read from the socket so far: deadlines see progress without a clock read per chunk. */
  bytesRead = 0;
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
   * Starts writing a request and returns at once: the response is read while it is written. A
   * write that fails (the server answered early and closed) is not an error by itself; the
   * connection is then not reused.
   *
   * @param parts The head, then the body if it is sent separately.
   */
  send(parts: readonly Uint8Array[]): void {
    this.#written = false;
    this.#writeAll(parts).then(() => {
      this.#written = true;
    }, () => {
      // The read side reports what happened: an answer, or the end of the connection.
    });
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
    let finished = false;
    const finish = (complete: boolean): void => {
      if (finished) return;
      finished = true;
      const reusable = complete && head.keepAlive && this.#written && this.#start === this.#end &&
        !this.#closed;
      if (!reusable) this.close();
      onDone(reusable);
    };
    let remaining = head.length;
    const decoder = head.framing === "chunked" ? new ChunkedDecoder() : undefined;
    /** Bytes `buffer()` read before finding the body too long; `read()` returns them first. */
    let held: Uint8Array<ArrayBuffer> | undefined;
    const read = async (): Promise<Uint8Array<ArrayBuffer> | undefined> => {
      if (held) {
        const out = held;
        held = undefined;
        return out;
      }
      try {
        for (;;) {
          if (finished) return undefined;
          if (head.framing === "none" || (head.framing === "length" && remaining === 0)) {
            finish(true);
            return undefined;
          }
          if (decoder) {
            if (decoder.done) {
              finish(true);
              return undefined;
            }
            decoder.throwIfFailed();
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
        throw error;
      }
    };
    /** Reads a declared length whole into one array: one allocation, no copies of parts. */
    const readLength = async (): Promise<Uint8Array<ArrayBuffer>> => {
      const out = new Uint8Array(remaining);
      try {
        const buffered = Math.min(remaining, this.#end - this.#start);
        out.set(this.#buffer.subarray(this.#start, this.#start + buffered));
        this.#start += buffered;
        let offset = buffered;
        while (offset < out.length) {
          const n = await this.#conn.read(out.subarray(offset));
          if (n === null) {
            throw new UpstreamClosed("The server closed the connection before the end of the body");
          }
          offset += n;
          this.bytesRead += n;
        }
      } catch (error) {
        finish(false);
        throw error;
      }
      remaining = 0;
      finish(true);
      return out;
    };
    const buffer = async (limit: number): Promise<Uint8Array<ArrayBuffer> | undefined> => {
      if (head.framing === "length" && !held) {
        return remaining <= limit && remaining <= MAX_PREALLOCATE ? await readLength() : undefined;
      }
      const parts: Uint8Array<ArrayBuffer>[] = [];
      let size = 0;
      for (let part = await read(); part !== undefined; part = await read()) {
        parts.push(part);
        size += part.byteLength;
        if (size > limit) {
          held = concatBytes(parts);
          return undefined;
        }
      }
      return parts.length === 1 ? parts[0]! : concatBytes(parts);
    };
    return {
      read,
      buffer,
      bytes: async () => (await buffer(Infinity)) ?? concatBytes(await readAll(read)),
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

  async #writeAll(parts: readonly Uint8Array[]): Promise<void> {
    for (const bytes of parts) {
      let offset = 0;
      while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
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
