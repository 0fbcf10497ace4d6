import assert from "node:assert/strict";
import { postJson, type Stack, startStack } from "../support/stack.ts";

async function withStack(fn: (stack: Stack) => Promise<void>): Promise<void> {
  const stack = await startStack({
    sims: [{ itlMs: 1, ttftMs: 1 }],
    spec: (urls) => ({
      models: {
        "gpt-3.5-turbo": { servers: urls, strategy: "round_robin" },
        "empty-model": { servers: [], strategy: "round_robin" },
        "dead-model": { servers: ["http://127.0.0.1:9"], strategy: "round_robin" },
      },
      limits: { max_body_bytes: 1024 },
    }),
  });
  try {
    await fn(stack);
  } finally {
    await stack.close();
  }
}

async function errorOf(
  response: Response,
): Promise<{ message: string; type: string; param: unknown; code: unknown }> {
  assert.equal(response.headers.get("content-type"), "application/json");
  const body = await response.json();
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
  return body.error;
}

Deno.test("GET /v1/models lists the configured models in OpenAI's shape", async () => {
  await withStack(async ({ url }) => {
    const response = await fetch(`${url}/v1/models`);
    assert.equal(response.status, 200);
    const body = await response.json();
    assert.equal(body.object, "list");
    assert.deepEqual(body.data.map((model: { id: string }) => model.id), [
      "gpt-3.5-turbo",
      "empty-model",
      "dead-model",
    ]);
    for (const model of body.data) {
      assert.equal(model.object, "model");
      assert.equal(typeof model.created, "number");
      assert.equal(model.owned_by, "llmstream");
    }
  });
});

Deno.test("GET /health answers 200; /ready names models without servers", async () => {
  await withStack(async ({ url }) => {
    const health = await fetch(`${url}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });
    const ready = await fetch(`${url}/ready`);
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), {
      status: "not_ready",
      models_without_servers: ["empty-model"],
    });
  });
  const stack = await startStack({
    sims: [{}],
    spec: (urls) => ({ models: { m: { servers: urls } } }),
  });
  try {
    const ready = await fetch(`${stack.url}/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: "ready", models: 1 });
  } finally {
    await stack.close();
  }
});

Deno.test("malformed JSON is 400 invalid_request_error", async () => {
  await withStack(async ({ url }) => {
    const response = await postJson(`${url}/v1/chat/completions`, "{not json");
    assert.equal(response.status, 400);
    const error = await errorOf(response);
    assert.equal(error.type, "invalid_request_error");
    assert.equal(error.code, "invalid_json");
    assert.match(error.message, /not valid JSON/);
  });
});

Deno.test("missing or non-string model is 400 with param model", async () => {
  await withStack(async ({ url }) => {
    for (const body of [{ messages: [] }, { model: 42 }, { model: "" }, [1, 2]]) {
      const response = await postJson(`${url}/v1/chat/completions`, body);
      assert.equal(response.status, 400, JSON.stringify(body));
      const error = await errorOf(response);
      assert.equal(error.type, "invalid_request_error");
      if (!Array.isArray(body)) assert.equal(error.param, "model");
    }
  });
});

Deno.test("unknown model is 404 naming the available models", async () => {
  await withStack(async ({ url }) => {
    const response = await postJson(`${url}/v1/completions`, { model: "gpt-5", prompt: "x" });
    assert.equal(response.status, 404);
    const error = await errorOf(response);
    assert.equal(error.type, "not_found_error");
    assert.equal(error.code, "model_not_found");
    assert.equal(
      error.message,
      'Unknown model "gpt-5": available models are "gpt-3.5-turbo", "empty-model", "dead-model"',
    );
  });
});

Deno.test("wrong method is 405 with Allow; unknown path is 404", async () => {
  await withStack(async ({ url }) => {
    const wrong = await fetch(`${url}/v1/chat/completions`);
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get("allow"), "POST");
    assert.equal((await errorOf(wrong)).code, "method_not_allowed");
    const post = await fetch(`${url}/v1/models`, { method: "POST", body: "{}" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
    const unknown = await fetch(`${url}/v2/nothing`);
    assert.equal(unknown.status, 404);
    const error = await errorOf(unknown);
    assert.equal(error.type, "not_found_error");
    assert.match(error.message, /Unknown path "\/v2\/nothing"/);
  });
});

Deno.test("a body over the limit is 413, by header and by streamed size", async () => {
  await withStack(async ({ url }) => {
    const big = JSON.stringify({ model: "gpt-3.5-turbo", prompt: "x".repeat(2000) });
    const response = await postJson(`${url}/v1/completions`, big);
    assert.equal(response.status, 413);
    assert.equal((await errorOf(response)).code, "request_too_large");
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big.slice(0, 800)));
        controller.enqueue(new TextEncoder().encode(big.slice(800)));
        controller.close();
      },
    });
    const streamed = await fetch(`${url}/v1/completions`, { method: "POST", body: chunked });
    assert.equal(streamed.status, 413);
    await streamed.body?.cancel();
  });
});

Deno.test("a model with no server is 503; an unreachable server is 502", async () => {
  await withStack(async ({ url, gateway }) => {
    const none = await postJson(`${url}/v1/completions`, { model: "empty-model", prompt: "x" });
    assert.equal(none.status, 503);
    const noneError = await errorOf(none);
    assert.equal(noneError.type, "service_unavailable_error");
    assert.equal(noneError.code, "no_server_available");
    const dead = await postJson(`${url}/v1/completions`, { model: "dead-model", prompt: "x" });
    assert.equal(dead.status, 502);
    const deadError = await errorOf(dead);
    assert.equal(deadError.code, "upstream_unreachable");
    assert.match(deadError.message, /Server "http:\/\/127\.0\.0\.1:9" refused the connection/);
    assert.doesNotMatch(deadError.message, /at .*\.ts:\d+/);
    assert.equal(gateway.pool.get("http://127.0.0.1:9")?.inFlight, 0);
  });
});

Deno.test("an upstream that sends nothing within first_byte_timeout is 504", async () => {
  const stack = await startStack({
    sims: [{ hang: true }],
    spec: (urls) => ({
      models: { m: { servers: urls } },
      timeouts: { first_byte: 0.2 },
    }),
  });
  try {
    const response = await postJson(`${stack.url}/v1/completions`, { model: "m", prompt: "x" });
    assert.equal(response.status, 504);
    const error = await errorOf(response);
    assert.equal(error.type, "timeout_error");
    assert.equal(error.code, "upstream_timeout");
    assert.equal(stack.gateway.pool.get(stack.sims[0]!.url)?.inFlight, 0);
  } finally {
    await stack.close();
  }
});
