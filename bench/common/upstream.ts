/**
 * A fast fixed-response OpenAI-compatible upstream for the proxy benchmark.
 *
 * It speaks HTTP/1.1 straight over TCP (keep-alive, `content-length` or chunked request bodies,
 * `Expect: 100-continue`) and answers with precomputed bytes, so one SSE chunk costs one socket
 * write. That keeps it far cheaper than any proxy in front of it: `Deno.serve` with a
 * `ReadableStream` costs several times more per SSE chunk, too much to share a core with the load
 * generator at 50,000 chunks a second.
 *
 * - `POST .../completions`: a fixed chat completion (~400 bytes); with `"stream": true` in the body,
 *   SSE with `--chunks` chunks, the first at once and then one every `--interval-ms` (scheduled on
 *   absolute times, so gaps do not drift), then `data: [DONE]`.
 * - `GET /health`, `/v1/models` (model `bench`), `/metrics` (a minimal vLLM exposition).
 *
 * Run: `deno run --allow-net bench/common/upstream.ts --port 9100 [--chunks 200] [--interval-ms 20]`.
 * Prints `listening <url>` once ready.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { readRequest, writeAll } from "./upstream_http.ts";
import { OPEN, type Sse, Ticker } from "./upstream_sse.ts";

/** What the upstream serves. */
export interface UpstreamOptions {
  /** Port (0 picks a free one). */
  port: number;
  /** Address (default 127.0.0.1). */
  hostname?: string;
  /** SSE chunks per streamed answer (default 200). */
  chunks?: number;
  /** Milliseconds between SSE chunks (default 20). */
  intervalMs?: number;
}

/** A running upstream. */
export interface Upstream {
  /** Base URL, e.g. `http://127.0.0.1:9100`. */
  readonly url: string;
  /** Stops listening and closes open connections. */
  close(): void;
}

const encoder = new TextEncoder();
const CREATED = 1_700_000_000;

const COMPLETION = JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: CREATED,
  model: "bench",
  choices: [{
    index: 0,
    message: {
      role: "assistant",
      content: "Hello! This is a fixed answer from the bench upstream.",
    },
    finish_reason: "stop",
  }],
  usage: { prompt_tokens: 12, completion_tokens: 12, total_tokens: 24 },
});
const MODELS = JSON.stringify({
  object: "list",
  data: [{ id: "bench", object: "model", created: CREATED, owned_by: "bench" }],
});
const METRICS = [
  "# TYPE vllm:num_requests_running gauge",
  'vllm:num_requests_running{model_name="bench"} 0.0',
  "# TYPE vllm:num_requests_waiting gauge",
  'vllm:num_requests_waiting{model_name="bench"} 0.0',
  "# TYPE vllm:kv_cache_usage_perc gauge",
  'vllm:kv_cache_usage_perc{model_name="bench"} 0.0',
  "",
].join("\n");

/** A whole response with `content-length`, as bytes; `close` adds `connection: close`. */
function fixed(status: string, type: string, body: string, close: boolean): Uint8Array {
  const bytes = encoder.encode(body);
  return encoder.encode(
    `HTTP/1.1 ${status}\r\ncontent-type: ${type}\r\ncontent-length: ${bytes.length}\r\n` +
      `${close ? "connection: close\r\n" : ""}\r\n${body}`,
  );
}

function both(status: string, type: string, body: string): [Uint8Array, Uint8Array] {
  return [fixed(status, type, body, false), fixed(status, type, body, true)];
}

const ANSWERS = {
  completion: both("200 OK", "application/json", COMPLETION),
  models: both("200 OK", "application/json", MODELS),
  metrics: both("200 OK", "text/plain; version=0.0.4", METRICS),
  health: both("200 OK", "text/plain", ""),
  notFound: both("404 Not Found", "application/json", '{"error":{"message":"Unknown path"}}'),
};

/** True when a JSON body asks for streaming (`"stream": true`), without a full parse. */
function wantsStream(text: string): boolean {
  let at = text.indexOf('"stream"');
  while (at >= 0) {
    let i = at + 8;
    while (text[i] === " " || text[i] === ":" || text[i] === "\n" || text[i] === "\t") i++;
    if (text.startsWith("true", i)) return true;
    at = text.indexOf('"stream"', at + 8);
  }
  return false;
}

const decoder = new TextDecoder();

async function serveConn(conn: Deno.TcpConn, chunks: number, ticker: Ticker): Promise<void> {
  conn.setNoDelay(true);
  const input = { buffer: new Uint8Array(64 * 1024), length: 0 };
  try {
    while (true) {
      const request = await readRequest(conn, input);
      if (!request) return;
      const pick = (answer: [Uint8Array, Uint8Array]) => answer[request.close ? 1 : 0];
      const path = request.path.split("?")[0] ?? "/";
      if (request.method === "POST" && path.endsWith("/completions")) {
        if (wantsStream(decoder.decode(request.body))) {
          const due = performance.now() + ticker.intervalMs;
          await writeAll(conn, request.close ? OPEN.close : OPEN.keep);
          const sse: Sse = {
            conn,
            due,
            sent: 1,
            left: chunks - 1,
            writing: false,
            done: Promise.withResolvers(),
          };
          ticker.add(sse);
          await sse.done.promise;
        } else await writeAll(conn, pick(ANSWERS.completion));
      } else if (path === "/health") await writeAll(conn, pick(ANSWERS.health));
      else if (path === "/v1/models" || path === "/models") {
        await writeAll(conn, pick(ANSWERS.models));
      } else if (path === "/metrics") await writeAll(conn, pick(ANSWERS.metrics));
      else await writeAll(conn, pick(ANSWERS.notFound));
      if (request.close) return;
    }
  } catch {
    // A client that leaves mid-answer, or a malformed request: drop the connection.
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

/**
 * Starts the upstream.
 *
 * @param options Port, address and SSE shape.
 * @returns The running upstream.
 */
export function startUpstream(options: UpstreamOptions): Upstream {
  const chunks = Math.max(2, options.chunks ?? 200);
  const intervalMs = options.intervalMs ?? 20;
  const listener = Deno.listen({ hostname: options.hostname ?? "127.0.0.1", port: options.port });
  const conns = new Set<Deno.Conn>();
  const ticker = new Ticker(intervalMs);
  (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        void serveConn(conn, chunks, ticker).finally(() => conns.delete(conn));
      }
    } catch {
      // listener closed
    }
  })();
  const addr = listener.addr;
  return {
    url: `http://${addr.hostname}:${addr.port}`,
    close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
    },
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "9100" },
      host: { type: "string", default: "127.0.0.1" },
      chunks: { type: "string", default: "200" },
      "interval-ms": { type: "string", default: "20" },
    },
  });
  const upstream = startUpstream({
    port: Number(values.port),
    hostname: values.host,
    chunks: Number(values.chunks),
    intervalMs: Number(values["interval-ms"]),
  });
  console.log(`listening ${upstream.url}`);
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
}
