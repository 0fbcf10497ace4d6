/**
 * Reads one response body from an {@link Http1Connection}: by declared length, chunked, or
 * until the server closes, only when asked (so the server is read at the client's pace), with
 * at most one buffer of it held. `buffer(limit)` reads a body whole when it is short, without
 * ever allocating from a declared length above the limit.
 *
 * @module
 */
import type { Http1Connection } from "./http1_connection.ts";
import { ChunkedDecoder } from "./http1_chunked.ts";
import type { ResponseHead } from "./http1_parse.ts";
import { concatBytes } from "../common/bytes.ts";

/** Largest buffer for reading a body. */
const BODY_BUFFER_BYTES = 64 * 1024;
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

/** What {@link bodyReader} reads. */
export interface BodyOptions {
  /** The response head. */
  head: ResponseHead;
  /** Called once when the body ends or fails; `reusable` says whether the connection can carry another request. */
  onDone(reusable: boolean): void;
}

/**
 * The body of a response whose head was read from `connection`.
 *
 * @param connection The connection.
 * @param options The head and the end callback.
 * @returns The body reader.
 */
export function bodyReader(connection: Http1Connection, options: BodyOptions): UpstreamBody {
  return new BodyReader(connection, options);
}

/** One body; a class rather than closures: one object per response on the hot path. */
class BodyReader implements UpstreamBody {
  readonly #connection: Http1Connection;
  readonly #head: ResponseHead;
  readonly #onDone: (reusable: boolean) => void;
  readonly #decoder: ChunkedDecoder | undefined;
  #finished = false;
  #remaining: number;
  /** Bytes `buffer()` read before finding the body too long; `read()` returns them first. */
  #held: Uint8Array<ArrayBuffer> | undefined;

  constructor(connection: Http1Connection, options: BodyOptions) {
    this.#connection = connection;
    this.#head = options.head;
    this.#onDone = options.onDone;
    this.#remaining = options.head.length;
    this.#decoder = options.head.framing === "chunked" ? new ChunkedDecoder() : undefined;
  }

  async read(): Promise<Uint8Array<ArrayBuffer> | undefined> {
    if (this.#held) {
      const out = this.#held;
      this.#held = undefined;
      return out;
    }
    const connection = this.#connection;
    const framing = this.#head.framing;
    const decoder = this.#decoder;
    try {
      for (;;) {
        if (this.#finished) return undefined;
        if (framing === "none" || (framing === "length" && this.#remaining === 0)) {
          this.#finish(true);
          return undefined;
        }
        if (decoder) {
          if (decoder.done) {
            this.#finish(true);
            return undefined;
          }
          decoder.throwIfFailed();
        }
        if (connection.buffered > 0) {
          if (decoder) {
            const { consumed, payload } = decoder.decode(connection.view());
            connection.consume(consumed);
            // Copied before the connection may go back to the pool, whose idle read reuses
            // the buffer the payload views point into.
            const copy = payload.length > 0 ? joinCopy(payload) : undefined;
            if (decoder.done) this.#finish(true);
            if (copy) return copy;
            if (consumed > 0) continue;
          } else {
            const take = framing === "length"
              ? Math.min(this.#remaining, connection.buffered)
              : connection.buffered;
            const copy = connection.view().slice(0, take);
            connection.consume(take);
            this.#remaining -= take;
            if (framing === "length" && this.#remaining === 0) this.#finish(true);
            return copy;
          }
        }
        if (!(await connection.more(BODY_BUFFER_BYTES))) {
          if (framing === "close") {
            this.#finish(true);
            return undefined;
          }
          throw new UpstreamClosed("The server closed the connection before the end of the body");
        }
      }
    } catch (error) {
      this.#finish(false);
      throw error;
    }
  }

  buffer(limit: number): Promise<Uint8Array<ArrayBuffer> | undefined> {
    if (this.#head.framing === "length" && !this.#held) {
      const remaining = this.#remaining;
      return remaining <= limit && remaining <= MAX_PREALLOCATE
        ? this.#readLength()
        : Promise.resolve(undefined);
    }
    return this.#bufferParts(limit);
  }

  async bytes(): Promise<Uint8Array<ArrayBuffer>> {
    return (await this.buffer(Infinity)) ?? concatBytes(await readAll(this));
  }

  cancel(): void {
    this.#finish(false);
  }

  #finish(complete: boolean): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#onDone(this.#connection.settle(complete, this.#head.keepAlive));
  }

  /** Reads a declared length whole into one array: one allocation, no copies of parts. */
  async #readLength(): Promise<Uint8Array<ArrayBuffer>> {
    const connection = this.#connection;
    const out = new Uint8Array(this.#remaining);
    try {
      const buffered = Math.min(out.length, connection.buffered);
      out.set(connection.view().subarray(0, buffered));
      connection.consume(buffered);
      let offset = buffered;
      while (offset < out.length) {
        const n = await connection.readInto(out.subarray(offset));
        if (n === null) {
          throw new UpstreamClosed("The server closed the connection before the end of the body");
        }
        offset += n;
      }
    } catch (error) {
      this.#finish(false);
      throw error;
    }
    this.#remaining = 0;
    this.#finish(true);
    return out;
  }

  async #bufferParts(limit: number): Promise<Uint8Array<ArrayBuffer> | undefined> {
    const parts: Uint8Array<ArrayBuffer>[] = [];
    let size = 0;
    for (let part = await this.read(); part !== undefined; part = await this.read()) {
      parts.push(part);
      size += part.byteLength;
      if (size > limit) {
        this.#held = concatBytes(parts);
        return undefined;
      }
    }
    return parts.length === 1 ? parts[0]! : concatBytes(parts);
  }
}

async function readAll(body: UpstreamBody): Promise<Uint8Array<ArrayBuffer>[]> {
  const parts: Uint8Array<ArrayBuffer>[] = [];
  for (let part = await body.read(); part !== undefined; part = await body.read()) parts.push(part);
  return parts;
}

function joinCopy(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  if (parts.length === 1) return parts[0]!.slice() as Uint8Array<ArrayBuffer>;
  return concatBytes(parts);
}
