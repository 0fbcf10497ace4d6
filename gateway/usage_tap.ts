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

/** Collects one answer's usage from its body chunks. */
export class UsageTap {
  #sse: boolean;
  #pending = "";
  #chunks: Uint8Array[] = [];
  #size = 0;
  #usage: TokenUsage | undefined;

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
    if (!this.#sse) {
      this.#size += chunk.byteLength;
      if (this.#size <= MAX_JSON_BYTES) this.#chunks.push(chunk);
      return;
    }
    const text = this.#pending + decoder.decode(chunk, { stream: true });
    let start = 0;
    for (;;) {
      const end = text.indexOf("\n\n", start);
      if (end < 0) break;
      this.#event(text.slice(start, end));
      start = end + 2;
    }
    this.#pending = text.slice(start);
    if (this.#pending.length > MAX_JSON_BYTES) this.#pending = "";
  }

  /**
   * Returns the usage found, reading a kept JSON body now.
   *
   * @returns The usage, or `undefined`.
   */
  finish(): TokenUsage | undefined {
    if (!this.#sse && this.#usage === undefined && this.#size <= MAX_JSON_BYTES) {
      const bytes = new Uint8Array(this.#size);
      let offset = 0;
      for (const chunk of this.#chunks) {
        bytes.set(chunk, offset);
        offset += chunk.byteLength;
      }
      this.#chunks = [];
      try {
        this.#usage = usageOf(JSON.parse(decoder.decode(bytes)));
      } catch {
        // Not JSON: no usage.
      }
    }
    return this.#usage;
  }

  #event(event: string): void {
    if (!event.includes('"usage"')) return;
    const data = event.startsWith("data: ") ? event.slice(6) : event.replace(/^data:/, "");
    try {
      this.#usage = usageOf(JSON.parse(data)) ?? this.#usage;
    } catch {
      // A malformed event carries no usage.
    }
  }
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
