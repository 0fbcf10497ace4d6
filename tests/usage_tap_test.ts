import assert from "node:assert/strict";
import { UsageTap } from "../gateway/usage_tap.ts";

const encoder = new TextEncoder();

function jsonUsage(body: unknown, parts = 1): unknown {
  const bytes = encoder.encode(typeof body === "string" ? body : JSON.stringify(body));
  const tap = new UsageTap(false);
  const size = Math.ceil(bytes.length / parts);
  for (let offset = 0; offset < bytes.length; offset += size) {
    tap.chunk(bytes.slice(offset, offset + size));
  }
  return tap.finish();
}

const usage = { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 };

Deno.test("a JSON answer's usage is read, details and all", () => {
  assert.deepEqual(
    jsonUsage({
      id: "x",
      choices: [{ message: { content: "hi" } }],
      usage: { ...usage, prompt_tokens_details: { cached_tokens: 4 } },
    }),
    usage,
  );
});

Deno.test("a usage look-alike inside the answer text does not fool the reader", () => {
  const content = 'He wrote "usage": {"prompt_tokens": 999} in the doc';
  assert.deepEqual(jsonUsage({ usage, choices: [{ message: { content } }] }), usage);
  assert.deepEqual(jsonUsage({ choices: [{ message: { content } }], usage }), usage);
});

Deno.test("an answer with usage null or none has no usage", () => {
  assert.equal(jsonUsage({ choices: [], usage: null, other: { a: 1 } }), undefined);
  assert.equal(jsonUsage({ choices: [] }), undefined);
  assert.equal(jsonUsage("not json"), undefined);
});

Deno.test("a JSON answer split mid-character keeps its text and usage", () => {
  const body = { choices: [{ message: { content: "héllo wörld ✓".repeat(50) } }], usage };
  for (const parts of [2, 3, 7, 31]) assert.deepEqual(jsonUsage(body, parts), usage);
});

Deno.test("a stream's final usage event is read", () => {
  const tap = new UsageTap(true);
  const events = [
    { choices: [{ delta: { content: "a" } }] },
    { choices: [{ delta: { content: '"usage": {"prompt_tokens": 1}' } }] },
    { choices: [], usage },
  ];
  for (const event of events) tap.chunk(encoder.encode(`data: ${JSON.stringify(event)}\n\n`));
  tap.chunk(encoder.encode("data: [DONE]\n\n"));
  assert.deepEqual(tap.finish(), usage);
});
