/**
 * One upstream HTTP client under load, for `bench/clients/main.ts`: sends small chat requests
 * at a fixed concurrency and prints `{"rps":…,"cpuS":…}` as one JSON line.
 *
 * Run: `deno run -A bench/clients/worker.ts URL CLIENT REQUESTS CONCURRENCY` where CLIENT is one of
 * {@link CLIENTS}.
 *
 * @module
 */
import http from "node:http";
import { Pool } from "undici";
import { Http1Pool } from "../../upstream/http1_pool.ts";

/** The clients compared. */
export const CLIENTS = ["fetch", "fetch-client", "node-http", "undici", "llmstream-http1"] as const;

/** One client: sends a request and resolves with the answer's size. */
type Send = () => Promise<number>;

const PATH = "/v1/chat/completions";
const body = new TextEncoder().encode(
  JSON.stringify({ model: "bench", messages: [{ role: "user", content: "Hello there" }] }),
);

function client(name: string, url: string): Send {
  const target = new URL(url);
  switch (name) {
    case "fetch":
      return async () => {
        const response = await fetch(url + PATH, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        return (await response.bytes()).byteLength;
      };
    case "fetch-client": {
      const pooled = Deno.createHttpClient({ poolMaxIdlePerHost: 256, http2: false });
      return async () => {
        const response = await fetch(url + PATH, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          client: pooled,
        });
        return (await response.bytes()).byteLength;
      };
    }
    case "node-http": {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
      return () =>
        new Promise((resolve, reject) => {
          const request = http.request({
            host: target.hostname,
            port: target.port,
            path: PATH,
            method: "POST",
            agent,
            headers: { "content-type": "application/json", "content-length": body.byteLength },
          }, (response) => {
            let size = 0;
            response.on("data", (chunk: Uint8Array) => size += chunk.byteLength);
            response.on("end", () => resolve(size));
            response.on("error", reject);
          });
          request.on("error", reject);
          request.end(body);
        });
    }
    case "undici": {
      const pool = new Pool(url, { connections: 256 });
      return async () => {
        const response = await pool.request({
          path: PATH,
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        return (await response.body.arrayBuffer()).byteLength;
      };
    }
    case "llmstream-http1": {
      const pool = new Http1Pool(url);
      return async () => {
        const call = pool.send({
          method: "POST",
          path: PATH,
          headers: [["content-type", "application/json"]],
          body,
        }, { connectTimeoutMs: 5000 });
        const response = await call.response;
        return (await response.body?.bytes())?.byteLength ?? 0;
      };
    }
  }
  throw new Error(`Unknown client "${name}": use one of ${CLIENTS.join(", ")}`);
}

function cpuSeconds(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

if (import.meta.main) {
  const [url, name, requestsText, concurrencyText] = Deno.args;
  if (!url || !name) throw new Error("Usage: client_worker.ts URL CLIENT REQUESTS CONCURRENCY");
  const send = client(name, url);
  const requests = Number(requestsText ?? 50_000);
  const concurrency = Number(concurrencyText ?? 64);
  let next = 0;
  const run = async (count: number) => {
    next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        if (await send() <= 0) throw new Error("Empty answer");
      }
    }));
  };
  await run(Math.min(5_000, requests));
  const cpuBefore = cpuSeconds();
  const started = performance.now();
  await run(requests);
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ rps: requests / seconds, cpuS: cpuSeconds() - cpuBefore }));
  Deno.exit(0);
}
