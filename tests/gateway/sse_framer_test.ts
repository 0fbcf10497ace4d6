import assert from "node:assert/strict";
import { lastBoundary, MAX_EVENT_BYTES, SseFramer } from "../../gateway/sse_framer.ts";
import { ProtocolError } from "../../upstream/http1_parse.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function feed(framer: SseFramer, text: string): string {
  const out = framer.push(encoder.encode(text));
  return out === undefined ? "" : decoder.decode(out);
}

Deno.test("lastBoundary finds the end of the last event with any line ends", () => {
  const cases: [string, number][] = [
    ["data: a\n\n", 9],
    ["data: a\r\n\r\n", 11],
    ["data: a\r\rdata: b", 9],
    ["data: a\n\r\n", 10],
    ["data: a\n\ndata: b\n", 9],
    ["data: a\r\n", 0],
    ["data: a", 0],
    ["", 0],
  ];
  for (const [text, end] of cases) assert.equal(lastBoundary(encoder.encode(text)), end, text);
});

Deno.test("SseFramer passes whole events at once and holds one unfinished event", () => {
  const framer = new SseFramer();
  const whole = encoder.encode("data: 1\n\ndata: 2\n\n");
  assert.equal(framer.push(whole), whole, "whole events pass through uncopied");
  assert.equal(feed(framer, "data: 3\n\ndata: "), "data: 3\n\n");
  assert.equal(feed(framer, "4"), "");
  assert.equal(feed(framer, "\n\ndata: 5\n"), "data: 4\n\n");
  assert.equal(framer.drop(), true, "the unfinished event is dropped at the end");
  assert.equal(framer.drop(), false);
});

Deno.test("SseFramer refuses an unfinished event over the limit", () => {
  const framer = new SseFramer();
  feed(framer, "data: ");
  assert.throws(() => feed(framer, "x".repeat(MAX_EVENT_BYTES)), ProtocolError);
});
