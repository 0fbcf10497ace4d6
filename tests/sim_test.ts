/**
 * Tests of the simulated vLLM server over HTTP on loopback.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseSimArgs } from "../sim/main.ts";
import {
  type MetricsFlavor,
  type SimOptions,
  type SimServer,
  startSimServer,
} from "../sim/server.ts";

const FAST: SimOptions = { ttftMs: 2, itlMs: 2, prefillMsPerToken: 0 };

/** Runs `body` against a fresh simulator and always closes it. */
async function withSim(
  options: SimOptions,
  body: (sim: SimServer) => Promise<void>,
): Promise<void> {
  const sim = await startSimServer({ ...FAST, ...options });
  try {
    await body(sim);
  } finally {
    await sim.close();
  }
}

function post(
  sim: SimServer,
  path: string,
  body: unknown,
  init: RequestInit = {},
): Promise<Response> {
  return fetch(`${sim.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-test": "yes" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
}

// deno-lint-ignore no-explicit-any -- JSON edge in tests
async function json(response: Response): Promise<any> {
  return await response.json();
}

/** Reads SSE `data:` payloads one at a time. */
class SseReader {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(response: Response) {
    assert.ok(response.body);
    this.#reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next payload, or `undefined` at the end of the stream. */
  async next(): Promise<string | undefined> {
    while (true) {
      const end = this.#buffer.indexOf("\n\n");
      if (end >= 0) {
        const event = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        assert.ok(event.startsWith("data: "), `Unexpected SSE event "${event}"`);
        return event.slice("data: ".length);
      }
      const { value, done } = await this.#reader.read();
      if (done) return undefined;
      this.#buffer += value;
    }
  }

  /** All remaining payloads. */
  async rest(): Promise<string[]> {
    const events: string[] = [];
    for (let event = await this.next(); event !== undefined; event = await this.next()) {
      events.push(event);
    }
    return events;
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

async function scrape(sim: SimServer): Promise<string> {
  const response = await fetch(`${sim.url}/metrics`);
  assert.equal(response.status, 200);
  return await response.text();
}

/** The value of the first sample named `name` whose labels contain `labels`. */
function sample(text: string, name: string, labels = ""): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!line.includes(labels)) continue;
    return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

/** Scrapes until `predicate` holds, failing after `timeoutMs`. */
async function scrapeUntil(
  sim: SimServer,
  predicate: (text: string) => boolean,
  timeoutMs = 5000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const text = await scrape(sim);
    if (predicate(text)) return text;
    if (Date.now() > deadline) throw new Error(`Metrics did not match in time:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("chat completion has vLLM's shape, usage and max_tokens", async () => {
  await withSim({ models: ["m1"] }, async (sim) => {
    const body = await json(
      await post(sim, "/v1/chat/completions", {
        model: "m1",
        messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hello!" }],
        max_tokens: 5,
      }),
    );
    assert.equal(body.object, "chat.completion");
    assert.match(body.id, /^chatcmpl-/);
    assert.equal(body.model, "m1");
    assert.equal(typeof body.created, "number");
    assert.equal(body.choices.length, 1);
    assert.equal(body.choices[0].message.role, "assistant");
    assert.equal(body.choices[0].message.content, "lorem ipsum dolor sit amet");
    assert.equal(body.choices[0].finish_reason, "length");
    // "Be brief.\nHello!" is 16 characters: 4 tokens.
    assert.deepEqual(
      { ...body.usage, prompt_tokens_details: undefined },
      {
        prompt_tokens: 4,
        completion_tokens: 5,
        total_tokens: 9,
        prompt_tokens_details: undefined,
      },
    );
    const other = await json(
      await post(sim, "/v1/chat/completions", {
        model: "m1",
        messages: [{ role: "user", content: [{ type: "text", text: "Hi" }] }],
        max_completion_tokens: 2,
      }),
    );
    assert.equal(other.usage.completion_tokens, 2);
    const fallback = await json(
      await post(sim, "/v1/chat/completions", { messages: [{ role: "user", content: "Hi" }] }),
    );
    assert.equal(fallback.usage.completion_tokens, 16);
    assert.equal(fallback.model, "m1");
    assert.equal(sim.state().completed, 3);
  });
});

Deno.test("text completion and embeddings have vLLM's shapes", async () => {
  await withSim({}, async (sim) => {
    const completion = await json(
      await post(sim, "/v1/completions", { model: "any", prompt: "Once upon", max_tokens: 3 }),
    );
    assert.equal(completion.object, "text_completion");
    assert.match(completion.id, /^cmpl-/);
    assert.equal(completion.model, "any");
    assert.equal(completion.choices[0].text, "lorem ipsum dolor");
    assert.equal(completion.choices[0].finish_reason, "length");
    assert.equal(completion.usage.prompt_tokens, 3);
    assert.equal(completion.usage.completion_tokens, 3);
    assert.equal(completion.usage.total_tokens, 6);

    const embeddings = await json(
      await post(sim, "/v1/embeddings", { model: "emb", input: ["abcd", "abcdefgh"] }),
    );
    assert.equal(embeddings.object, "list");
    assert.equal(embeddings.data.length, 2);
    assert.equal(embeddings.data[1].index, 1);
    assert.equal(embeddings.data[0].object, "embedding");
    assert.equal(embeddings.data[0].embedding.length, 8);
    assert.ok(embeddings.data[0].embedding.every((x: unknown) => typeof x === "number"));
    assert.notDeepEqual(embeddings.data[0].embedding, embeddings.data[1].embedding);
    assert.equal(embeddings.usage.prompt_tokens, 3);
    const again = await json(await post(sim, "/v1/embeddings", { input: "abcd" }));
    assert.deepEqual(again.data[0].embedding, embeddings.data[0].embedding);
  });
});

Deno.test("models, health, load and unknown paths answer like vLLM", async () => {
  await withSim({ models: ["a", "b"] }, async (sim) => {
    const models = await json(await fetch(`${sim.url}/v1/models`));
    assert.equal(models.object, "list");
    assert.deepEqual(models.data.map((m: { id: string }) => m.id), ["a", "b"]);
    assert.equal(models.data[0].object, "model");
    const health = await fetch(`${sim.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), "");
    assert.deepEqual(await json(await fetch(`${sim.url}/load`)), { server_load: 0 });
    const missing = await fetch(`${sim.url}/nope`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    sim.update({ healthStatus: 503 });
    const sick = await fetch(`${sim.url}/health`);
    assert.equal(sick.status, 503);
    await sick.body?.cancel();
  });
});

Deno.test("bad requests get OpenAI-shaped errors", async () => {
  await withSim(
    { models: ["m1"], acceptAnyModel: false, numGpuBlocks: 4, blockSize: 16 },
    async (sim) => {
      const unknown = await post(sim, "/v1/chat/completions", {
        model: "other",
        messages: [{ role: "user", content: "Hi" }],
      });
      assert.equal(unknown.status, 404);
      assert.deepEqual(await json(unknown), {
        error: {
          message: "The model `other` does not exist.",
          type: "NotFoundError",
          param: "model",
          code: 404,
        },
      });
      const malformed = await post(sim, "/v1/chat/completions", "{not json");
      assert.equal(malformed.status, 400);
      const error = (await json(malformed)).error;
      assert.equal(error.type, "BadRequestError");
      assert.equal(error.code, 400);
      assert.match(error.message, /not valid JSON/);
      const zero = await post(sim, "/v1/completions", { model: "m1", prompt: "x", max_tokens: 0 });
      assert.equal(zero.status, 400);
      assert.equal((await json(zero)).error.param, "max_tokens");
      const noMessages = await post(sim, "/v1/chat/completions", { model: "m1", messages: [] });
      assert.equal(noMessages.status, 400);
      await noMessages.body?.cancel();
      // 4 blocks of 16 tokens hold 64 tokens; 60 + 10 do not fit.
      const long = await post(sim, "/v1/completions", {
        model: "m1",
        prompt: "x".repeat(240),
        max_tokens: 10,
      });
      assert.equal(long.status, 400);
      assert.match((await json(long)).error.message, /maximum context length is 64 tokens/);
      assert.equal(sim.state().running + sim.state().waiting, 0);
    },
  );
});

Deno.test("chat streaming sends a role chunk, token chunks and [DONE]", async () => {
  await withSim({}, async (sim) => {
    const response = await post(sim, "/v1/chat/completions", {
      model: "m",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 4,
      stream: true,
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
    const events = await new SseReader(response).rest();
    assert.equal(events.at(-1), "[DONE]");
    const chunks = events.slice(0, -1).map((event) => JSON.parse(event));
    assert.equal(chunks.length, 5);
    assert.ok(chunks.every((chunk) => chunk.object === "chat.completion.chunk"));
    assert.ok(chunks.every((chunk) => chunk.id === chunks[0].id && chunk.model === "m"));
    assert.deepEqual(chunks[0].choices[0].delta, { role: "assistant", content: "" });
    const text = chunks.slice(1).map((chunk) => chunk.choices[0].delta.content).join("");
    assert.equal(text, "lorem ipsum dolor sit");
    assert.deepEqual(
      chunks.map((chunk) => chunk.choices[0].finish_reason),
      [null, null, null, null, "length"],
    );
    assert.ok(chunks.every((chunk) => chunk.usage === undefined));
  });
});

Deno.test("streaming with include_usage ends with a usage chunk; completions stream too", async () => {
  await withSim({ outputTokens: 2 }, async (sim) => {
    const chat = await new SseReader(
      await post(sim, "/v1/chat/completions", {
        messages: [{ role: "user", content: "Hello" }],
        max_tokens: 5,
        stream: true,
        stream_options: { include_usage: true },
      }),
    ).rest();
    assert.equal(chat.at(-1), "[DONE]");
    const usage = JSON.parse(chat.at(-2) ?? "");
    assert.deepEqual(usage.choices, []);
    assert.deepEqual(
      [usage.usage.prompt_tokens, usage.usage.completion_tokens, usage.usage.total_tokens],
      [2, 2, 4],
    );
    // outputTokens 2 < max_tokens 5: the answer stops early.
    assert.equal(JSON.parse(chat.at(-3) ?? "").choices[0].finish_reason, "stop");

    const completion = await new SseReader(
      await post(sim, "/v1/completions", { prompt: "Hello", max_tokens: 1, stream: true }),
    ).rest();
    assert.equal(completion.length, 2);
    const chunk = JSON.parse(completion[0] ?? "");
    assert.equal(chunk.object, "text_completion");
    assert.equal(chunk.choices[0].text, "lorem");
    assert.equal(chunk.choices[0].finish_reason, "length");
  });
});

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
      assert.equal(body.choices[0].text.split(" ").length, 40);
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
