import assert from "node:assert/strict";
import { postJson, type Stack, startStack, totalInFlight, waitFor } from "../support/stack.ts";

// Every limit below is far from what one test uses in a minute's turn: the sliding window keeps
// the previous minute's counts, so crossing a minute boundary does not change any outcome.

const FAST = { itlMs: 1, ttftMs: 1 };
const KEYS = [
  { key: "sk-team-a-0123456789", name: "team-a" },
  { key: "sk-team-b-0123456789", name: "team-b" },
  { key: "sk-team-c-0123456789", name: "team-c" },
];

async function withLimits(
  options: Record<string, unknown>,
  fn: (stack: Stack) => Promise<void>,
  spec: { auth?: boolean; extra?: Record<string, unknown> } = {},
): Promise<void> {
  const stack = await startStack({
    sims: [FAST],
    spec: ([url]) => ({
      models: { m1: { servers: [url] }, m2: { servers: [url] } },
      plugins: [
        ...(spec.auth ? [{ name: "auth", options: { keys: KEYS } }] : []),
        { name: "rate_limit", options },
      ],
      ...spec.extra,
    }),
  });
  try {
    await fn(stack);
    await waitFor(() => totalInFlight(stack.gateway) === 0, { what: "in-flight back to 0" });
  } finally {
    await stack.close();
  }
}

function send(url: string, body: Record<string, unknown>, key?: string): Promise<Response> {
  return postJson(
    `${url}/v1/chat/completions`,
    { messages: [{ role: "user", content: "hi" }], max_tokens: 2, ...body },
    key === undefined ? {} : { authorization: `Bearer ${key}` },
  );
}

/** Sends a request and returns its status, reading the body to its end. */
async function status(url: string, body: Record<string, unknown>, key?: string): Promise<number> {
  const response = await send(url, body, key);
  await response.body?.cancel();
  return response.status;
}

Deno.test("rate_limit: over requests_per_minute is 429 in OpenAI's shape with headers", async () => {
  await withLimits({ default: { requests_per_minute: 2 } }, async ({ url, sims }) => {
    const first = await send(url, { model: "m1" });
    assert.equal(first.status, 200);
    await first.body?.cancel();
    assert.equal(first.headers.get("x-ratelimit-limit-requests"), "2");
    assert.equal(first.headers.get("x-ratelimit-remaining-requests"), "1");
    assert.match(first.headers.get("x-ratelimit-reset-requests")!, /^(\d+m)?[\d.]+s$/);
    assert.equal(first.headers.get("x-ratelimit-limit-tokens"), null);
    const second = await send(url, { model: "m1" });
    assert.equal(second.headers.get("x-ratelimit-remaining-requests"), "0");
    await second.body?.cancel();
    const refused = await send(url, { model: "m1" });
    assert.equal(refused.status, 429);
    const body = await refused.json();
    assert.equal(body.error.type, "rate_limit_error");
    assert.equal(body.error.code, "rate_limit_exceeded");
    assert.equal(body.error.param, null);
    assert.match(body.error.message, /Key "anonymous" .* model "m1": 2 requests per minute/);
    assert.match(body.error.message, /"requests_per_minute"/);
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.ok(Number(refused.headers.get("retry-after-ms")) >= 1);
    assert.equal(refused.headers.get("x-ratelimit-limit-requests"), "2");
    assert.equal(refused.headers.get("x-ratelimit-remaining-requests"), "0");
    assert.ok(refused.headers.get("x-request-id"));
    // Refused requests never reach a server, and unknown models are left to the 404.
    assert.equal(sims[0]!.state().received, 2);
    assert.equal(await status(url, { model: "nope" }), 404);
  });
});

Deno.test("rate_limit: limits are per key and model, set by default, model and key", async () => {
  const [a, b, c] = KEYS.map((entry) => entry.key);
  await withLimits({
    default: { requests_per_minute: 3 },
    models: { m2: { requests_per_minute: 2 } },
    keys: {
      "team-a": { requests_per_minute: 1 },
      "team-b": { models: { m2: { requests_per_minute: null } } },
    },
  }, async ({ url }) => {
    const run = async (model: string, key: string | undefined, count: number) => {
      const statuses = [];
      for (let i = 0; i < count; i++) statuses.push(await status(url, { model }, key));
      return statuses;
    };
    // team-a: its own limit on every model, each model counted apart.
    assert.deepEqual(await run("m1", a, 2), [200, 429]);
    assert.deepEqual(await run("m2", a, 2), [200, 429]);
    // team-b: the default on m1, no limit at all on m2 (and so no headers).
    assert.deepEqual(await run("m1", b, 4), [200, 200, 200, 429]);
    assert.deepEqual(await run("m2", b, 5), [200, 200, 200, 200, 200]);
    const unlimited = await send(url, { model: "m2" }, b);
    await unlimited.body?.cancel();
    assert.equal(unlimited.headers.get("x-ratelimit-limit-requests"), null);
    // team-c: the model's limit on m2.
    assert.deepEqual(await run("m2", c, 3), [200, 200, 429]);
    const refused = await send(url, { model: "m2" }, c);
    assert.match((await refused.json()).error.message, /Key "team-c" .* model "m2": 2 requests/);
  }, { auth: true });
});

Deno.test("rate_limit: tokens_per_minute charges usage when requests end, streams too", async () => {
  await withLimits({ default: { tokens_per_minute: 12 } }, async ({ url, gateway }) => {
    const first = await send(url, { model: "m1", max_tokens: 8 });
    assert.equal(first.headers.get("x-ratelimit-limit-tokens"), "12");
    assert.equal(first.headers.get("x-ratelimit-remaining-tokens"), "12");
    const used = (await first.json()).usage.total_tokens;
    assert.ok(used > 8 && used < 12, `usage ${used}`);
    await waitFor(() => totalInFlight(gateway) === 0);
    const second = await send(url, { model: "m1", max_tokens: 8 });
    assert.equal(second.status, 200);
    assert.equal(second.headers.get("x-ratelimit-remaining-tokens"), String(12 - used));
    await second.body?.cancel();
    await waitFor(() => totalInFlight(gateway) === 0);
    const refused = await send(url, { model: "m1" });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("x-ratelimit-remaining-tokens"), "0");
    assert.match((await refused.json()).error.message, /12 tokens per minute/);

    // A stream whose client did not ask for usage is charged too: the spec adds the usage chunk.
    const stream = await send(url, { model: "m2", max_tokens: 30, stream: true });
    assert.equal(stream.status, 200);
    assert.match(await stream.text(), /data: \[DONE\]/);
    await waitFor(() => totalInFlight(gateway) === 0);
    const afterStream = await send(url, { model: "m2" });
    assert.equal(afterStream.status, 429);
    assert.match((await afterStream.json()).error.message, /"tokens_per_minute"/);
  }, { extra: { usage: { add_stream_usage: true } } });
});

Deno.test("rate_limit: a held stream takes the only concurrent slot until it ends", async () => {
  await withLimits(
    { default: { concurrent: 1 }, key_header: "x-api-key" },
    async ({ url, sims, gateway }) => {
      const gate = sims[0]!.gate();
      const held = await postJson(`${url}/v1/chat/completions`, {
        model: "m1",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 4,
        stream: true,
      }, { "x-api-key": "client-one", "x-request-id": "same-id" });
      assert.equal(held.status, 200);
      await sims[0]!.until((state) => state.gated === 1);
      // A repeated request id takes no shortcut.
      const refused = await postJson(`${url}/v1/chat/completions`, {
        model: "m1",
        messages: [{ role: "user", content: "hi" }],
      }, { "x-api-key": "client-one", "x-request-id": "same-id" });
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get("retry-after"), "1");
      assert.match((await refused.json()).error.message, /1 concurrent requests/);
      // Another header value is another key, with its own slot.
      const other = await postJson(`${url}/v1/chat/completions`, {
        model: "m1",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 1,
      }, { "x-api-key": "client-two" });
      assert.equal(other.status, 200);
      await other.body?.cancel();
      gate.open();
      assert.match(await held.text(), /data: \[DONE\]/);
      await waitFor(() => totalInFlight(gateway) === 0);
      const again = await postJson(`${url}/v1/chat/completions`, {
        model: "m1",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 1,
      }, { "x-api-key": "client-one" });
      assert.equal(again.status, 200);
      await again.body?.cancel();
    },
  );
});

Deno.test("rate_limit: bad options stop start-up with each problem named", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ store: "redis" }, /redis_url: store "redis" needs a URL/],
    [{ redis_url: "redis://127.0.0.1:1" }, /redis_url: is set but store is "memory"/],
    [
      { default: { requests_per_minute: 0 } },
      /default\.requests_per_minute: must be a positive whole number, or null .* not 0/,
    ],
    [{ keys: { "team-a": { rpm: 5 } } }, /keys\.team-a: .*"rpm"/],
    [{ on_store_error: "maybe" }, /on_store_error: /],
  ];
  for (const [options, expected] of cases) {
    await assert.rejects(
      startStack({
        spec: () => ({
          models: { m1: { servers: ["http://127.0.0.1:9"] } },
          plugins: [{ name: "rate_limit", options }],
        }),
      }),
      (error: Error) => {
        assert.match(error.message, /plugins\[0\] "rate_limit": /);
        assert.match(error.message, expected);
        return true;
      },
    );
  }
});
