/**
 * Tests of the simulator's tokenizer endpoints over HTTP on loopback: vLLM's shapes for
 * `/tokenize`, `/detokenize` and the render endpoints, the same ids everywhere, and the prefix
 * structure a cache-aware router sees.
 *
 * @module
 */

import assert from "node:assert/strict";
import { json, post, sample, scrape, withSim } from "./sim_helpers.ts";

const MESSAGES = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Name a colour." },
];

Deno.test("/tokenize answers vLLM's shape for prompts and messages", async () => {
  await withSim({ blockSize: 16, numGpuBlocks: 64 }, async (sim) => {
    const prompt = await json(await post(sim, "/tokenize", { prompt: "Hello world!" }));
    assert.deepEqual(Object.keys(prompt).sort(), [
      "count",
      "max_model_len",
      "token_strs",
      "tokens",
    ]);
    // Three four-character tokens.
    assert.equal(prompt.count, 3);
    assert.equal(prompt.tokens.length, 3);
    assert.equal(prompt.max_model_len, 64 * 16);
    assert.equal(prompt.token_strs, null);
    const strs = await json(
      await post(sim, "/tokenize", {
        prompt: "Hello world!",
        add_special_tokens: false,
        return_token_strs: true,
      }),
    );
    assert.deepEqual(strs.token_strs, ["Hell", "o wo", "rld!"]);
    assert.deepEqual(strs.tokens, prompt.tokens);

    const chat = await json(await post(sim, "/tokenize", { messages: MESSAGES }));
    const usage = await json(
      await post(sim, "/v1/chat/completions", { messages: MESSAGES, max_tokens: 1 }),
    );
    assert.equal(chat.count, chat.tokens.length);
    assert.equal(usage.usage.prompt_tokens, chat.count);
    const strings = await json(
      await post(sim, "/tokenize", { messages: MESSAGES, return_token_strs: true }),
    );
    assert.equal(
      strings.token_strs.join(""),
      "<|system|>You are terse.<|user|>Name a colour.<|assistant|>",
    );
    const open = await json(
      await post(sim, "/tokenize", { messages: MESSAGES, add_generation_prompt: false }),
    );
    assert.deepEqual(open.tokens, chat.tokens.slice(0, -1));
  });
});

Deno.test("/detokenize turns ids back into text", async () => {
  await withSim({}, async (sim) => {
    const text = "The quick brown fox, 42 times.";
    const { tokens } = await json(
      await post(sim, "/tokenize", { prompt: text, add_special_tokens: false }),
    );
    assert.deepEqual(await json(await post(sim, "/detokenize", { tokens })), { prompt: text });
    const special = await json(await post(sim, "/tokenize", { prompt: "é" }));
    const decoded = await json(await post(sim, "/detokenize", { tokens: special.tokens }));
    assert.equal(decoded.prompt, "\uFFFD");
  });
});

Deno.test("render endpoints answer GenerateRequests with the ids of /tokenize", async () => {
  await withSim({ models: ["m"] }, async (sim) => {
    const body = { model: "m", messages: MESSAGES, max_tokens: 7, temperature: 0.5 };
    const rendered = await json(await post(sim, "/v1/chat/completions/render", body));
    for (const key of ["request_id", "token_ids", "features", "sampling_params", "model"]) {
      assert.ok(key in rendered, `Render lacks ${key}`);
    }
    assert.equal(rendered.model, "m");
    assert.equal(rendered.sampling_params.max_tokens, 7);
    assert.equal(rendered.sampling_params.temperature, 0.5);
    const tokenized = await json(await post(sim, "/tokenize", { model: "m", messages: MESSAGES }));
    assert.deepEqual(rendered.token_ids, tokenized.tokens);

    const list = await json(
      await post(sim, "/v1/completions/render", { model: "m", prompt: ["one", "two two"] }),
    );
    assert.ok(Array.isArray(list));
    assert.equal(list.length, 2);
    const two = await json(await post(sim, "/tokenize", { model: "m", prompt: "two two" }));
    assert.deepEqual(list[1].token_ids, two.tokens);
    const ids = await json(
      await post(sim, "/v1/completions/render", { model: "m", prompt: [5, 6, 7] }),
    );
    assert.deepEqual(ids[0].token_ids, [5, 6, 7]);
    assert.equal(
      sample(await scrape(sim), "http_requests_total", 'handler="/v1/chat/completions/render"'),
      1,
    );
    assert.equal(sim.state().tokenized, 5);
  });
});

Deno.test("a chat's next turn renders to the previous prompt, its answer and more", async () => {
  await withSim({}, async (sim) => {
    const first = await json(
      await post(sim, "/v1/chat/completions/render", { messages: MESSAGES }),
    );
    const reply = await json(
      await post(sim, "/v1/chat/completions", { messages: MESSAGES, max_tokens: 9 }),
    );
    const answer: string = reply.choices[0].message.content;
    const answerIds = await json(
      await post(sim, "/tokenize", { prompt: answer, add_special_tokens: false }),
    );
    // Every generated token re-tokenizes to one token.
    assert.equal(answerIds.count, 9);
    const next = [...MESSAGES, { role: "assistant", content: answer }, {
      role: "user",
      content: "Another one.",
    }];
    const second = await json(await post(sim, "/v1/chat/completions/render", { messages: next }));
    const prefix = [...first.token_ids, ...answerIds.tokens];
    assert.deepEqual(second.token_ids.slice(0, prefix.length), prefix);
  });
});

Deno.test("tokenizer endpoints reject bad requests in OpenAI's shape", async () => {
  await withSim({ models: ["m"], acceptAnyModel: false }, async (sim) => {
    const cases: Array<[string, unknown, number]> = [
      ["/tokenize", "{", 400],
      ["/tokenize", { model: "other", prompt: "x" }, 404],
      ["/tokenize", { prompt: 3 }, 400],
      ["/detokenize", { tokens: [1, -2] }, 400],
      ["/v1/chat/completions/render", { messages: [] }, 400],
      [
        "/v1/chat/completions/render",
        { messages: MESSAGES, add_generation_prompt: true, continue_final_message: true },
        400,
      ],
      ["/v1/completions/render", { prompt: {} }, 400],
    ];
    for (const [path, body, status] of cases) {
      const response = await post(sim, path, body);
      assert.equal(response.status, status, `${path} ${JSON.stringify(body)}`);
      const error = (await json(response)).error;
      assert.equal(error.code, status);
      assert.equal(typeof error.message, "string");
    }
    const get = await fetch(`${sim.url}/tokenize`);
    assert.equal(get.status, 405);
    await get.body?.cancel();
    assert.equal(sim.state().tokenized, 0);
  });
});
