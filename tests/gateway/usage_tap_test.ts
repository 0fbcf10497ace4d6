import assert from "node:assert/strict";
import { UsageTap } from "../../gateway/usage_tap.ts";

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

/** Feeds a stream's bytes in pieces of `size` bytes and returns the usage read. */
function sseUsage(text: string, size: number): unknown {
  const bytes = encoder.encode(text);
  const tap = new UsageTap(true);
  for (let offset = 0; offset < bytes.length; offset += size) {
    tap.chunk(bytes.slice(offset, offset + size));
  }
  return tap.finish();
}

Deno.test("a stream's usage is read however its bytes are cut, LF or CRLF events", () => {
  const events = [
    { choices: [{ delta: { role: "assistant" } }] },
    { choices: [{ delta: { content: "héllo wörld" } }] },
    { choices: [], usage },
  ];
  for (const newline of ["\n", "\r\n"]) {
    const text = events.map((event) => `data: ${JSON.stringify(event)}${newline}${newline}`)
      .join("") + `data: [DONE]${newline}${newline}`;
    for (const size of [1, 2, 3, 5, 7, 13, 64, text.length]) {
      assert.deepEqual(sseUsage(text, size), usage, `newline ${JSON.stringify(newline)}, ${size}`);
    }
  }
});

Deno.test("with usage in every event the last one counts; an unfinished last event too", () => {
  const step = (n: number) => ({ prompt_tokens: 3, completion_tokens: n, total_tokens: 3 + n });
  const text = [1, 2, 3].map((n) =>
    `data: ${JSON.stringify({ choices: [{ delta: { content: "x" } }], usage: step(n) })}\n\n`
  ).join("");
  for (const size of [1, 4, 9, text.length]) assert.deepEqual(sseUsage(text, size), step(3));
  const unfinished = `data: ${JSON.stringify({ choices: [], usage })}`;
  assert.deepEqual(sseUsage(unfinished, 10), usage);
  assert.equal(sseUsage("data: [DONE]\n\n", 3), undefined);
});

Deno.test("a stream keeps no bytes between whole events, only an unfinished one", () => {
  for (const newline of ["\n", "\r\n"]) {
    const tap = new UsageTap(true);
    const event = encoder.encode(`data: {"choices":[{"delta":{"content":"a"}}]}${newline}`);
    for (let i = 0; i < 100; i++) {
      tap.chunk(event);
      tap.chunk(encoder.encode(newline));
      assert.equal(tap.keptBytes, 0, `after event ${i}, newline ${JSON.stringify(newline)}`);
    }
    tap.chunk(encoder.encode('data: {"choices":[],'));
    assert.equal(tap.keptBytes, 20);
    tap.chunk(encoder.encode(`"usage":${JSON.stringify(usage)}}${newline}${newline}`));
    assert.equal(tap.keptBytes, 0);
    assert.deepEqual(tap.finish(), usage);
  }
});
