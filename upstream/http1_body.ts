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
  const { head, onDone } = options;
  let finished = false;
  const finish = (complete: boolean): void => {
    if (finished) return;
    finished = true;
    onDone(connection.settle(complete, head.keepAlive));
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
        if (connection.buffered > 0) {
          if (decoder) {
            const { consumed, payload } = decoder.decode(
              connection.view(),
            );
            connection.consume(consumed);
            // Copied before the connection may go back to the pool, whose idle read reuses
            // the buffer the payload views point into.
            const copy = payload.length > 0 ? joinCopy(payload) : undefined;
            if (decoder.done) finish(true);
            if (copy) return copy;
            if (consumed > 0) continue;
          } else {
            const take = head.framing === "length"
              ? Math.min(remaining, connection.buffered)
              : connection.buffered;
            const copy = connection.view().slice(0, take);
            connection.consume(take);
            remaining -= take;
            if (head.framing === "length" && remaining === 0) finish(true);
            return copy;
          }
        }
        if (!(await connection.more(BODY_BUFFER_BYTES))) {
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
      const buffered = Math.min(remaining, connection.buffered);
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
