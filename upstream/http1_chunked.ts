/**
 * Decodes chunked response bodies (RFC 9112 section 7.1) incrementally, on the connection's
 * buffer without copying. Chunk sizes are read by value (leading zeros are fine) up to
 * {@link MAX_CHUNK_SIZE}; lines may end in CRLF or a bare LF; trailers are read and dropped, up
 * to {@link MAX_TRAILER_BYTES}.
 *
 * @module
 */
import { ProtocolError, quote } from "./http1_parse.ts";

/** Largest chunk size accepted (2^48 - 1 bytes: beyond anything real, exact in a double). */
export const MAX_CHUNK_SIZE = 2 ** 48 - 1;
/** Longest chunk-size or trailer line accepted. */
const MAX_LINE = 4096;
/** Most trailer bytes accepted after the last chunk. */
const MAX_TRAILER_BYTES = 64 * 1024;

const CR = 13;
const LF = 10;
const SEMICOLON = 59;

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
  #trailerBytes = 0;
  #failure: ProtocolError | undefined;

  /** True once the final chunk and trailers were read. */
  get done(): boolean {
    return this.#state === "done";
  }

  /**
   * Throws the fault found after payload the last {@link ChunkedDecoder.decode} returned.
   *
   * @throws ProtocolError when there was one.
   */
  throwIfFailed(): void {
    if (this.#failure) throw this.#failure;
  }

  /**
   * Decodes as much of `bytes` as is complete.
   *
   * @param bytes The buffered bytes (from the current read position).
   * @returns How many bytes were consumed, and the payload they held.
   * @throws ProtocolError on a malformed chunk.
   */
  decode(bytes: Uint8Array): DecodeResult {
    if (this.#failure) throw this.#failure;
    const payload: Uint8Array[] = [];
    let pos: number;
    try {
      pos = this.#decode(bytes, payload);
    } catch (error) {
      // Payload before the fault is passed on first; the fault comes with the next call.
      if (!(error instanceof ProtocolError) || payload.length === 0) throw error;
      this.#failure = error;
      pos = bytes.length;
    }
    return { consumed: pos, payload };
  }

  #decode(bytes: Uint8Array, payload: Uint8Array[]): number {
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
        if (bytes.length - pos > MAX_LINE) {
          throw new ProtocolError("sent a chunk-size or trailer line longer than 4096 bytes");
        }
        break;
      }
      // The line without its CR, read byte by byte (no text decoding per chunk).
      const end = lineEnd > pos && bytes[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
      const start = pos;
      pos = lineEnd + 1;
      if (this.#state === "data_end") {
        if (end !== start) throw new ProtocolError("sent chunk data longer than its chunk size");
        this.#state = "size";
      } else if (this.#state === "size") {
        this.#remaining = chunkSize(bytes, start, end);
        this.#state = this.#remaining === 0 ? "trailer" : "data";
      } else if (end === start) {
        this.#state = "done";
      } else {
        this.#trailerBytes += pos - start;
        if (this.#trailerBytes > MAX_TRAILER_BYTES) {
          throw new ProtocolError(`sent trailers larger than ${MAX_TRAILER_BYTES} bytes`);
        }
      }
    }
    return pos;
  }
}

/**
 * Parses a chunk-size line: hex digits (by value), then optional whitespace and extensions
 * (`;...`, without control bytes other than HTAB).
 */
function chunkSize(bytes: Uint8Array, start: number, end: number): number {
  let size = 0;
  let i = start;
  for (; i < end; i++) {
    const digit = hexValue(bytes[i]!);
    if (digit < 0) break;
    size = size * 16 + digit;
    if (size > MAX_CHUNK_SIZE) {
      throw new ProtocolError(
        `sent a chunk size above ${MAX_CHUNK_SIZE} ${lineOf(bytes, start, end)}`,
      );
    }
  }
  const digits = i - start;
  while (i < end && (bytes[i] === 32 || bytes[i] === 9)) i++;
  let valid = digits > 0 && (i === end || bytes[i] === SEMICOLON);
  for (let j = i; valid && j < end; j++) {
    const byte = bytes[j]!;
    if ((byte < 32 && byte !== 9) || byte === 127) valid = false;
  }
  if (!valid) throw new ProtocolError(`sent a malformed chunk size ${lineOf(bytes, start, end)}`);
  return size;
}

function lineOf(bytes: Uint8Array, start: number, end: number): string {
  return quote(String.fromCharCode(...bytes.subarray(start, Math.min(end, start + 64))));
}

function hexValue(byte: number): number {
  if (byte >= 48 && byte <= 57) return byte - 48;
  if (byte >= 97 && byte <= 102) return byte - 87;
  if (byte >= 65 && byte <= 70) return byte - 55;
  return -1;
}
