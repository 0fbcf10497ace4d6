/**
 * The SSE side of `bench/common/upstream.ts`: precomputed chunk bytes (framed for chunked transfer
 * encoding) and one ticker that writes every open stream's chunks on time.
 *
 * @module
 */
import { writeAll } from "./upstream_http.ts";

const encoder = new TextEncoder();
const CREATED = 1_700_000_000;

/** One SSE event framed as an HTTP chunk. */
function sseChunk(delta: Record<string, string>, finish: string | null): string {
  const event = `data: ${
    JSON.stringify({
      id: "chatcmpl-bench",
      object: "chat.completion.chunk",
      created: CREATED,
      model: "bench",
      choices: [{ index: 0, delta, finish_reason: finish }],
    })
  }\n\n`;
  return `${encoder.encode(event).length.toString(16)}\r\n${event}\r\n`;
}

const SSE_HEAD =
  "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n" +
  "transfer-encoding: chunked\r\n";
const FIRST = sseChunk({ role: "assistant", content: "" }, null);
/** Token chunks differ (`t1 `, `t2 `, ...): LiteLLM cuts a stream that repeats one chunk 100 times. */
const TOKENS: Uint8Array[] = [];

function token(k: number): Uint8Array {
  while (TOKENS.length <= k) {
    TOKENS.push(encoder.encode(sseChunk({ content: `t${TOKENS.length} ` }, null)));
  }
  return TOKENS[k]!;
}
const DONE_EVENT = "data: [DONE]\n\n";
const LAST = encoder.encode(
  sseChunk({}, "stop") + `${DONE_EVENT.length.toString(16)}\r\n${DONE_EVENT}\r\n0\r\n\r\n`,
);
/** The response head with the first chunk, for keep-alive and closing connections. */
export const OPEN = {
  keep: encoder.encode(`${SSE_HEAD}\r\n${FIRST}`),
  close: encoder.encode(`${SSE_HEAD}connection: close\r\n\r\n${FIRST}`),
};

/** One SSE answer in progress. */
export interface Sse {
  conn: Deno.Conn;
  /** Chunks written so far (the first with the head). */
  sent: number;
  /** When the next chunk is due (performance.now() milliseconds). */
  due: number;
  /** Chunks still to send after the first. */
  left: number;
  /** A write in flight. */
  writing: boolean;
  /** Settles when the answer is written or failed. */
  done: PromiseWithResolvers<void>;
}

/**
 * Sends every stream's chunks from one 1 ms ticker: a timer per chunk would cost more than the
 * socket write (Deno's `setTimeout` is ~7 us, a 50,000 chunks/s budget of a third of a core).
 * Chunks leave within ~1 ms of their due time.
 */
export class Ticker {
  #buckets = new Map<number, Sse[]>();
  #next = Math.floor(performance.now());
  #active = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #intervalMs: number;

  /** @param intervalMs Milliseconds between chunks. */
  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Milliseconds between chunks. */
  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Starts sending a stream's chunks after the first. */
  add(sse: Sse): void {
    this.#active++;
    this.#schedule(sse);
    this.#timer ??= setInterval(() => this.#tick(), 1);
  }

  #schedule(sse: Sse): void {
    const key = Math.max(Math.ceil(sse.due), this.#next);
    const bucket = this.#buckets.get(key);
    if (bucket) bucket.push(sse);
    else this.#buckets.set(key, [sse]);
  }

  #finish(sse: Sse, error?: unknown): void {
    this.#active--;
    if (error === undefined) sse.done.resolve();
    else sse.done.reject(error);
  }

  #tick(): void {
    const upto = Math.floor(performance.now());
    if (this.#buckets.size === 0) this.#next = upto + 1;
    while (this.#next <= upto) {
      const key = this.#next++; // before sending, so anything rescheduled lands after `key`
      const bucket = this.#buckets.get(key);
      if (!bucket) continue;
      this.#buckets.delete(key);
      for (const sse of bucket) this.#send(sse);
    }
    if (this.#active === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #send(sse: Sse): void {
    if (sse.left < 0) return; // a write failed: the client left
    if (sse.writing) { // the previous chunk is still being written: try again next tick
      sse.due = this.#next;
      this.#schedule(sse);
      return;
    }
    sse.left--;
    sse.sent++;
    const last = sse.left === 0;
    sse.writing = true;
    writeAll(sse.conn, last ? LAST : token(sse.sent)).then(() => {
      sse.writing = false;
      if (last) this.#finish(sse);
    }, (error) => {
      if (!last) sse.left = -1; // dropped below: no more chunks
      this.#finish(sse, error);
    });
    if (!last) {
      sse.due += this.#intervalMs;
      this.#schedule(sse);
    }
  }
}
