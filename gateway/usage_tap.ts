/**
 * Reads token usage from an answer on the side, without delaying it: a JSON body is kept up to a
 * limit and its usage read at the end; an SSE stream is scanned as it passes, event by event, and
 * only an event that mentions `"usage"` is parsed.
 *
 * @module
 */
import type { TokenUsage } from "../plugins/types.ts";
import { concatBytes } from "../common/bytes.ts";

/** Largest JSON body kept for reading its usage. */
const MAX_JSON_BYTES = 4 * 1024 * 1024;
/** Largest unfinished SSE event kept; a longer one is skipped (usage events are small). */
const MAX_EVENT_BYTES = 1024 * 1024;
const decoder = new TextDecoder();
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const USAGE = new TextEncoder().encode('"usage"');

/**
 * Collects one answer's usage from its body chunks. A JSON body is kept whole (up to a limit) and
 * decoded once, at the end. An SSE stream keeps only the event not yet ended (usually nothing: a
 * server's chunk is usually whole events): per stream, holding the stream's tail cost ~75 KB of
 * small buffers, which 1,000 streams at `--log-level info` showed as +75 MB of peak memory.
 */
export class UsageTap {
  #sse: boolean;
  #chunks: Uint8Array[] = [];
  #size = 0;
  /** The last two bytes seen (an event boundary may span chunks). */
  #last = 0;
  #beforeLast = 0;
  #usage: TokenUsage | undefined;
  #finished = false;

  /**
   * Creates a tap for one answer.
   *
   * @param sse Whether the body is an SSE stream (else JSON).
   */
  constructor(sse: boolean) {
    this.#sse = sse;
  }

  /**
   * Looks at one body chunk.
   *
   * @param chunk The bytes, as they go to the client (not changed, and kept only while an event
   *   in them is unfinished).
   */
  chunk(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    if (!this.#sse) {
      this.#size += chunk.byteLength;
      if (this.#size <= MAX_JSON_BYTES) this.#chunks.push(chunk);
      return;
    }
    const end = eventsEnd(chunk, this.#beforeLast, this.#last);
    this.#beforeLast = chunk.byteLength > 1 ? chunk[chunk.byteLength - 2]! : this.#last;
    this.#last = chunk[chunk.byteLength - 1]!;
    if (end < 0) {
      this.#size += chunk.byteLength;
      if (this.#size <= MAX_EVENT_BYTES) this.#chunks.push(chunk);
      return;
    }
    // Whole events: what was kept and this chunk up to its last blank line.
    const ended = chunk.subarray(0, end);
    if (this.#size <= MAX_EVENT_BYTES) {
      const whole = this.#chunks.length === 0 ? ended : concatBytes([...this.#chunks, ended]);
      if (includesUsage(whole)) this.#read(whole);
    }
    this.#chunks = end < chunk.byteLength ? [chunk.subarray(end)] : [];
    this.#size = chunk.byteLength - end;
  }

  /** Bytes held now: a JSON body so far, or an SSE event not yet ended. */
  get keptBytes(): number {
    let bytes = 0;
    for (const chunk of this.#chunks) bytes += chunk.byteLength;
    return bytes;
  }

  /**
   * Returns the usage found, reading what is kept on the first call.
   *
   * @returns The usage, or `undefined`.
   */
  finish(): TokenUsage | undefined {
    if (this.#finished) return this.#usage;
    this.#finished = true;
    const kept = this.#chunks;
    this.#chunks = [];
    if (this.#sse) {
      // A last event without its blank line.
      const rest = kept.length === 1 ? kept[0]! : concatBytes(kept);
      if (this.#size <= MAX_EVENT_BYTES && includesUsage(rest)) this.#read(rest);
      return this.#usage;
    }
    if (this.#size > MAX_JSON_BYTES) return undefined;
    const text = kept.length === 1
      ? decoder.decode(kept[0])
      : kept.map((chunk) => decoder.decode(chunk, { stream: true })).join("") + decoder.decode();
    this.#usage = usageObjectOf(text);
    if (this.#usage !== undefined) return this.#usage;
    try {
      this.#usage = usageOf(JSON.parse(text));
    } catch {
      // Not JSON: no usage.
    }
    return this.#usage;
  }

  /** Reads the last event with a usage object among whole events; a later one replaces it. */
  #read(bytes: Uint8Array): void {
    const events = decoder.decode(bytes).split(/\r?\n\r?\n/);
    for (let i = events.length - 1; i >= 0; i--) {
      const event = events[i]!;
      if (!event.includes('"usage"')) continue;
      try {
        const usage = usageOf(JSON.parse(event.replace(/^data: ?/, "")));
        if (usage !== undefined) {
          this.#usage = usage;
          return;
        }
      } catch {
        // A malformed event carries no usage.
      }
    }
  }
}

/**
 * Where the whole events in a chunk end: just past its last blank line (`\n\n`, `\n\r\n`),
 * which may begin in the bytes before the chunk; -1 when the chunk ends no event.
 */
function eventsEnd(chunk: Uint8Array, beforeLast: number, last: number): number {
  for (let i = chunk.lastIndexOf(LF); i >= 0; i = i > 0 ? chunk.lastIndexOf(LF, i - 1) : -1) {
    // The byte before this line feed, skipping one carriage return.
    let j = i - 1;
    let before = j >= 0 ? chunk[j] : last;
    if (before === CR) {
      j--;
      before = j >= 0 ? chunk[j] : j === -1 ? last : beforeLast;
    }
    if (before === LF) return i + 1;
  }
  return -1;
}

/** Whether the bytes hold `"usage"` (found through the native search for its `u`). */
function includesUsage(bytes: Uint8Array): boolean {
  for (let i = bytes.indexOf(USAGE[1]!, 1); i >= 0; i = bytes.indexOf(USAGE[1]!, i + 1)) {
    if (bytes[i - 1] !== QUOTE || i + USAGE.length - 1 > bytes.length) continue;
    let k = 2;
    while (k < USAGE.length && bytes[i - 1 + k] === USAGE[k]) k++;
    if (k === USAGE.length) return true;
  }
  return false;
}

/**
 * The usage of a JSON answer read from its last `"usage": {...}` alone, without parsing the
 * whole answer (long answers are mostly text); `undefined` when that is not clear-cut, and the
 * caller parses everything.
 */
function usageObjectOf(text: string): TokenUsage | undefined {
  const key = text.lastIndexOf('"usage"');
  if (key <= 0 || text[key - 1] === "\\") return undefined;
  const start = text.indexOf("{", key);
  if (start < 0 || text.slice(key + 7, start).trim() !== ":") return undefined;
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const char = text[i];
    if (char === '"') {
      // Skip the string (keys, or any string value), escapes included.
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
    } else if (char === "{") depth++;
    else if (char === "}" && --depth === 0) {
      try {
        return usageOf({ usage: JSON.parse(text.slice(start, i + 1)) });
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function usageOf(body: unknown): TokenUsage | undefined {
  const usage = (body as { usage?: Record<string, unknown> } | null)?.usage;
  if (!usage || typeof usage !== "object") return undefined;
  const prompt = Number(usage["prompt_tokens"] ?? 0);
  const completion = Number(usage["completion_tokens"] ?? 0);
  if (!Number.isFinite(prompt) || !Number.isFinite(completion)) return undefined;
  const total = Number(usage["total_tokens"] ?? prompt + completion);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total };
}
