/**
 * Raw-socket upstream faults: every broken response head or framing is answered with an
 * OpenAI-shaped 502 `upstream_bad_response` naming the server, on the plain and the streaming
 * path, the gateway stays up, and in-flight counts, slots and deadlines return to zero (the
 * server has `max_concurrent: 1`, so a leaked slot would make the next request 503).
 *
 * @module
 */
import assert from "node:assert/strict";
import { answering } from "../support/raw_server.ts";
import {
  assertOpenAiError,
  assertSettled,
  chatBody,
  GOOD,
  postChat,
  withRawGateway,
} from "../support/raw_gateway.ts";

const OK = "HTTP/1.1 200 OK\r\n";
const JSON_TAIL = "content-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
const SSE_CHUNKED = "content-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

/** [what, the server's bytes, the message after `Server "url" `]. */
const CASES: [string, string, string][] = [
  [
    "0x01 in a value",
    `${OK}x-a: a\x01b\r\n${JSON_TAIL}`,
    'sent a control byte in the value of header "x-a"',
  ],
  [
    "ESC in a value",
    `${OK}x-a: \x1b[31m\r\n${JSON_TAIL}`,
    'sent a control byte in the value of header "x-a"',
  ],
  [
    "DEL in a value",
    `${OK}x-a: a\x7f\r\n${JSON_TAIL}`,
    'sent a control byte in the value of header "x-a"',
  ],
  [
    "NUL in a value",
    `${OK}X-A: a\x00b\r\n${JSON_TAIL}`,
    'sent a control byte in the value of header "x-a"',
  ],
  [
    "a bare CR in a value",
    `${OK}x-a: a\rb\r\n${JSON_TAIL}`,
    'sent a control byte in the value of header "x-a"',
  ],
  ["status 999", `HTTP/1.1 999 Nope\r\n${JSON_TAIL}`, 'sent an invalid status "999"'],
  ["status 099", `HTTP/1.1 099 Low\r\n${JSON_TAIL}`, 'sent an invalid status "099"'],
  ["status 600", `HTTP/1.1 600\r\n${JSON_TAIL}`, 'sent an invalid status "600"'],
  [
    "a status line without a space",
    `HTTP/1.1 200OK\r\n${JSON_TAIL}`,
    'sent a malformed status line "HTTP/1.1 200OK"',
  ],
  [
    "HTTP/2 in the status line",
    `HTTP/2 200 OK\r\n${JSON_TAIL}`,
    'sent a malformed status line "HTTP/2 200 OK"',
  ],
  [
    "an unsolicited 101",
    "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
    "sent 101 Switching Protocols to a request that asked for no upgrade",
  ],
  ["a name with a space", `${OK}x a: b\r\n${JSON_TAIL}`, 'sent a malformed header line "x a: b"'],
  [
    "a folded line",
    `${OK}x-a: b\r\n  folded\r\n${JSON_TAIL}`,
    'sent a malformed header line "  folded"',
  ],
  [
    "a line without colon",
    `${OK}nocolon\r\n${JSON_TAIL}`,
    'sent a malformed header line "nocolon"',
  ],
  ["101 headers", `${OK}${"x-h: 1\r\n".repeat(101)}${JSON_TAIL}`, "sent more than 100 headers"],
  [
    "a head over 64 KiB",
    `${OK}x-big: ${"a".repeat(70_000)}\r\n${JSON_TAIL}`,
    "sent response headers larger than 65536 bytes",
  ],
  [
    "conflicting content-length",
    `${OK}content-length: 2\r\n${JSON_TAIL.replace("2", "3")}`,
    'sent conflicting content-length headers "2" and "3"',
  ],
  [
    "a negative content-length",
    `${OK}content-length: -1\r\n\r\n{}`,
    'sent an invalid content-length "-1"',
  ],
  [
    "a chunk size past 2^48",
    `${OK}content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1000000000000\r\n`,
    'sent a chunk size above 281474976710655 "1000000000000"',
  ],
  [
    "a chunk size that is not hex",
    `${OK}content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    'sent a malformed chunk size "zz"',
  ],
  [
    "chunk data longer than its size",
    `${OK}content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n`,
    "sent chunk data longer than its chunk size",
  ],
];

function script() {
  return answering((request) => {
    const match = /"content":"case-(\d+)"/.exec(request);
    return match ? CASES[Number(match[1])]![1] : GOOD;
  });
}

for (const stream of [false, true]) {
  Deno.test(`bad upstream heads and framings are 502 upstream_bad_response (stream: ${stream})`, async () => {
    // The breaker is off: twenty bad answers in a row would rightly eject the server.
    await withRawGateway(script(), async ({ stack, server, chat }) => {
      for (const [index, [what, , message]] of CASES.entries()) {
        const response = await postChat(chat, chatBody({ stream, marker: `case-${index}` }));
        await assertOpenAiError(response, {
          status: 502,
          code: "upstream_bad_response",
          message: `Server "${server.url}" ${message}`,
        }).catch((error) => assert.fail(`${what}: ${error.message}`));
        await assertSettled(stack);
        // The slot came back: with max_concurrent 1 the next request gets through at once.
        const good = await postChat(chat, chatBody({ stream }));
        assert.equal(good.status, 200, what);
        assert.equal(await good.text(), '{"ok":true}');
      }
      const [serverState] = stack.gateway.pool.all();
      assert.equal(serverState!.inFlight, 0);
    }, { outlier_detection: { enabled: false } });
  });
}

Deno.test("a stream broken mid-event ends with whole events and a parseable error event", async () => {
  const first = 'data: {"a":1}\n\n';
  const partial = 'data: {"b"';
  const wire = `${OK}${SSE_CHUNKED}${first.length.toString(16)}\r\n${first}\r\n` +
    `${partial.length.toString(16)}\r\n${partial}\r\nzz\r\n`;
  await withRawGateway(answering(() => wire), async ({ chat, server }) => {
    const response = await postChat(chat, chatBody({ stream: true }));
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.ok(text.endsWith("\n\n"), text);
    const events = text.split("\n\n").filter(Boolean).map((event) => {
      assert.ok(event.startsWith("data: "), event);
      return JSON.parse(event.slice("data: ".length));
    });
    assert.equal(events.length, 2, text);
    assert.deepEqual(events[0], { a: 1 });
    assert.equal(events[1].error.code, "upstream_bad_response");
    assert.equal(
      events[1].error.message,
      `Server "${server.url}" sent a malformed chunk size "zz"`,
    );
  });
});
