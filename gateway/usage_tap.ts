/**
 * Reads token usage from an answer on the side, without delaying it: SSE events are scanned for a
 * `usage` object (only events that mention it are parsed), a JSON body is kept up to a limit and
 * parsed at the end.
 *
 * @module
 */
import type { TokenUsage } from "../plugins/types.ts";

/** Largest JSON body kept for reading its usage. */
const MAX_JSON_BYTES = 4 * 1024 * 1024;
const decoder = new TextDecoder();

/** Bytes of an SSE stream's tail kept to find its final usage event. */
const SSE_TAIL_BYTES = 16 * 1024;

/**
 * Collects one answer's usage from its body chunks. Per chunk it only keeps a reference: a JSON
 * body is kept whole (up to a limit) and an SSE stream's last 16 KiB, where servers put the usage
 * event; both are decoded once, at the end.
 */
export class UsageTap {
  #sse: boolean;
  #chunks: Uint8Array[] = [];
  #size = 0;
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
   * @param chunk The bytes, as they go to the client.
   */
  chunk(chunk: Uint8Array): void {
    this.#size += chunk.byteLength;
    if (!this.#sse) {
      if (this.#size <= MAX_JSON_BYTES) this.#chunks.push(chunk);
      return;
    }
    this.#chunks.push(chunk);
    while (this.#chunks.length > 1 && this.#size - this.#chunks[0]!.byteLength >= SSE_TAIL_BYTES) {
      this.#size -= this.#chunks.shift()!.byteLength;
    }
  }

  /**
   * Returns the usage found, reading the kept bytes on the first call.
   *
   * @returns The usage, or `undefined`.
   */
  finish(): TokenUsage | undefined {
    if (this.#finished) return this.#usage;
    this.#finished = true;
    if (!this.#sse && this.#size > MAX_JSON_BYTES) return undefined;
    const text = this.#chunks.length === 1
      ? decoder.decode(this.#chunks[0])
      : this.#chunks.map((chunk) => decoder.decode(chunk, { stream: true })).join("") +
        decoder.decode();
    this.#chunks = [];
    if (!this.#sse) {
      this.#usage = usageObjectOf(text);
      if (this.#usage !== undefined) return this.#usage;
      try {
        this.#usage = usageOf(JSON.parse(text));
      } catch {
        // Not JSON: no usage.
      }
      return this.#usage;
    }
    const events = text.split("\n\n");
    for (let i = events.length - 1; i >= 0 && this.#usage === undefined; i--) {
      const event = events[i]!;
      if (!event.includes('"usage"')) continue;
      try {
        this.#usage = usageOf(JSON.parse(event.replace(/^data: ?/, "")));
      } catch {
        // A cut or malformed event carries no usage.
      }
    }
    return this.#usage;
  }
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
