/**
 * The SSE side of the proxy benchmark's load client: many concurrent streams over raw TCP
 * (HTTP/1.1, `Connection: close`, chunked or close-delimited bodies), timing the first event and
 * the gaps between events.
 *
 * Raw sockets because `fetch` costs ~30 us per chunk, which would make the client, not the proxy,
 * the bottleneck at 50,000 chunks a second. Every stream's first event is timed; the gaps are timed
 * on a sample of streams (`gapSample`, default every 10th) that are read as soon as bytes arrive,
 * while the others are drained every `drainMs` so the load generator stays cheap. The proxy still
 * forwards every chunk of every stream as it arrives.
 *
 * @module
 */
import { summarize, type Summary } from "./stats.ts";

/** What a streaming run measured (milliseconds). */
export interface StreamResult {
  /** Streams started. */
  started: number;
  /** Streams that ended with `[DONE]`. */
  completed: number;
  /** Fewest SSE events a completed stream carried (the upstream sends `chunks` + 1). */
  fewestEvents: number | null;
  /** Streams that failed, answered other than 200, or missed the deadline. */
  errors: number;
  /** First error text seen, if any. */
  firstError?: string;
  /** Time from sending the request to the first SSE event, over every stream. */
  ttft: Summary;
  /** Time between consecutive SSE events of the sampled streams (0 for events read together). */
  gap: Summary;
  /** Wall time of the whole run. */
  elapsedMs: number;
}

/** What {@link streamRun} does. */
export interface StreamOptions {
  /** URL of the chat completions endpoint. */
  url: string;
  /** Extra request headers. */
  headers: Record<string, string>;
  /** The JSON body (with `"stream": true`). */
  body: string;
  /** Streams to open. */
  streams: number;
  /** Milliseconds over which the streams are opened, evenly. */
  rampMs: number;
  /** Seconds after which unfinished streams are cut and counted as errors. */
  deadlineS: number;
  /** Every n-th stream is read eagerly and has its gaps timed (default 10). */
  gapSample?: number;
  /** Milliseconds between reads of the other streams (default 100). */
  drainMs?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Incremental HTTP/1.1 response body reader that counts SSE event ends (`\n\n`). */
class EventCounter {
  events = 0;
  status = 0;
  #head = "";
  #inBody = false;
  #chunked = false;
  /** Chunked decoding: -1 reading a size line, >0 data bytes left, -2 the CRLF after data. */
  #left = -1;
  #size = "";
  #previous = 0;
  #tail = "";
  /** The first bytes of the body, for error reports. */
  bodyStart = "";

  /** Feeds bytes; returns how many events ended in them. */
  feed(bytes: Uint8Array): number {
    let i = 0;
    while (!this.#inBody && i < bytes.length) {
      this.#head += String.fromCharCode(bytes[i++]!);
      if (this.#head.endsWith("\r\n\r\n")) {
        const head = this.#head.toLowerCase();
        this.status = Number(head.slice(9, 12));
        this.#chunked = /\r\ntransfer-encoding:[^\r]*chunked/.test(head);
        this.#inBody = true;
      }
    }
    let ended = 0;
    const start = i;
    while (i < bytes.length) {
      const byte = bytes[i++]!;
      if (this.#chunked) {
        if (this.#left === -3) continue; // after the last chunk
        if (this.#left === -2) { // the CRLF after a chunk's data
          if (byte === 10) this.#left = -1;
          continue;
        }
        if (this.#left === -1) { // a chunk size line
          if (byte === 10) {
            this.#left = parseInt(this.#size, 16) || -3;
            this.#size = "";
          } else if (byte !== 13) this.#size += String.fromCharCode(byte);
          continue;
        }
        if (--this.#left === 0) this.#left = -2;
      }
      if (byte === 10 && this.#previous === 10) ended++;
      this.#previous = byte;
    }
    if (i > start && this.bodyStart.length < 200) {
      this.bodyStart += decoder.decode(bytes.subarray(start, start + 200 - this.bodyStart.length));
    }
    if (i > start) this.#tail = (this.#tail + decoder.decode(bytes.subarray(-24))).slice(-48);
    this.events += ended;
    return ended;
  }

  /** True when `data: [DONE]` was the last thing seen. */
  get done(): boolean {
    return this.#tail.includes("[DONE]");
  }
}

/**
 * Opens the streams and times them.
 *
 * @param options Target, load shape and deadline.
 * @returns What was measured.
 */
export async function streamRun(options: StreamOptions): Promise<StreamResult> {
  const url = new URL(options.url);
  const port = Number(url.port || 80);
  const extra = Object.entries(options.headers)
    .filter(([k]) =>
      !["content-type", "content-length", "connection", "host"].includes(k.toLowerCase())
    )
    .map(([k, v]) => `${k}: ${v}\r\n`).join("");
  const body = encoder.encode(options.body);
  const request = encoder.encode(
    `POST ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n` +
      `content-type: application/json\r\ncontent-length: ${body.length}\r\n` +
      `accept: text/event-stream\r\nconnection: close\r\n${extra}\r\n`,
  );
  const sample = options.gapSample ?? 10;
  const drainMs = options.drainMs ?? 100;
  const ttfts: number[] = [];
  const gaps: number[] = [];
  let completed = 0;
  let fewestEvents = Infinity;
  let errors = 0;
  let firstError: string | undefined;
  const deadline = performance.now() + options.deadlineS * 1000;
  const conns = new Set<Deno.TcpConn>();
  const timer = setTimeout(() => {
    for (const conn of conns) conn.close();
  }, options.deadlineS * 1000);

  async function one(eager: boolean): Promise<void> {
    let conn: Deno.TcpConn | undefined;
    const counter = new EventCounter();
    try {
      const sent = performance.now();
      conn = await Deno.connect({ hostname: url.hostname, port });
      conns.add(conn);
      conn.setNoDelay(true);
      await conn.write(request);
      await conn.write(body);
      const buffer = new Uint8Array(64 * 1024);
      let last = 0;
      while (true) {
        if (!eager && counter.events > 0) await sleep(drainMs);
        const n = await conn.read(buffer);
        if (n === null) break;
        const now = performance.now();
        const before = counter.events;
        const ended = counter.feed(buffer.subarray(0, n));
        if (ended === 0) continue;
        if (before === 0) ttfts.push(now - sent);
        if (eager) {
          if (before > 0) gaps.push(now - last);
          for (let k = 1; k < ended; k++) gaps.push(0);
        }
        last = now;
      }
      if (counter.status !== 200) {
        throw new Error(`status ${counter.status}: ${counter.bodyStart}`);
      }
      if (!counter.done) {
        throw new Error(
          performance.now() >= deadline
            ? "deadline passed"
            : `stream ended after ${counter.events} events`,
        );
      }
      completed++;
      fewestEvents = Math.min(fewestEvents, counter.events);
    } catch (error) {
      errors++;
      firstError ??= performance.now() >= deadline
        ? `deadline of ${options.deadlineS} s passed`
        : error instanceof Error
        ? error.message
        : String(error);
    } finally {
      if (conn) {
        conns.delete(conn);
        try {
          conn.close();
        } catch {
          // closed by the deadline
        }
      }
    }
  }

  const start = performance.now();
  const running: Promise<void>[] = [];
  for (let i = 0; i < options.streams; i++) {
    const due = start + (i * options.rampMs) / options.streams;
    const now = performance.now();
    if (due > now) await sleep(due - now);
    running.push(one(i % sample === 0));
  }
  await Promise.all(running);
  clearTimeout(timer);
  return {
    started: options.streams,
    completed,
    fewestEvents: Number.isFinite(fewestEvents) ? fewestEvents : null,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    ttft: summarize(ttfts),
    gap: summarize(gaps),
    elapsedMs: performance.now() - start,
  };
}
