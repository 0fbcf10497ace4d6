/**
 * Tests of the simulated vLLM server over HTTP on loopback: OpenAI shapes, errors and streaming.
 *
 * @module
 */

import assert from "node:assert/strict";
import { json, post, SseReader, withSim } from "./sim_helpers.ts";

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
    assert.equal(body.choices[0].message.content, "lorem ipsum dolor si");
    assert.equal(body.choices[0].finish_reason, "length");
    // <|system|> "Be brief." (3 tokens) <|user|> "Hello!" (2 tokens) <|assistant|>.
    assert.deepEqual(
      { ...body.usage, prompt_tokens_details: undefined },
      {
        prompt_tokens: 8,
        completion_tokens: 5,
        total_tokens: 13,
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
    assert.equal(completion.choices[0].text, "lorem ipsum ");
    assert.equal(completion.choices[0].finish_reason, "length");
    // "Once upon" in three four-character tokens.
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
    assert.equal(text, "lorem ipsum dolo");
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
      [4, 2, 6],
    );
    // outputTokens 2 < max_tokens 5: the answer stops early.
    assert.equal(JSON.parse(chat.at(-3) ?? "").choices[0].finish_reason, "stop");

    const completion = await new SseReader(
      await post(sim, "/v1/completions", { prompt: "Hello", max_tokens: 1, stream: true }),
    ).rest();
    assert.equal(completion.length, 2);
    const chunk = JSON.parse(completion[0] ?? "");
    assert.equal(chunk.object, "text_completion");
    assert.equal(chunk.choices[0].text, "lore");
    assert.equal(chunk.choices[0].finish_reason, "length");
  });
});
