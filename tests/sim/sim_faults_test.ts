/**
 * Tests of the simulated vLLM server over HTTP on loopback: failure injection, aborts, gates, live updates and the CLI.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseSimArgs } from "../../sim/main.ts";
import { startSimServer } from "../../sim/server.ts";
import { FAST, json, post, sample, scrape, SseReader, withSim } from "./sim_helpers.ts";

Deno.test("injected errors use OpenAI's shape and the configured status", async () => {
  await withSim({ errorRate: 1 }, async (sim) => {
    const failed = await post(sim, "/v1/chat/completions", {
      messages: [{ role: "user", content: "Hi" }],
    });
    assert.equal(failed.status, 500);
    const body = await json(failed);
    assert.equal(body.error.type, "InternalServerError");
    assert.equal(body.error.code, 500);
    assert.equal(typeof body.error.message, "string");
    assert.equal(body.error.param, null);
    sim.update({ errorStatus: 429 });
    const limited = await post(sim, "/v1/completions", { prompt: "Hi" });
    assert.equal(limited.status, 429);
    assert.equal((await json(limited)).error.code, 429);
    sim.update({ errorRate: 0 });
    const ok = await post(sim, "/v1/completions", { prompt: "Hi" });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    assert.equal(sim.state().received, 3);
    assert.equal(sim.received.at(-1)?.headers.get("x-test"), "yes");
    assert.equal(JSON.parse(sim.received.at(-1)?.bodyText ?? "").prompt, "Hi");
  });
});

Deno.test("metrics failures: status and hang", async () => {
  await withSim({ metricsStatus: 500 }, async (sim) => {
    const failed = await fetch(`${sim.url}/metrics`);
    assert.equal(failed.status, 500);
    await failed.body?.cancel();
    sim.update({ metricsStatus: 200, metricsHang: true });
    const controller = new AbortController();
    const hung = fetch(`${sim.url}/metrics`, { signal: controller.signal }).catch((e: Error) =>
      e.name
    );
    await sim.until((state) => state.hanging === 1);
    controller.abort();
    assert.equal(await hung, "AbortError");
    await sim.until((state) => state.hanging === 0);
  });
});

Deno.test("hang accepts a request and never answers it", async () => {
  await withSim({ hang: true }, async (sim) => {
    const controller = new AbortController();
    let settled = false;
    const hung = post(sim, "/v1/completions", { prompt: "Hi" }, { signal: controller.signal })
      .then(() => "answered", (error: Error) => error.name)
      .finally(() => settled = true);
    await sim.until((state) => state.hanging === 1);
    sim.update({ hang: false });
    const ok = await post(sim, "/v1/completions", { prompt: "Hi", max_tokens: 2 });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    assert.equal(settled, false);
    assert.equal(sim.state().hanging, 1);
    controller.abort();
    assert.equal(await hung, "AbortError");
    await sim.until((state) => state.hanging === 0);
  });
});

Deno.test("dropAfterTokens closes a stream abruptly mid-way", async () => {
  await withSim({ dropAfterTokens: 3 }, async (sim) => {
    const reader = new SseReader(
      await post(sim, "/v1/chat/completions", {
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 10,
        stream: true,
      }),
    );
    const events: string[] = [];
    await assert.rejects(async () => {
      for (let event = await reader.next(); event !== undefined; event = await reader.next()) {
        events.push(event);
      }
    });
    assert.equal(events.length, 4); // role chunk and three tokens
    assert.ok(!events.includes("[DONE]"));
    await sim.until((state) => state.aborted === 1 && state.running === 0);
  });
});

Deno.test("a client that disconnects mid-stream frees its slot", async () => {
  await withSim({}, async (sim) => {
    const reader = new SseReader(
      await post(sim, "/v1/completions", { prompt: "Hi", max_tokens: 10_000, stream: true }),
    );
    assert.ok(await reader.next());
    assert.equal(sim.state().running, 1);
    await reader.cancel();
    await sim.until((state) => state.running === 0 && state.aborted === 1);
    const text = await scrape(sim);
    assert.equal(sample(text, "vllm:request_success_total", 'finished_reason="abort"'), 1);
    assert.equal(sample(text, "vllm:kv_cache_usage_perc"), 0);
  });
});

Deno.test("gate holds streams before their last chunk, keeping their slots", async () => {
  await withSim({ maxNumSeqs: 1 }, async (sim) => {
    const gate = sim.gate();
    const reader = new SseReader(
      await post(sim, "/v1/chat/completions", {
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 4,
        stream: true,
      }),
    );
    const early: string[] = [];
    for (let i = 0; i < 4; i++) early.push((await reader.next()) ?? "");
    assert.ok(early.every((event) => JSON.parse(event).choices[0].finish_reason === null));
    const queued = post(sim, "/v1/completions", { prompt: "Hi", max_tokens: 2 });
    await sim.until((state) => state.gated === 1 && state.waiting === 1);
    assert.equal(sim.state().running, 1);
    assert.equal(sim.state().chunksWritten, 4); // role chunk and three of four tokens
    gate.open();
    const rest = await reader.rest();
    assert.equal(rest.length, 2);
    assert.equal(JSON.parse(rest[0] ?? "").choices[0].finish_reason, "length");
    assert.equal(rest[1], "[DONE]");
    assert.equal((await json(await queued)).usage.completion_tokens, 2);
    assert.equal(sim.state().gated, 0);
  });
});

Deno.test("close drops everything in flight and the port can be reused", async () => {
  const first = await startSimServer(FAST);
  const port = first.port;
  let reader: SseReader | undefined;
  const pending: Promise<string>[] = [];
  try {
    first.gate();
    reader = new SseReader(
      await post(first, "/v1/completions", { prompt: "Hi", max_tokens: 2, stream: true }),
    );
    assert.ok(await reader.next());
    await first.until((state) => state.gated === 1);
    const long = { prompt: "Hi", max_tokens: 10_000 };
    pending.push(post(first, "/v1/completions", long).then((r) => `${r.status}`, () => "dropped"));
    await first.until((state) => state.running === 1);
    first.update({ hang: true });
    pending.push(post(first, "/v1/completions", long).then((r) => `${r.status}`, () => "dropped"));
    await first.until((state) => state.hanging === 1);
  } finally {
    await first.close();
  }
  assert.deepEqual(await Promise.all(pending), ["dropped", "dropped"]);
  await assert.rejects(() => reader.rest());
  await withSim({ port }, async (second) => {
    assert.equal(second.port, port);
    const body = await json(await post(second, "/v1/completions", { prompt: "Hi", max_tokens: 1 }));
    assert.equal(body.usage.completion_tokens, 1);
  });
});

Deno.test("update changes speed live", async () => {
  await withSim({ itlMs: 1 }, async (sim) => {
    sim.update({ speed: 0.1 }); // 10 ms per decode step
    const reader = new SseReader(
      await post(sim, "/v1/completions", { prompt: "Hi", max_tokens: 50, stream: true }),
    );
    await reader.next();
    assert.equal(sim.state().running, 1);
    sim.update({ speed: 100 });
    assert.equal((await reader.rest()).at(-1), "[DONE]");
    assert.throws(
      () => sim.update({ errorRate: 2 }),
      /errorRate must lie between 0 and 1, not "2"/,
    );
  });
});

Deno.test("CLI flags map to options", () => {
  assert.deepEqual(
    parseSimArgs([
      "--port",
      "8001",
      "--model",
      "a",
      "--model",
      "b",
      "--itl-ms",
      "12.5",
      "--metrics-flavor",
      "sglang",
      "--accept-any-model",
      "false",
      "--hang",
    ]),
    {
      port: 8001,
      models: ["a", "b"],
      itlMs: 12.5,
      metricsFlavor: "sglang",
      acceptAnyModel: false,
      hang: true,
    },
  );
  assert.equal(parseSimArgs(["--help"]), "help");
  assert.throws(() => parseSimArgs(["--speed", "fast"]), /--speed needs a number, not "fast"/);
});
