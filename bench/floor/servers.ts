/**
 * The small servers `bench/floor/main.ts` measures, one per process: what `Deno.serve` itself
 * costs, so the gateway's figures can be read against the runtime's floor.
 *
 * - `answer --bytes N`: `Deno.serve` answering every request with a fixed JSON answer whose
 *   response (head and body) is N bytes.
 * - `proxy --upstream URL [--headers]`: `Deno.serve` forwarding to the upstream through the
 *   gateway's HTTP/1.1 pool; with `--headers`, it also reads the client's headers, forwards them
 *   and adds the gateway's three response headers, as the gateway does.
 * - `raw-proxy --upstream URL`: the same as `proxy --headers`, with HTTP/1.1 parsed by hand on a
 *   `Deno.listen` socket instead of `Deno.serve`.
 * - `streams`: `Deno.serve` answering JSON requests with `{}` and SSE requests
 *   (`"stream": true`) with a stream that never sends a byte.
 *
 * Run: `deno run -A bench/floor/servers.ts MODE --port P [...]`; prints `listening` when ready.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Http1Pool } from "../../upstream/http1_pool.ts";
import { findHeadEnd } from "../../upstream/http1_parse.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const PATH = "/v1/chat/completions";
const OWN_HEADERS = (upstream: string): [string, string][] => [
  ["x-request-id", crypto.randomUUID()],
  ["x-llmstream-server", upstream],
  ["x-llmstream-attempts", "1"],
];

/** A JSON body that makes `Deno.serve`'s response exactly `total` bytes long. */
function answerOfSize(total: number): Uint8Array<ArrayBuffer> {
  const date = new Date().toUTCString();
  const head = (length: number) =>
    `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n` +
    `date: ${date}\r\n\r\n`;
  let bodyLength = total - head(100).length;
  if (head(bodyLength).length + bodyLength !== total) bodyLength = total - head(bodyLength).length;
  const filler = "x".repeat(Math.max(0, bodyLength - '{"pad":""}'.length));
  return encoder.encode(`{"pad":"${filler}"}`);
}

function serveAnswer(port: number, total: number): void {
  const body = answerOfSize(total);
  Deno.serve({ hostname: "127.0.0.1", port, onListen: () => console.log("listening") }, async (
    request,
  ) => {
    await request.bytes();
    return new Response(body, { headers: { "content-type": "application/json" } });
  });
}

function serveProxy(port: number, upstream: string, withHeaders: boolean): void {
  const pool = new Http1Pool(upstream);
  Deno.serve({ hostname: "127.0.0.1", port, onListen: () => console.log("listening") }, async (
    request,
  ) => {
    const body = await request.bytes();
    const headers: [string, string][] = [["content-type", "application/json"]];
    if (withHeaders) {
      headers.length = 0;
      for (const [name, value] of request.headers) {
        if (name !== "host" && name !== "content-length") headers.push([name, value]);
      }
    }
    const call = pool.send({ method: "POST", path: PATH, headers, body }, {
      connectTimeoutMs: 5000,
    });
    const answer = await call.response;
    const bytes = await answer.body!.bytes();
    return new Response(bytes, {
      status: answer.status,
      headers: withHeaders
        ? [["content-type", "application/json"], ...OWN_HEADERS(upstream)]
        : [["content-type", "application/json"]],
    });
  });
}

/** HTTP/1.1 by hand: keep-alive requests with a content-length, answered in one write each. */
async function serveRaw(port: number, upstream: string): Promise<void> {
  const pool = new Http1Pool(upstream);
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  console.log("listening");
  for await (const conn of listener) {
    conn.setNoDelay(true);
    void rawConnection(conn, pool, upstream);
  }
}

async function rawConnection(conn: Deno.Conn, pool: Http1Pool, upstream: string): Promise<void> {
  let buffer = new Uint8Array(16 * 1024);
  let have = 0;
  try {
    for (;;) {
      if (have === buffer.length) {
        const grown = new Uint8Array(buffer.length * 2);
        grown.set(buffer);
        buffer = grown;
      }
      const n = await conn.read(buffer.subarray(have));
      if (n === null) return;
      have += n;
      for (;;) {
        const end = findHeadEnd(buffer, { start: 0, end: have });
        if (end < 0) break;
        const lines = decoder.decode(buffer.subarray(0, end - 4)).split("\r\n");
        const headers: [string, string][] = [];
        let length = 0;
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(":");
          const name = line.slice(0, colon).toLowerCase();
          const value = line.slice(colon + 1).trim();
          if (name === "content-length") length = Number(value);
          else if (name !== "host" && name !== "connection") headers.push([name, value]);
        }
        if (have < end + length) break;
        const body = buffer.slice(end, end + length);
        buffer.copyWithin(0, end + length, have);
        have -= end + length;
        const answer = await pool.send({ method: "POST", path: PATH, headers, body }, {
          connectTimeoutMs: 5000,
        }).response;
        const bytes = await answer.body!.bytes();
        let head = `HTTP/1.1 ${answer.status} OK\r\n`;
        for (const [name, value] of [...answer.headers, ...OWN_HEADERS(upstream)]) {
          if (name !== "content-length" && name !== "connection") head += `${name}: ${value}\r\n`;
        }
        head += `content-length: ${bytes.byteLength}\r\n\r\n`;
        const out = new Uint8Array(head.length + bytes.byteLength);
        encoder.encodeInto(head, out);
        out.set(bytes, head.length);
        for (let written = 0; written < out.length;) {
          written += await conn.write(out.subarray(written));
        }
      }
    }
  } catch {
    // The client went away.
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

function serveStreams(port: number): void {
  Deno.serve({ hostname: "127.0.0.1", port, onListen: () => console.log("listening") }, async (
    request,
  ) => {
    const text = await request.text();
    if (!text.includes('"stream":true')) return new Response("{}");
    const never = new ReadableStream<Uint8Array>({
      pull: () => new Promise<void>(() => {}),
    }, { highWaterMark: 0 });
    return new Response(never, { headers: { "content-type": "text/event-stream" } });
  });
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      port: { type: "string" },
      bytes: { type: "string", default: "512" },
      upstream: { type: "string" },
      headers: { type: "boolean", default: false },
    },
  });
  const port = Number(values.port);
  const mode = positionals[0];
  if (mode === "answer") serveAnswer(port, Number(values.bytes));
  else if (mode === "proxy") serveProxy(port, values.upstream!, values.headers);
  else if (mode === "raw-proxy") await serveRaw(port, values.upstream!);
  else if (mode === "streams") serveStreams(port);
  else {
    console.error("Usage: floor_servers.ts answer|proxy|raw-proxy|streams --port P [...]");
    Deno.exit(2);
  }
}
