import assert from "node:assert/strict";
import { postJson, type Stack, startStack, totalInFlight, waitFor } from "../support/stack.ts";

const FAST = { itlMs: 1, ttftMs: 1 };

async function withStack(
  options: Parameters<typeof startStack>[0],
  fn: (stack: Stack) => Promise<void>,
): Promise<void> {
  const stack = await startStack(options);
  try {
    await fn(stack);
    await waitFor(() => totalInFlight(stack.gateway) === 0, { what: "in-flight back to 0" });
  } finally {
    await stack.close();
  }
}

async function complete(url: string, model = "m", extra: Record<string, unknown> = {}) {
  const response = await postJson(`${url}/v1/completions`, {
    model,
    prompt: "x",
    max_tokens: 2,
    ...extra,
  });
  const text = await response.text();
  return { response, text };
}

Deno.test("a refused connection is retried on another server, and the headers say so", async () => {
  await withStack({
    sims: [FAST],
    spec: ([live]) => ({
      models: { m: { servers: ["http://127.0.0.1:9", live], strategy: "round_robin" } },
      outlier_detection: { enabled: false },
    }),
  }, async ({ url, sims }) => {
    for (let i = 0; i < 4; i++) {
      const { response } = await complete(url);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("x-llmstream-server"), sims[0]!.url);
      // Round robin starts at the dead server every other request.
      assert.equal(response.headers.get("x-llmstream-attempts"), i % 2 === 0 ? "2" : "1");
    }
  });
});

Deno.test("429 and 503 answers are retried elsewhere; 400s are not", async () => {
  await withStack({
    sims: [
      { ...FAST, errorRate: 1, errorStatus: 429 },
      { ...FAST, errorRate: 1, errorStatus: 503 },
      FAST,
    ],
    spec: (urls) => ({ models: { m: { servers: urls, strategy: "round_robin" } } }),
  }, async ({ url, sims }) => {
    for (let i = 0; i < 3; i++) {
      const { response } = await complete(url);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("x-llmstream-server"), sims[2]!.url);
    }
    const bad = await postJson(`${url}/v1/completions`, { model: "m", prompt: "x", max_tokens: 0 });
    assert.equal(bad.status, 400);
    assert.equal(bad.headers.get("x-llmstream-attempts"), "1");
    await bad.body?.cancel();
  });
});

Deno.test("when every attempt fails the last server answer or error reaches the client", async () => {
  await withStack({
    sims: [{ ...FAST, errorRate: 1, errorStatus: 503 }, {
      ...FAST,
      errorRate: 1,
      errorStatus: 503,
    }],
    spec: (urls) => ({
      models: { m: { servers: urls } },
      retries: { max_attempts: 2, backoff: 0 },
      outlier_detection: { enabled: false },
    }),
  }, async ({ url, sims }) => {
    const { response, text } = await complete(url);
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("x-llmstream-attempts"), "2");
    assert.match(text, /"error"/);
    assert.deepEqual(sims.map((sim) => sim.state().received), [1, 1]);
  });
});

Deno.test("a first-byte timeout is retried on another server", async () => {
  await withStack({
    sims: [{ ...FAST, hang: true }, FAST],
    spec: (urls) => ({
      models: { m: { servers: urls, strategy: "round_robin" } },
      timeouts: { first_byte: 0.2 },
    }),
  }, async ({ url, sims }) => {
    const { response } = await complete(url);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("x-llmstream-attempts"), "2");
    assert.equal(response.headers.get("x-llmstream-server"), sims[1]!.url);
  });
});

Deno.test("nothing is retried once the first byte reached the client", async () => {
  await withStack({
    sims: [{ ...FAST, dropAfterTokens: 2 }, FAST],
    spec: (urls) => ({ models: { m: { servers: urls, strategy: "round_robin" } } }),
  }, async ({ url, sims }) => {
    const { response, text } = await complete(url, "m", { stream: true, max_tokens: 10 });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("x-llmstream-attempts"), "1");
    assert.match(text, /"code":"upstream_stream_error"/);
    assert.equal(sims[1]!.state().received, 0);
  });
});

Deno.test("fallbacks take the request when no server of the model can", async () => {
  await withStack({
    sims: [{ ...FAST, models: ["backup-llm"], acceptAnyModel: false }],
    spec: ([backup]) => ({
      models: {
        primary: { servers: ["http://127.0.0.1:9"], fallbacks: ["backup"] },
        backup: { servers: [backup], upstream_model: "backup-llm" },
      },
      retries: { backoff: 0 },
    }),
  }, async ({ url, sims }) => {
    const { response } = await complete(url, "primary");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("x-llmstream-model"), "backup");
    assert.equal(response.headers.get("x-llmstream-attempts"), "2");
    assert.equal(JSON.parse(sims[0]!.received.at(-1)!.bodyText).model, "backup-llm");
  });
});

Deno.test("consecutive failures eject a server; after the cool-down one probe decides", async () => {
  await withStack({
    sims: [{ ...FAST, errorRate: 1, errorStatus: 500 }, FAST],
    spec: (urls) => ({
      models: { m: { servers: urls, strategy: "round_robin" } },
      retries: { max_attempts: 1 },
      outlier_detection: { consecutive_failures: 3, cooldown: 0.3 },
    }),
  }, async ({ url, sims, gateway }) => {
    const [bad, good] = sims;
    for (let i = 0; i < 6; i++) await complete(url);
    assert.equal(bad!.state().received, 3);
    const breaker = gateway.pool.get(bad!.url)!.breaker;
    assert.equal(breaker.state, "open");
    for (let i = 0; i < 4; i++) assert.equal((await complete(url)).response.status, 200);
    assert.equal(bad!.state().received, 3);
    // Still failing at the probe: ejected again, for twice as long.
    await waitFor(() => Date.now() >= breaker.openUntil, { what: "the cool-down" });
    for (let i = 0; i < 3; i++) await complete(url);
    assert.equal(bad!.state().received, 4);
    assert.equal(breaker.state, "open");
    assert.equal(breaker.ejections, 2);
    // Recovered at the next probe: back in rotation.
    bad!.update({ errorRate: 0 });
    await waitFor(() => Date.now() >= breaker.openUntil, { what: "the second cool-down" });
    for (let i = 0; i < 4; i++) assert.equal((await complete(url)).response.status, 200);
    assert.equal(breaker.state, "closed");
    assert.ok(bad!.state().received >= 6, `probe and traffic: ${bad!.state().received}`);
    assert.ok(good!.state().received > 0);
  });
});

Deno.test("active health checks take an unhealthy server out and bring it back", async () => {
  await withStack({
    sims: [FAST, FAST],
    spec: (urls) => ({
      models: { m: { servers: urls, strategy: "round_robin" } },
      health_checks: {
        interval: 0.05,
        timeout: 0.04,
        unhealthy_threshold: 2,
        healthy_threshold: 2,
      },
    }),
    health: true,
  }, async ({ url, sims, gateway }) => {
    const [sick, well] = sims;
    const state = gateway.pool.get(sick!.url)!;
    sick!.update({ healthStatus: 503 });
    await waitFor(() => !state.healthy, { what: "the server to turn unhealthy" });
    const before = sick!.state().received;
    for (let i = 0; i < 4; i++) assert.equal((await complete(url)).response.status, 200);
    assert.equal(sick!.state().received, before);
    assert.equal(well!.state().received, 4);
    const ready = await fetch(`${url}/ready`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
    sick!.update({ healthStatus: 200 });
    await waitFor(() => state.healthy, { what: "the server to recover" });
    for (let i = 0; i < 4; i++) await complete(url);
    assert.equal(sick!.state().received, before + 2);
  });
});

Deno.test("a per-server concurrency cap queues, then answers 503 with Retry-After", async () => {
  await withStack({
    sims: [{ ...FAST, itlMs: 5 }],
    spec: ([only]) => ({
      models: { m: { servers: [{ url: only, max_concurrent: 1 }] } },
      server_limits: { queue_size: 1, queue_timeout: 5 },
    }),
  }, async ({ url, sims, gateway }) => {
    const gate = sims[0]!.gate();
    const first = await postJson(`${url}/v1/completions`, {
      model: "m",
      prompt: "x",
      max_tokens: 3,
      stream: true,
    });
    const queued = complete(url);
    await waitFor(() => gateway.pool.get(sims[0]!.url)!.slots.length === 1, { what: "a waiter" });
    const refused = await complete(url);
    assert.equal(refused.response.status, 503);
    assert.ok(Number(refused.response.headers.get("retry-after")) >= 1);
    assert.match(refused.text, /"code":"server_busy"/);
    gate.open();
    await first.text();
    assert.equal((await queued).response.status, 200);
    assert.equal(sims[0]!.state().received, 2);
  });
});

Deno.test("a stream idle longer than timeouts.idle ends with a timeout error event", async () => {
  await withStack({
    sims: [{ ...FAST, itlMs: 400 }],
    spec: (urls) => ({ models: { m: { servers: urls, timeouts: { idle: 0.1 } } } }),
  }, async ({ url, sims }) => {
    const { response, text } = await complete(url, "m", { stream: true, max_tokens: 5 });
    assert.equal(response.status, 200);
    assert.match(text, /"code":"upstream_idle_timeout"/);
    await waitFor(() => sims[0]!.state().aborted === 1, { what: "the upstream abort" });
  });
});

Deno.test("oversized headers get 431 and a slow body gets 408", async () => {
  await withStack({
    sims: [FAST],
    spec: (urls) => ({
      models: { m: { servers: urls } },
      limits: { max_header_bytes: 2048, body_timeout: 0.2 },
    }),
  }, async ({ url }) => {
    const big = await postJson(`${url}/v1/completions`, { model: "m" }, {
      "x-big": "a".repeat(4096),
    });
    assert.equal(big.status, 431);
    assert.match(await big.text(), /headers_too_large/);
    let push: (() => void) | undefined;
    const slow = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"model":'));
        push = () => controller.close();
      },
    });
    const response = await fetch(`${url}/v1/completions`, { method: "POST", body: slow });
    assert.equal(response.status, 408);
    assert.match(await response.text(), /request_timeout/);
    push?.();
  });
});
