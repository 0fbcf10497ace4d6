import assert from "node:assert/strict";
import { postJson, startStack, totalInFlight, waitFor } from "../support/stack.ts";

const KEY = "sk-team-a-0123456789";
const chat = { model: "gpt-4", messages: [{ role: "user", content: "hi" }], max_tokens: 2 };

/**
 * A dropped-in plugin that works through the `Headers` objects: before the built-ins it adds an
 * upstream header (so the upstream `Headers` exists when auth removes the key); after them it
 * copies what rate_limit set on the response and what auth left upstream.
 */
const PEEK = `export default function create(options) {
  return {
    onRequest(request) {
      if (options.options.before) {
        request.upstreamHeaders.set("x-added", "1");
        return;
      }
      request.responseHeaders.set(
        "x-seen-limit",
        request.responseHeaders.get("x-ratelimit-limit-requests") ?? "none",
      );
      request.responseHeaders.set(
        "x-seen-authorization",
        String(request.upstreamHeaders.has("authorization")),
      );
    },
  };
}
`;

for (const before of [false, true]) {
  Deno.test(
    `built-in plugins' header changes are seen through Headers (a plugin before them: ${before})`,
    async () => {
      const dir = await Deno.makeTempDir();
      await Deno.mkdir(`${dir}/plugins`);
      await Deno.writeTextFile(`${dir}/plugins/peek.js`, PEEK);
      const stack = await startStack({
        sims: [{ itlMs: 1, ttftMs: 1 }],
        specFile: `${dir}/spec.json`,
        spec: ([url]) => ({
          models: { "gpt-4": { servers: [url] } },
          plugins: [
            ...(before ? [{ name: "peek", options: { before: true } }] : []),
            { name: "auth", options: { keys: [{ key: KEY, name: "team-a" }] } },
            { name: "rate_limit", options: { default: { requests_per_minute: 50 } } },
            "peek",
          ],
        }),
      });
      try {
        for (const headers of [{ authorization: `Bearer ${KEY}` }, { "api-key": KEY }]) {
          const response = await postJson(`${stack.url}/v1/chat/completions`, chat, headers);
          assert.equal(response.status, 200);
          await response.body?.cancel();
          assert.equal(response.headers.get("x-ratelimit-limit-requests"), "50");
          assert.equal(response.headers.get("x-seen-limit"), "50");
          assert.equal(response.headers.get("x-seen-authorization"), "false");
          const received = stack.sims[0]!.received.at(-1)!.headers;
          for (const name of ["authorization", "api-key", "x-api-key"]) {
            assert.equal(received.get(name), null, `${name} is not sent upstream`);
          }
          assert.equal(received.get("x-added"), before ? "1" : null);
        }
        await waitFor(() => totalInFlight(stack.gateway) === 0, { what: "in-flight back to 0" });
      } finally {
        await stack.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}
