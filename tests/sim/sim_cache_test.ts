/**
 * Tests of the simulator's prefix cache over HTTP on loopback: a chat's next turn hits the blocks
 * of the previous turn's prompt and answer, LRU eviction under KV pressure, and the counters and
 * cache config under vLLM's names.
 *
 * @module
 */

import assert from "node:assert/strict";
import { json, post, sample, scrape, SseReader, withSim } from "./sim_helpers.ts";
import type { SimServer } from "../../sim/server.ts";

const BLOCK = 16;

/** Prefix-cache hits (tokens) that one request adds. */
async function hitsOf(sim: SimServer, path: string, body: unknown): Promise<number> {
  const before = sample(await scrape(sim), "vllm:prefix_cache_hits_total") ?? 0;
  const response = await post(sim, path, body);
  assert.equal(response.status, 200);
  await response.body?.cancel();
  return (sample(await scrape(sim), "vllm:prefix_cache_hits_total") ?? 0) - before;
}

/** A completion body whose prompt is `blocks` full blocks of token ids starting at `base`. */
function idsPrompt(base: number, blocks: number): Record<string, unknown> {
  const prompt = Array.from({ length: blocks * BLOCK }, (_, i) => base + i);
  return { prompt, max_tokens: 1 };
}

Deno.test("a chat's second turn hits the blocks of the first turn's prompt and answer", async () => {
  await withSim({ blockSize: BLOCK }, async (sim) => {
    const history: Array<{ role: string; content: string }> = [
      { role: "system", content: "You answer questions about the sea. ".repeat(5) },
      { role: "user", content: "Why is the sea salty?" },
    ];
    const tokenized = await json(await post(sim, "/tokenize", { messages: history }));
    const first = await json(
      await post(sim, "/v1/chat/completions", { messages: history, max_tokens: 40 }),
    );
    const promptTokens: number = first.usage.prompt_tokens;
    assert.equal(promptTokens, tokenized.count);
    history.push(
      { role: "assistant", content: first.choices[0].message.content },
      { role: "user", content: "And why is it blue?" },
    );
    const hits = await hitsOf(sim, "/v1/chat/completions", { messages: history, max_tokens: 4 });
    // The first turn computed its prompt and 39 of its 40 answer tokens (the last one sampled is
    // never fed back): its full blocks are cached, answer blocks included.
    const cachedBlocks = Math.floor((promptTokens + 39) / BLOCK);
    assert.equal(hits, cachedBlocks * BLOCK);
    assert.ok(
      hits > Math.floor(promptTokens / BLOCK) * BLOCK,
      `Hits ${hits} stop within the first prompt (${promptTokens} tokens)`,
    );
  });
});

Deno.test("without prefix caching nothing hits and no hit is counted", async () => {
  await withSim({ blockSize: BLOCK, enablePrefixCaching: false }, async (sim) => {
    assert.equal(await hitsOf(sim, "/v1/completions", idsPrompt(1000, 4)), 0);
    assert.equal(await hitsOf(sim, "/v1/completions", idsPrompt(1000, 4)), 0);
    const text = await scrape(sim);
    assert.equal(sample(text, "vllm:prefix_cache_queries_total"), 0);
    assert.ok(text.includes('enable_prefix_caching="False"'));
  });
});

Deno.test("LRU eviction under KV pressure keeps recent prefixes and lowers hits", async () => {
  // Each prompt is 10 full blocks; one request holds 11 (its output's block too).
  async function run(numGpuBlocks: number): Promise<{ a: number; b: number }> {
    let result = { a: 0, b: 0 };
    await withSim({ blockSize: BLOCK, numGpuBlocks }, async (sim) => {
      const [a, b, c] = [idsPrompt(1000, 10), idsPrompt(2000, 10), idsPrompt(3000, 10)];
      await hitsOf(sim, "/v1/completions", a);
      await hitsOf(sim, "/v1/completions", b);
      // A is used again: B becomes the least recently used prefix.
      assert.equal(await hitsOf(sim, "/v1/completions", a), 9 * BLOCK);
      await hitsOf(sim, "/v1/completions", c);
      result = {
        a: await hitsOf(sim, "/v1/completions", a),
        b: await hitsOf(sim, "/v1/completions", b),
      };
    });
    return result;
  }
  // Room for everything: every prefix hits all but its last block (one token is left to compute).
  assert.deepEqual(await run(64), { a: 9 * BLOCK, b: 9 * BLOCK });
  // Room for two prefixes: C evicts B's blocks, tail first, while A (used more recently) stays.
  const pressed = await run(24);
  assert.equal(pressed.a, 9 * BLOCK);
  assert.ok(pressed.b < 9 * BLOCK, `B still hits ${pressed.b} tokens under pressure`);
});

Deno.test("prefix cache counters and cache config carry vLLM's names", async () => {
  await withSim({ blockSize: BLOCK, numGpuBlocks: 512, models: ["m"] }, async (sim) => {
    await hitsOf(sim, "/v1/completions", idsPrompt(1000, 3));
    await hitsOf(sim, "/v1/completions", idsPrompt(1000, 3));
    const text = await scrape(sim);
    // Queries and hits count prompt tokens: 2 x 48 queried, 2 blocks hit the second time.
    assert.equal(sample(text, "vllm:prefix_cache_queries_total", 'model_name="m"'), 96);
    assert.equal(sample(text, "vllm:prefix_cache_hits_total", 'model_name="m"'), 32);
    assert.ok(text.includes("# TYPE vllm:prefix_cache_hits_total counter"));
    const info = text.split("\n").find((line) => line.startsWith("vllm:cache_config_info{"));
    assert.ok(info, "vllm:cache_config_info is missing");
    for (
      const label of ['block_size="16"', 'num_gpu_blocks="512"', 'enable_prefix_caching="True"']
    ) {
      assert.ok(info.includes(label), `${info} lacks ${label}`);
    }
    assert.equal(
      sample(text, "http_requests_total", 'handler="/v1/completions",method="POST",status="2xx"'),
      2,
    );
  });
  await withSim({ blockSize: BLOCK, metricsFlavor: "vllm_legacy" }, async (sim) => {
    await hitsOf(sim, "/v1/completions", idsPrompt(1000, 3));
    const text = await scrape(sim);
    assert.equal(sample(text, "vllm:gpu_prefix_cache_queries_total"), 48);
    assert.equal(sample(text, "vllm:gpu_prefix_cache_hits_total"), 0);
  });
});

Deno.test("with prompt tokens details, usage reports each answer's cached prompt tokens", async () => {
  const body = { ...idsPrompt(5000, 4), max_tokens: 2 };
  await withSim({ blockSize: BLOCK, enablePromptTokensDetails: true }, async (sim) => {
    const first = await json(await post(sim, "/v1/completions", body));
    assert.deepEqual(first.usage.prompt_tokens_details, { cached_tokens: 0 });
    // The same prompt again: every full block but the last (one token is always computed).
    const second = await json(await post(sim, "/v1/completions", body));
    assert.deepEqual(second.usage.prompt_tokens_details, { cached_tokens: 3 * BLOCK });
    const stream = await post(sim, "/v1/completions", {
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    const reader = new SseReader(stream);
    let usage: { prompt_tokens_details: unknown } | undefined;
    for (let data = await reader.next(); data !== undefined; data = await reader.next()) {
      if (data !== "[DONE]") usage = JSON.parse(data).usage ?? usage;
    }
    assert.deepEqual(usage?.prompt_tokens_details, { cached_tokens: 3 * BLOCK });
  });
  await withSim({ blockSize: BLOCK }, async (sim) => {
    await (await post(sim, "/v1/completions", body)).body?.cancel();
    const again = await json(await post(sim, "/v1/completions", body));
    assert.equal(again.usage.prompt_tokens_details, null);
  });
});
