/**
 * The plainest proxy Deno makes, for the prefix benchmark's proxied oracle: `Deno.serve` in front
 * of `fetch`, forwarding each request's body as bytes to the server named in its
 * `x-bench-upstream` header and streaming the answer back untouched. No parsing, no routing, no
 * bookkeeping: what a request pays for one proxy hop on this runtime and nothing more.
 *
 * Run: `deno run --allow-net bench/prefix/plain_proxy.ts PORT`; `GET /ready` answers 200.
 *
 * @module
 */

/** The header naming the server to forward to, e.g. `http://127.0.0.1:8001`. */
export const UPSTREAM_HEADER = "x-bench-upstream";

/**
 * Serves the proxy on loopback.
 *
 * @param port The port to listen on.
 * @returns The server.
 */
export function servePlainProxy(port: number): Deno.HttpServer {
  return Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    if (url.pathname === "/ready") return new Response("ready");
    const upstream = request.headers.get(UPSTREAM_HEADER);
    if (upstream === null) return new Response(`No ${UPSTREAM_HEADER} header`, { status: 400 });
    const answer = await fetch(`${upstream}${url.pathname}`, {
      method: request.method,
      headers: { "content-type": request.headers.get("content-type") ?? "application/json" },
      body: await request.bytes(),
      signal: request.signal,
    });
    return new Response(answer.body, { status: answer.status, headers: answer.headers });
  });
}

if (import.meta.main) servePlainProxy(Number(Deno.args[0]));
