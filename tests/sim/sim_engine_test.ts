/**
 * Tests of the simulated vLLM server over HTTP on loopback: scheduling, KV blocks, prefix cache and metrics.
 *
 * @module
 */

import assert from "node:assert/strict";
import { json, post, sample, scrape, scrapeUntil, SseReader, withSim } from "./sim_helpers.ts";
import type { MetricsFlavor } from "../../sim/server.ts";
import { textPrompt } from "../../sim/prompts.ts";
import { blockHashes } from "../../sim/tokens.ts";

Deno.test("requests queue beyond maxNumSeqs and client aborts free their slots", async () => {
  await withSim({ maxNumSeqs: 2, itlMs: 20 }, async (sim) => {
    const controller = new AbortController();
    const requests = Array.from(
      { length: 5 },
      (_, i) =>
        post(sim, "/v1/completions", { prompt: `request ${i}`, max_tokens: 200 }, {
          signal: controller.signal,
        }).catch((error: Error) => error.name),
    );
    const text = await scrapeUntil(
      sim,
      (text) =>
        sample(text, "vllm:num_requests_running") === 2 &&
        sample(text, "vllm:num_requests_waiting") === 3,
    );
    assert.match(text, /vllm:num_requests_running\{engine="0",model_name="sim-model"\} 2\.0/);
    assert.deepEqual(await json(await fetch(`${sim.url}/load`)), { server_load: 5 });
    controller.abort();
    assert.deepEqual(await Promise.all(requests), Array(5).fill("AbortError"));
    await sim.until((state) => state.aborted === 5);
    assert.deepEqual([sim.state().running, sim.state().waiting, sim.state().kvUsage], [0, 0, 0]);
    const after = await scrape(sim);
    assert.equal(sample(after, "vllm:request_success_total", 'finished_reason="abort"'), 5);
  });
});

Deno.test("requests wait while KV blocks run out", async () => {
  const options = { numGpuBlocks: 4, blockSize: 16, enablePrefixCaching: false, itlMs: 30 };
  await withSim(options, async (sim) => {
    // 160 characters are 40 tokens: 3 blocks each, so the second request must wait.
    const first = post(sim, "/v1/completions", { prompt: "a".repeat(160), max_tokens: 8 });
    const second = post(sim, "/v1/completions", { prompt: "b".repeat(160), max_tokens: 8 });
    const text = await scrapeUntil(
      sim,
      (text) =>
        sample(text, "vllm:num_requests_running") === 1 &&
        sample(text, "vllm:num_requests_waiting") === 1,
    );
    assert.equal(sample(text, "vllm:kv_cache_usage_perc"), 0.75);
    const bodies = await Promise.all([first, second].map(async (r) => await json(await r)));
    assert.deepEqual(bodies.map((b) => b.usage.completion_tokens), [8, 8]);
    await sim.onIdle();
    assert.equal(sim.state().kvUsage, 0);
  });
});

Deno.test("growing requests are preempted when blocks run out and still finish", async () => {
  await withSim({ numGpuBlocks: 5, blockSize: 16, itlMs: 1 }, async (sim) => {
    // 64 characters are 16 tokens (one block); 40 more tokens need 3 more blocks each.
    const bodies = await Promise.all(
      ["c", "d"].map(async (letter) =>
        await json(
          await post(sim, "/v1/completions", { prompt: letter.repeat(64), max_tokens: 40 }),
        )
      ),
    );
    for (const body of bodies) {
      assert.equal(body.usage.completion_tokens, 40);
      assert.equal(body.choices[0].text.length, 160);
    }
    const text = await scrape(sim);
    assert.ok((sample(text, "vllm:num_preemptions_total") ?? 0) >= 1);
    assert.equal(sample(text, "vllm:generation_tokens_total"), 80);
  });
});

Deno.test("long prompts prefill in chunks within the step token budget", async () => {
  await withSim(
    { maxNumBatchedTokens: 16, models: ["a", "b"], acceptAnyModel: false },
    async (sim) => {
      // 100 tokens of prompt take seven steps of at most 16 tokens.
      const body = await json(
        await post(sim, "/v1/completions", { model: "b", prompt: "p".repeat(400), max_tokens: 3 }),
      );
      assert.equal(body.usage.prompt_tokens, 100);
      assert.equal(body.usage.completion_tokens, 3);
      const text = await scrape(sim);
      assert.equal(sample(text, "vllm:prompt_tokens_total"), 100);
      assert.equal(sample(text, "vllm:request_success_total", 'finished_reason="length"'), 1);
    },
  );
});

Deno.test("prefix cache hits count tokens and shorten time to first token", async () => {
  const options = { blockSize: 16, ttftMs: 2, prefillMsPerToken: 0.5, itlMs: 2 };
  await withSim(options, async (sim) => {
    // 800 characters: 200 tokens, 12 full blocks (192 tokens).
    const prompt = Array.from({ length: 100 }, (_, i) => `w${String(i).padStart(7, "0")}`).join("");
    async function timeToFirstToken(): Promise<number> {
      const start = performance.now();
      const reader = new SseReader(
        await post(sim, "/v1/completions", { prompt, max_tokens: 2, stream: true }),
      );
      await reader.next();
      const elapsed = performance.now() - start;
      await reader.rest();
      return elapsed;
    }
    const cold = await timeToFirstToken();
    const warm = await timeToFirstToken();
    const text = await scrape(sim);
    assert.equal(sample(text, "vllm:prefix_cache_queries_total"), 400);
    assert.equal(sample(text, "vllm:prefix_cache_hits_total"), 192);
    assert.equal(sample(text, "vllm:prompt_tokens_total"), 400);
    assert.equal(sample(text, "vllm:time_to_first_token_seconds_count"), 2);
    // A warm prefix cache holds no running request's blocks.
    assert.equal(sample(text, "vllm:kv_cache_usage_perc"), 0);
    // Prefill is 2 + 200 * 0.5 = 102 ms cold and 2 + 8 * 0.5 = 6 ms warm.
    assert.ok(warm < cold / 2, `Warm TTFT ${warm} ms is not well below cold ${cold} ms`);
  });
});

Deno.test("the engine forecasts a prompt's first token from its cache, its batch and its step", async () => {
  const options = { blockSize: 16, ttftMs: 2, prefillMsPerToken: 0.5, itlMs: 10, batchFactor: 0 };
  await withSim(options, async (sim) => {
    // 800 characters: 200 tokens, 12 full blocks (192 tokens).
    const prompt = Array.from({ length: 100 }, (_, i) => `w${String(i).padStart(7, "0")}`).join("");
    const ids = textPrompt(prompt);
    const job = { promptTokens: ids.length, blockHashes: blockHashes(ids, 16) };
    assert.equal(ids.length, 200);
    // Idle, nothing cached: one step that prefills all 200 tokens.
    assert.equal(sim.forecast(job), 2 + 200 * 0.5);
    const reader = new SseReader(
      await post(sim, "/v1/completions", { prompt, max_tokens: 1000, stream: true }),
    );
    await reader.next();
    // Its blocks are cached and it decodes: a step that decodes it (10 ms) and prefills the last
    // 8 tokens (2 + 8 * 0.5 ms), after the rest of its decode step in progress (at most 10 ms).
    const forecast = sim.forecast(job);
    assert.ok(forecast >= 16 && forecast <= 26, `forecast ${forecast} ms`);
    // Another prompt finds nothing cached.
    const other = textPrompt(prompt.replace("w0000000", "x0000000"));
    const cold = sim.forecast({ promptTokens: other.length, blockHashes: blockHashes(other, 16) });
    assert.ok(cold >= 112 && cold <= 122, `cold forecast ${cold} ms`);
    await reader.cancel();
  });
});

Deno.test("metrics flavors expose their engines' names", async () => {
  const expected: Record<MetricsFlavor, [string[], string[]]> = {
    vllm: [
      [
        'vllm:num_requests_running{engine="0",model_name="m"} 0.0',
        "vllm:kv_cache_usage_perc{",
        "vllm:prefix_cache_queries_total{",
        "vllm:prefix_cache_hits_total{",
        "vllm:prompt_tokens_total{",
        "vllm:prompt_tokens_created{",
        "vllm:generation_tokens_total{",
        'vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} 1.0',
        "vllm:num_preemptions_total{",
        'vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="m"}',
        'vllm:time_to_first_token_seconds_bucket{engine="0",le="2560.0",model_name="m"}',
        'vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 1.0',
        "vllm:time_to_first_token_seconds_sum{",
        "vllm:time_to_first_token_seconds_created{",
        'vllm:e2e_request_latency_seconds_bucket{engine="0",le="7680.0",model_name="m"}',
        'vllm:inter_token_latency_seconds_bucket{engine="0",le="80.0",model_name="m"}',
        "vllm:inter_token_latency_seconds_count{",
        'vllm:cache_config_info{block_size="16",',
        "# TYPE vllm:time_to_first_token_seconds histogram",
        "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
      ],
      ["vllm:gpu_cache_usage_perc"],
    ],
    vllm_legacy: [
      [
        "vllm:gpu_cache_usage_perc{",
        "vllm:gpu_prefix_cache_queries_total{",
        "vllm:gpu_prefix_cache_hits_total{",
        "vllm:num_requests_waiting{",
      ],
      ["vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries_total"],
    ],
    sglang: [
      [
        'sglang:num_running_reqs{model_name="m"} 0.0',
        "sglang:num_queue_reqs{",
        "sglang:token_usage{",
        "sglang:cache_hit_rate{",
        "sglang:gen_throughput{",
        "sglang:prompt_tokens_total{",
        "sglang:generation_tokens_total{",
        "sglang:time_to_first_token_seconds_bucket{",
      ],
      ["vllm:"],
    ],
    llamacpp: [
      [
        "llamacpp:requests_processing 0",
        "llamacpp:requests_deferred 0",
        "llamacpp:prompt_tokens_total 1",
        "llamacpp:tokens_predicted_total 3",
        "llamacpp:n_decode_total ",
        "# TYPE llamacpp:prompt_tokens_total counter",
      ],
      ["{", "vllm:"],
    ],
  };
  for (const [flavor, [present, absent]] of Object.entries(expected)) {
    await withSim(
      { models: ["m"], metricsFlavor: flavor as MetricsFlavor },
      async (sim) => {
        await json(await post(sim, "/v1/completions", { prompt: "x", max_tokens: 3 }));
        const text = await scrape(sim);
        for (const name of present) {
          assert.ok(text.includes(name), `${flavor} lacks "${name}":\n${text}`);
        }
        for (const name of absent) {
          assert.ok(!text.includes(name), `${flavor} has "${name}"`);
        }
      },
    );
  }
});
