/**
 * A fast fixed-response OpenAI-compatible upstream for the proxy benchmark: every answer is
 * precomputed bytes, so the upstream costs as little as Deno's HTTP server allows.
 *
 * - `POST /v1/chat/completions`, `/v1/completions`: a fixed chat completion (~400 bytes); with
 *   `"stream": true` in the body, SSE with `--chunks` chunks, the first at once and then one every
 *   `--interval-ms` (scheduled on absolute times, so gaps do not drift), then `data: [DONE]`.
 * - `GET /health`, `/v1/models` (model `bench`), `/metrics` (a minimal vLLM exposition).
 *
 * Run: `deno run --allow-net bench/upstream.ts --port 9100 [--chunks 200] [--interval-ms 20]`.
 * Prints `listening <url>` once ready.
 *
 * @module
 */
import { parseArgs } from "node:util";

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

const encoder = new TextEncoder();
const CREATED = 1_700_000_000;

const COMPLETION = encoder.encode(JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: CREATED,
  model: "bench",
  choices: [{
    index: 0,
    message: { role: "assistant", content: "Hello! This is a fixed answer from the bench upstream." },
    finish_reason: "stop",
  }],
  usage: { prompt_tokens: 12, completion_tokens: 12, total_tokens: 24 },
}));

function chunk(delta: Record<string, string>, finish: string | null): Uint8Array {
  const body = {
    id: "chatcmpl-bench",
    object: "chat.completion.chunk",
    created: CREATED,
    model: "bench",
    choices: [{ index: 0, delta, finish_reason: finish }],
  };
  return encoder.encode(`data: ${JSON.stringify(body)}\n\n`);
}

const FIRST_CHUNK = chunk({ role: "assistant", content: "" }, null);
const TOKEN_CHUNK = chunk({ content: "tok " }, null);
const LAST_CHUNK = chunk({}, "stop");
const DONE = encoder.encode("data: [DONE]\n\n");
const MODELS = encoder.encode(JSON.stringify({
  object: "list",
  data: [{ id: "bench", object: "model", created: CREATED, owned_by: "bench" }],
}));
const METRICS = encoder.encode(
  [
    "# TYPE vllm:num_requests_running gauge",
    'vllm:num_requests_running{model_name="bench"} 0.0',
    "# TYPE vllm:num_requests_waiting gauge",
    'vllm:num_requests_waiting{model_name="bench"} 0.0',
    "# TYPE vllm:kv_cache_usage_perc gauge",
    'vllm:kv_cache_usage_perc{model_name="bench"} 0.0',
    "",
  ].join("\n"),
);

const JSON_HEADERS = { "content-type": "application/json" };
const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache" };

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

/** A streamed answer: `chunks` SSE chunks on an absolute schedule, then `[DONE]`. */
function sseBody(chunks: number, intervalMs: number): ReadableStream<Uint8Array> {
  const start = performance.now();
  let sent = 0;
  let timer: number | undefined;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      function tick(): void {
        timer = undefined;
        try {
          sent++;
          if (sent === 1) controller.enqueue(FIRST_CHUNK);
          else if (sent < chunks) controller.enqueue(TOKEN_CHUNK);
          else {
            controller.enqueue(LAST_CHUNK);
            controller.enqueue(DONE);
            controller.close();
            return;
          }
        } catch {
          return; // the client left
        }
        const delay = start + sent * intervalMs - performance.now();
        timer = setTimeout(tick, Math.max(0, delay));
      }
      tick();
    },
    cancel() {
      if (timer !== undefined) clearTimeout(timer);
    },
  });
}

/**
 * Starts the upstream.
 *
 * @param options Port, address and SSE shape.
 * @returns The Deno server.
 */
export function startUpstream(options: UpstreamOptions): Deno.HttpServer<Deno.NetAddr> {
  const chunks = Math.max(1, options.chunks ?? 200);
  const intervalMs = options.intervalMs ?? 20;
  return Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port,
    onListen() {},
  }, async (request) => {
    const url = request.url;
    const path = url.slice(url.indexOf("/", url.indexOf("//") + 2)).split("?")[0] ?? "/";
    if (request.method === "POST" && path.endsWith("/completions")) {
      const text = await request.text();
      if (wantsStream(text)) {
        return new Response(sseBody(chunks, intervalMs), { headers: SSE_HEADERS });
      }
      return new Response(COMPLETION, { headers: JSON_HEADERS });
    }
    if (path === "/health") return new Response(null, { status: 200 });
    if (path === "/v1/models" || path === "/models") {
      return new Response(MODELS, { headers: JSON_HEADERS });
    }
    if (path === "/metrics") return new Response(METRICS, { headers: { "content-type": "text/plain" } });
    if (request.body) await request.body.cancel();
    return new Response(JSON.stringify({ error: { message: `Unknown path "${path}"` } }), {
      status: 404,
      headers: JSON_HEADERS,
    });
  });
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
  const server = startUpstream({
    port: Number(values.port),
    hostname: values.host,
    chunks: Number(values.chunks),
    intervalMs: Number(values["interval-ms"]),
  });
  console.log(`listening http://${server.addr.hostname}:${server.addr.port}`);
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
}
