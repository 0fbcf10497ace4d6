import assert from "node:assert/strict";
import { postJson, type Stack, startStack, totalInFlight, waitFor } from "../support/stack.ts";
import { watchdog } from "../../gateway/watchdog.ts";

const decoder = new TextDecoder();

async function withOne(
  fn: (stack: Stack) => Promise<void>,
  sim: Record<string, unknown> = {},
  model: Record<string, unknown> = {},
): Promise<void> {
  const stack = await startStack({
    sims: [{ itlMs: 1, ttftMs: 1, ...sim }],
    spec: (urls) => ({ models: { "gpt-4": { servers: urls, strategy: "round_robin", ...model } } }),
  });
  try {
    await fn(stack);
  } finally {
    await stack.close();
  }
}

Deno.test("the body reaches the server byte for byte, unknown fields included", async () => {
  await withOne(async ({ url, sims }) => {
    const raw = '{ "model":"gpt-4",  "prompt":"héllo", "max_tokens":3, "top_k":7,' +
      ' "repetition_penalty":1.1, "guided_json":{"type":"object"}, "x_custom":[1,2,{"a":null}] }';
    const response = await postJson(`${url}/v1/completions`, raw);
    assert.equal(response.status, 200);
    const body = await response.json();
    assert.equal(body.object, "text_completion");
    assert.equal(body.usage.completion_tokens, 3);
    const received = sims[0]!.received.at(-1)!;
    assert.equal(received.path, "/v1/completions");
    assert.equal(received.bodyText, raw);
  });
});

Deno.test("upstream_model rewrites only the model field", async () => {
  await withOne(
    async ({ url, sims }) => {
      const response = await postJson(`${url}/v1/chat/completions`, {
        model: "gpt-4",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 2,
        min_p: 0.05,
      });
      assert.equal(response.status, 200);
      await response.body?.cancel();
      const sent = JSON.parse(sims[0]!.received.at(-1)!.bodyText);
      assert.deepEqual(sent, {
        model: "meta-llama/Llama-3.1-8B-Instruct",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 2,
        min_p: 0.05,
      });
    },
    {},
    { upstream_model: "meta-llama/Llama-3.1-8B-Instruct" },
  );
});

Deno.test("x-request-id is kept from the client or generated, sent upstream and returned", async () => {
  await withOne(async ({ url, sims }) => {
    const given = await postJson(`${url}/v1/completions`, { model: "gpt-4", prompt: "x" }, {
      "x-request-id": "client-id-123",
    });
    await given.body?.cancel();
    assert.equal(given.headers.get("x-request-id"), "client-id-123");
    assert.equal(sims[0]!.received.at(-1)!.headers.get("x-request-id"), "client-id-123");
    const generated = await postJson(`${url}/v1/completions`, { model: "gpt-4", prompt: "x" });
    await generated.body?.cancel();
    const id = generated.headers.get("x-request-id") ?? "";
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(sims[0]!.received.at(-1)!.headers.get("x-request-id"), id);
    const failed = await postJson(`${url}/v1/completions`, "{", { "x-request-id": "bad-1" });
    await failed.body?.cancel();
    assert.equal(failed.headers.get("x-request-id"), "bad-1");
  });
});

Deno.test("hop-by-hop headers are not forwarded; other headers are", async () => {
  await withOne(async ({ url, sims }) => {
    const response = await postJson(`${url}/v1/completions`, { model: "gpt-4", prompt: "x" }, {
      "x-tenant": "blue",
      "connection": "keep-alive, x-drop-me",
      "x-drop-me": "1",
      "te": "trailers",
      "accept-encoding": "gzip",
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json");
    assert.equal(response.headers.get("content-encoding"), null);
    await response.body?.cancel();
    const headers = sims[0]!.received.at(-1)!.headers;
    assert.equal(headers.get("x-tenant"), "blue");
    assert.equal(headers.get("x-drop-me"), null);
    assert.equal(headers.get("te"), null);
    assert.equal(headers.get("accept-encoding"), "identity");
  });
});

Deno.test("embeddings are routed by model", async () => {
  await withOne(async ({ url }) => {
    const response = await postJson(`${url}/v1/embeddings`, { model: "gpt-4", input: "hello" });
    assert.equal(response.status, 200);
    const body = await response.json();
    assert.equal(body.object, "list");
    assert.ok(Array.isArray(body.data[0].embedding));
  });
});

Deno.test("SSE streams through incrementally: the client has the first chunk first", async () => {
  await withOne(async ({ url, sims, gateway }) => {
    const gate = sims[0]!.gate();
    const response = await postJson(`${url}/v1/chat/completions`, {
      model: "gpt-4",
      messages: [{ role: "user", content: "Hello, how are you?" }],
      max_tokens: 5,
      stream: true,
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /text\/event-stream/);
    const reader = response.body!.getReader();
    const first = await reader.read();
    assert.equal(first.done, false);
    const text = decoder.decode(first.value);
    assert.match(text, /^data: \{/);
    // The simulator holds the last token until the gate opens, so it cannot have been written yet.
    assert.doesNotMatch(text, /\[DONE\]/);
    assert.equal(totalInFlight(gateway), 1);
    gate.open();
    let rest = "";
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      rest += decoder.decode(chunk.value);
    }
    assert.match(rest, /data: \[DONE\]\n\n$/);
    const events = (text + rest).split("\n\n").filter(Boolean);
    assert.ok(events.length >= 6, `expected at least 6 events, got ${events.length}`);
    await waitFor(() => totalInFlight(gateway) === 0, { what: "in-flight back to 0" });
  });
});

Deno.test("a client that disconnects mid-stream aborts the upstream request", async () => {
  await withOne(async ({ url, sims, gateway }) => {
    const gate = sims[0]!.gate();
    const response = await postJson(`${url}/v1/chat/completions`, {
      model: "gpt-4",
      messages: [{ role: "user", content: "long" }],
      max_tokens: 50,
      stream: true,
    });
    const reader = response.body!.getReader();
    await reader.read();
    await waitFor(() => sims[0]!.state().running === 1, { what: "the stream to run" });
    await reader.cancel();
    await waitFor(() => sims[0]!.state().aborted === 1, { what: "the simulator to see the abort" });
    await waitFor(() => totalInFlight(gateway) === 0, { what: "in-flight back to 0" });
    await waitFor(() => watchdog.size === 0, { what: "the stream's deadlines released" });
    assert.equal(sims[0]!.state().running, 0);
    gate.open();
  });
});

Deno.test("a client that disconnects before the first byte aborts the upstream request", async () => {
  await withOne(async ({ url, sims, gateway }) => {
    const abort = new AbortController();
    const pending = fetch(`${url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "gpt-4", prompt: "x" }),
      signal: abort.signal,
    });
    await waitFor(() => sims[0]!.state().received === 1, { what: "the request to arrive" });
    abort.abort();
    await assert.rejects(pending);
    await waitFor(() => totalInFlight(gateway) === 0, { what: "in-flight back to 0" });
    await waitFor(() => watchdog.size === 0, { what: "the request's deadlines released" });
  }, { hang: true });
});

Deno.test("a stream the server drops midway ends with an OpenAI-shaped error event", async () => {
  await withOne(async ({ url, gateway }) => {
    const response = await postJson(`${url}/v1/chat/completions`, {
      model: "gpt-4",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 20,
      stream: true,
    });
    const text = await response.text();
    const events = text.split("\n\n").filter(Boolean);
    const last = JSON.parse(events.at(-1)!.slice("data: ".length));
    assert.equal(last.error.type, "server_error");
    assert.equal(last.error.code, "upstream_stream_error");
    assert.ok(events.length >= 3);
    await waitFor(() => totalInFlight(gateway) === 0, { what: "in-flight back to 0" });
  }, { dropAfterTokens: 3 });
});

Deno.test("upstream error statuses pass through with their body", async () => {
  await withOne(async ({ url, gateway }) => {
    const response = await postJson(`${url}/v1/completions`, { model: "gpt-4", prompt: "x" });
    assert.equal(response.status, 500);
    const body = await response.json();
    assert.equal(typeof body.error.message, "string");
    assert.equal(totalInFlight(gateway), 0);
  }, { errorRate: 1 });
});
