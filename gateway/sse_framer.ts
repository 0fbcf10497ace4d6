/**
 * Passes an SSE stream on at event boundaries: a chunk is forwarded up to its last blank line and
 * the unfinished event after it is held (at most one, up to {@link MAX_EVENT_BYTES}) until its
 * end arrives. So when a stream breaks, everything the client got is whole events, and the
 * gateway's error event cannot be glued to half of one; an unfinished event at the end of a
 * stream is dropped, as a client would drop it. A server's usual chunk is whole events,
 * which pass through as they are, unchanged and uncopied.
 *
 * @module
 */
import { concatBytes } from "../common/bytes.ts";
import { ProtocolError } from "../upstream/http1_parse.ts";

/** Longest unfinished event held; a longer one is a broken stream. */
export const MAX_EVENT_BYTES = 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;

/** Cuts one SSE stream at event boundaries. */
export class SseFramer {
  #held: Uint8Array<ArrayBuffer> | undefined;

  /**
   * Takes the next chunk from the server.
   *
   * @param chunk The bytes (owned by the caller, not changed).
   * @returns The bytes to pass on now (whole events), or `undefined` when none ended yet.
   * @throws ProtocolError when an unfinished event grows past {@link MAX_EVENT_BYTES}.
   */
  push(chunk: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> | undefined {
    let bytes = chunk;
    if (this.#held !== undefined) {
      bytes = concatBytes([this.#held, chunk]);
      this.#held = undefined;
    }
    const cut = lastBoundary(bytes);
    if (cut === bytes.length) return bytes;
    if (bytes.length - cut > MAX_EVENT_BYTES) {
      throw new ProtocolError(`sent an SSE event longer than ${MAX_EVENT_BYTES} bytes`);
    }
    this.#held = bytes.slice(cut);
    return cut === 0 ? undefined : bytes.subarray(0, cut);
  }

  /**
   * Drops the unfinished event at the end of a stream: an SSE client drops it too (an event is
   * dispatched only at its blank line), and every event the client gets stays whole.
   *
   * @returns Whether an unfinished event was dropped.
   */
  drop(): boolean {
    const held = this.#held !== undefined;
    this.#held = undefined;
    return held;
  }
}

/**
 * The index just past the last blank line (an event's end: two line ends in a row, each CRLF,
 * LF or CR), or 0 when there is none.
 *
 * @param bytes The bytes.
 * @returns The index.
 */
export function lastBoundary(bytes: Uint8Array): number {
  for (let p = bytes.length - 1; p >= 1; p--) {
    const byte = bytes[p];
    if (byte === LF) {
      let q = p - 1;
      if (bytes[q] === CR) q--;
      if (q >= 0 && (bytes[q] === LF || bytes[q] === CR)) return p + 1;
    } else if (byte === CR) {
      const before = bytes[p - 1];
      if (before === LF || before === CR) return p + 1;
    }
  }
  return 0;
}
