import assert from "node:assert/strict";
import { loadSpecFile } from "../../config/load.ts";
import { Gateway } from "../../gateway/gateway.ts";
import { startGateway } from "../../gateway/server.ts";
import { startSimServer } from "../../sim/server.ts";
import { postJson, type Stack, startStack, totalInFlight, waitFor } from "../support/stack.ts";

const FAST = { itlMs: 1, ttftMs: 1 };
const KEY_A = "sk-team-a-0123456789";
const KEY_B = "sk-team-b-9876543210";

async function withAuth(
  auth: Record<string, unknown>,
  fn: (stack: Stack) => Promise<void>,
  server: Record<string, unknown> = {},
): Promise<void> {
  const stack = await startStack({
    sims: [FAST],
    spec: ([url]) => ({
      models: {
        "gpt-4": { servers: [{ url, ...server }] },
        "gpt-3.5-turbo": { servers: [{ url, ...server }] },
      },
      plugins: [{ name: "auth", options: auth }],
    }),
  });
  try {
    await fn(stack);
    await waitFor(() => totalInFlight(stack.gateway) === 0, { what: "in-flight back to 0" });
  } finally {
    await stack.close();
  }
}

const chat = { model: "gpt-4", messages: [{ role: "user", content: "hi" }], max_tokens: 2 };

Deno.test("auth: a missing or wrong key is 401 in OpenAI's shape; a right key passes", async () => {
  await withAuth({ keys: [{ key: KEY_A, name: "team-a" }] }, async ({ url, sims }) => {
    const missing = await postJson(`${url}/v1/chat/completions`, chat);
    assert.equal(missing.status, 401);
    const missingBody = await missing.json();
    assert.equal(missingBody.error.type, "invalid_request_error");
    assert.equal(missingBody.error.code, "missing_api_key");
    const wrong = await postJson(`${url}/v1/chat/completions`, chat, {
      authorization: "Bearer sk-not-a-key-at-all",
    });
    assert.equal(wrong.status, 401);
    assert.equal((await wrong.json()).error.code, "invalid_api_key");
    assert.equal(sims[0]!.state().received, 0);
    const ok = await postJson(`${url}/v1/chat/completions`, chat, {
      authorization: `Bearer ${KEY_A}`,
    });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    // The client's key is not forwarded to the server.
    assert.equal(sims[0]!.received.at(-1)!.headers.get("authorization"), null);
    const viaHeader = await postJson(`${url}/v1/chat/completions`, chat, { "x-api-key": KEY_A });
    assert.equal(viaHeader.status, 200);
    await viaHeader.body?.cancel();
    assert.equal(sims[0]!.received.at(-1)!.headers.get("x-api-key"), null);
  });
});

Deno.test("auth: a key limited to listed models gets 403 for others", async () => {
  await withAuth({
    keys: [{ key: KEY_A, models: ["gpt-3.5-turbo"], name: "small-only" }, { key: KEY_B }],
  }, async ({ url }) => {
    const denied = await postJson(`${url}/v1/chat/completions`, chat, {
      authorization: `Bearer ${KEY_A}`,
    });
    assert.equal(denied.status, 403);
    const body = await denied.json();
    assert.equal(body.error.type, "permission_error");
    assert.match(body.error.message, /"small-only" may not use model "gpt-4"/);
    const allowed = await postJson(`${url}/v1/chat/completions`, {
      ...chat,
      model: "gpt-3.5-turbo",
    }, {
      authorization: `Bearer ${KEY_A}`,
    });
    assert.equal(allowed.status, 200);
    await allowed.body?.cancel();
    const other = await postJson(`${url}/v1/chat/completions`, chat, {
      authorization: `Bearer ${KEY_B}`,
    });
    assert.equal(other.status, 200);
    await other.body?.cancel();
  });
});

Deno.test("auth: keys from the environment and a file; upstream keys per server", async () => {
  const dir = await Deno.makeTempDir();
  Deno.env.set("LLMSTREAM_TEST_KEYS", `${KEY_B}, sk-another-key-1234`);
  try {
    await Deno.writeTextFile(`${dir}/keys.yaml`, `- key: ${KEY_A}\n  name: from-file\n`);
    await withAuth({ keys_env: "LLMSTREAM_TEST_KEYS", keys_file: `${dir}/keys.yaml` }, async (
      { url, sims },
    ) => {
      for (const key of [KEY_A, KEY_B, "sk-another-key-1234"]) {
        const response = await postJson(`${url}/v1/chat/completions`, chat, {
          authorization: `Bearer ${key}`,
        });
        assert.equal(response.status, 200, key);
        await response.body?.cancel();
        assert.equal(
          sims[0]!.received.at(-1)!.headers.get("authorization"),
          "Bearer vllm-server-secret",
        );
      }
    }, { api_key: "vllm-server-secret" });
  } finally {
    Deno.env.delete("LLMSTREAM_TEST_KEYS");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auth: forward_authorization passes the client's header on", async () => {
  await withAuth({ keys: [{ key: KEY_A }], forward_authorization: true }, async ({ url, sims }) => {
    const response = await postJson(`${url}/v1/chat/completions`, chat, {
      authorization: `Bearer ${KEY_A}`,
    });
    await response.body?.cancel();
    assert.equal(sims[0]!.received.at(-1)!.headers.get("authorization"), `Bearer ${KEY_A}`);
  });
});

Deno.test("plugins dropped into plugins/ run in the declared order, and may answer early", async () => {
  const dir = await Deno.makeTempDir();
  const sim = await startSimServer(FAST);
  try {
    await Deno.mkdir(`${dir}/plugins`);
    const recorder = (tag: string) =>
      `const seen = (globalThis.__pluginLog ??= []);
export default function create(options) {
  return {
    wantsUsage: true,
    onRequest(request) {
      seen.push("${tag}:request:" + request.model);
      if (options.options.block && request.body.block) {
        return Response.json({ error: { message: "Blocked", type: "invalid_request_error",
          param: null, code: "blocked" } }, { status: 400 });
      }
    },
    onResponse(request, outcome) {
      seen.push("${tag}:response:" + outcome.status + ":" + (outcome.usage?.total_tokens ?? "-") +
        ":" + (outcome.server === null ? "none" : "server") + ":" + (outcome.ttftMs === undefined ? "-" : "ttft"));
    },
  };
}
`;
    await Deno.writeTextFile(`${dir}/plugins/first.js`, recorder("first"));
    await Deno.writeTextFile(`${dir}/plugins/second.js`, recorder("second"));
    await Deno.writeTextFile(
      `${dir}/spec.yaml`,
      `models:\n  m:\n    servers: ["${sim.url}"]\nplugins:\n  - name: first\n    options: { block: true }\n  - second\n`,
    );
    const gateway = new Gateway(await loadSpecFile(`${dir}/spec.yaml`));
    await gateway.startPlugins();
    const running = startGateway(gateway, { port: 0 });
    const log = ((globalThis as unknown as { __pluginLog?: string[] }).__pluginLog ??= []);
    log.length = 0;
    try {
      const ok = await postJson(`${running.url}/v1/completions`, {
        model: "m",
        prompt: "x",
        max_tokens: 3,
      });
      assert.equal(ok.status, 200);
      await ok.text();
      const streamed = await postJson(`${running.url}/v1/completions`, {
        model: "m",
        prompt: "x",
        max_tokens: 4,
        stream: true,
        stream_options: { include_usage: true },
      });
      await streamed.text();
      const blocked = await postJson(`${running.url}/v1/completions`, {
        model: "m",
        prompt: "x",
        block: true,
      });
      assert.equal(blocked.status, 400);
      await blocked.body?.cancel();
      await waitFor(() => log.length === 11, { what: "every hook to run" });
      assert.deepEqual(log, [
        "first:request:m",
        "second:request:m",
        "first:response:200:4:server:ttft",
        "second:response:200:4:server:ttft",
        "first:request:m",
        "second:request:m",
        "first:response:200:5:server:ttft",
        "second:response:200:5:server:ttft",
        "first:request:m",
        "first:response:400:-:none:-",
        "second:response:400:-:none:-",
      ]);
    } finally {
      await running.close();
      await gateway.closePlugins();
    }
  } finally {
    await sim.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("usage.add_stream_usage asks servers for usage; off, the body is untouched", async () => {
  for (const add of [false, true]) {
    const stack = await startStack({
      sims: [FAST],
      spec: (urls) => ({ models: { m: { servers: urls } }, usage: { add_stream_usage: add } }),
    });
    try {
      const raw = '{"model":"m","prompt":"x","max_tokens":2,"stream":true}';
      const response = await postJson(`${stack.url}/v1/completions`, raw);
      const text = await response.text();
      const sent = stack.sims[0]!.received.at(-1)!.bodyText;
      if (add) {
        assert.deepEqual(JSON.parse(sent).stream_options, { include_usage: true });
        assert.match(text, /"usage":\{/);
      } else {
        assert.equal(sent, raw);
      }
    } finally {
      await stack.close();
    }
  }
});
