import assert from "node:assert/strict";
import { seededRandom } from "../../strategies/_seeded_random.ts";
import { ChunkedDecoder } from "../../upstream/http1_chunked.ts";
import {
  byteString,
  findHeadEnd,
  parseResponseHead,
  ProtocolError,
  type ResponseHead,
} from "../../upstream/http1_parse.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function parse(lines: string[], method = "POST"): ResponseHead {
  return parseResponseHead(lines.join("\r\n"), { method });
}

function framingOf(lines: string[], method = "POST"): [string, number, boolean] {
  const head = parse(lines, method);
  return [head.framing, head.length, head.keepAlive];
}

Deno.test("parseResponseHead reads HTTP/1.1 and HTTP/1.0 status lines", () => {
  const head = parse(["HTTP/1.1 201 Created", "content-length: 3"]);
  assert.equal(head.status, 201);
  assert.deepEqual(head.headers, [["content-length", "3"]]);
  assert.equal(parse(["HTTP/1.0 404 Not Found", "content-length: 1"]).status, 404);
  assert.equal(parse(["HTTP/1.1 500", "content-length: 1"]).status, 500, "reason is optional");
  assert.equal(parse(["HTTP/1.1 200 "]).status, 200);
});

Deno.test("parseResponseHead applies the keep-alive rules of each version", () => {
  const length = "content-length: 1";
  assert.equal(parse(["HTTP/1.1 200 OK", length]).keepAlive, true);
  assert.equal(parse(["HTTP/1.1 200 OK", length, "connection: close"]).keepAlive, false);
  assert.equal(parse(["HTTP/1.1 200 OK", length, "Connection: foo, Close"]).keepAlive, false);
  assert.equal(parse(["HTTP/1.0 200 OK", length]).keepAlive, false);
  assert.equal(parse(["HTTP/1.0 200 OK", length, "connection: keep-alive"]).keepAlive, true);
  assert.equal(parse(["HTTP/1.0 200 OK", length, "Connection: Keep-Alive"]).keepAlive, true);
});

Deno.test("parseResponseHead finds how the body is delimited", () => {
  const ok = "HTTP/1.1 200 OK";
  assert.deepEqual(framingOf([ok, "content-length: 10"], "HEAD"), ["none", 0, true]);
  assert.deepEqual(framingOf(["HTTP/1.1 204 No Content"]), ["none", 0, true]);
  assert.deepEqual(framingOf(["HTTP/1.1 304 Not Modified", "content-length: 9"]), [
    "none",
    0,
    true,
  ]);
  assert.deepEqual(framingOf(["HTTP/1.1 100 Continue"]), ["none", 0, true]);
  assert.deepEqual(framingOf([ok, "transfer-encoding: chunked"]), ["chunked", 0, true]);
  assert.deepEqual(framingOf([ok, "Transfer-Encoding: gzip, Chunked"]), ["chunked", 0, true]);
  assert.deepEqual(
    framingOf([ok, "transfer-encoding: chunked", "content-length: 5"]),
    ["chunked", 0, false],
    "transfer-encoding wins over content-length, and the connection is not reused",
  );
  assert.deepEqual(framingOf([ok, "transfer-encoding: gzip"]), ["close", 0, false]);
  assert.deepEqual(framingOf([ok, "transfer-encoding: chunked, gzip"]), ["close", 0, false]);
  assert.deepEqual(framingOf([ok, "content-length: 42"]), ["length", 42, true]);
  assert.deepEqual(framingOf([ok, "content-length: 0"]), ["none", 0, true]);
  assert.deepEqual(framingOf([ok, "content-length: 7", "Content-Length: 7"]), ["length", 7, true]);
  assert.deepEqual(framingOf([ok]), ["close", 0, false]);
  assert.deepEqual(framingOf([ok, "connection: keep-alive"]), ["close", 0, false]);
});

Deno.test("parseResponseHead rejects malformed heads with ProtocolError", () => {
  const ok = "HTTP/1.1 200 OK";
  const bad: string[][] = [
    [ok, "content-length: 5", "content-length: 6"],
    [ok, "content-length: -1"],
    [ok, "content-length: 5x"],
    ["HTTP/2 200 OK"],
    ["HTTP/1.1 20 OK"],
    ["HTTP/1.1 2000 OK"],
    ["HTTP/1.1  200 OK"],
    ["http/1.1 200 OK"],
    [""],
    [ok, "no colon here"],
    [ok, ": empty name"],
    [ok, " folded: line"],
    [ok, "\tfolded: line"],
    [ok, "bad name: x"],
    [ok, "bad(name): x"],
    [ok, "caf\u00e9: x"],
  ];
  for (const lines of bad) {
    assert.throws(() => parse(lines), ProtocolError, JSON.stringify(lines));
  }
});

Deno.test("parseResponseHead lower-cases names, trims values and keeps the order", () => {
  const head = parse([
    "HTTP/1.1 200 OK",
    "Content-Type:   text/event-stream \t",
    "X-Request-ID:abc",
    "x-empty:",
    "Set-Cookie: a=1",
    "set-cookie: b=2",
    "content-length: 1",
  ]);
  assert.deepEqual(head.headers, [
    ["content-type", "text/event-stream"],
    ["x-request-id", "abc"],
    ["x-empty", ""],
    ["set-cookie", "a=1"],
    ["set-cookie", "b=2"],
    ["content-length", "1"],
  ]);
});

Deno.test("findHeadEnd returns the index after the blank line within the range", () => {
  const bytes = encoder.encode("HTTP/1.1 200 OK\r\na: b\r\n\r\nbody\r\n\r\n");
  assert.equal(findHeadEnd(bytes, { start: 0, end: bytes.length }), 25);
  assert.equal(findHeadEnd(bytes, { start: 0, end: 24 }), -1, "blank line not complete");
  assert.equal(findHeadEnd(bytes, { start: 0, end: 25 }), 25);
  assert.equal(findHeadEnd(bytes, { start: 25, end: bytes.length }), bytes.length);
  assert.equal(findHeadEnd(bytes, { start: 23, end: bytes.length }), bytes.length);
  assert.equal(findHeadEnd(encoder.encode("a\n\nb\r\n"), { start: 0, end: 6 }), 3, "bare LF");
  assert.equal(findHeadEnd(encoder.encode("a\nb: c\n\r\nd"), { start: 0, end: 10 }), 9);
  assert.equal(findHeadEnd(encoder.encode("a\r\n\rb"), { start: 0, end: 5 }), -1, "lone CR");
  assert.equal(findHeadEnd(new Uint8Array(0), { start: 0, end: 0 }), -1);
});

Deno.test("byteString keeps one character per byte, including bytes above 0x7f", () => {
  assert.equal(byteString(encoder.encode("plain: ascii")), "plain: ascii");
  assert.equal(byteString(new Uint8Array([0x63, 0xe9, 0x80, 0xff, 0x00])), "c\u00e9\u0080\u00ff\0");
  const big = new Uint8Array(10_000).map((_, i) => i % 256);
  const text = byteString(big);
  assert.equal(text.length, big.length);
  for (let i = 0; i < big.length; i++) assert.equal(text.charCodeAt(i), big[i]);
});

interface Decoded {
  payload: string;
  done: boolean;
  /** Bytes left unconsumed after the last piece. */
  rest: string;
}

/**
 * Feeds `wire` to a decoder in pieces ending at `cuts`, keeping the unconsumed tail and putting it
 * in front of the next piece as the connection does.
 */
function decodePieces(wire: string, cuts: number[]): Decoded {
  const bytes = encoder.encode(wire);
  const chunked = new ChunkedDecoder();
  const out: number[] = [];
  let tail = new Uint8Array(0);
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    const input = new Uint8Array(tail.length + cut - from);
    input.set(tail);
    input.set(bytes.subarray(from, cut), tail.length);
    from = cut;
    const { consumed, payload } = chunked.decode(input);
    assert.ok(consumed >= 0 && consumed <= input.length);
    for (const view of payload) {
      assert.equal(view.buffer, input.buffer, "payload is a view of the input");
      out.push(...view);
    }
    tail = input.slice(consumed);
  }
  return {
    payload: decoder.decode(new Uint8Array(out)),
    done: chunked.done,
    rest: decoder.decode(tail),
  };
}

const SAMPLE = "5\r\nhello\r\n" +
  "1A;name=value;flag\r\nABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n" +
  'b ; q="x;y"\r\n, world\r\n\r\n\r\n' +
  "1\r\n\n\r\n" +
  "0;last\r\nx-trailer: 1\r\nx-other: two\r\n\r\n";
const SAMPLE_PAYLOAD = "helloABCDEFGHIJKLMNOPQRSTUVWXYZ, world\r\n\r\n\n";

Deno.test("ChunkedDecoder decodes a whole body in one buffer", () => {
  assert.deepEqual(decodePieces(SAMPLE, []), { payload: SAMPLE_PAYLOAD, done: true, rest: "" });
  assert.deepEqual(decodePieces("0\r\n\r\n", []), { payload: "", done: true, rest: "" });
});

Deno.test("ChunkedDecoder gives the same payload when fed one byte at a time", () => {
  const cuts = Array.from({ length: SAMPLE.length - 1 }, (_, i) => i + 1);
  assert.deepEqual(decodePieces(SAMPLE, cuts), { payload: SAMPLE_PAYLOAD, done: true, rest: "" });
});

Deno.test("ChunkedDecoder gives the same payload for random splits (seeded)", () => {
  for (let seed = 1; seed <= 300; seed++) {
    const random = seededRandom(seed);
    const cuts: number[] = [];
    for (let at = 0;;) {
      at += 1 + Math.floor(random() * 12);
      if (at >= SAMPLE.length) break;
      cuts.push(at);
    }
    const decoded = decodePieces(SAMPLE, cuts);
    assert.deepEqual(decoded, { payload: SAMPLE_PAYLOAD, done: true, rest: "" }, `seed ${seed}`);
  }
});

Deno.test("ChunkedDecoder is done only after the trailers' blank line", () => {
  assert.equal(decodePieces("5\r\nhello\r\n", []).done, false);
  assert.equal(decodePieces("5\r\nhello\r\n0\r\n", []).done, false);
  assert.equal(decodePieces("5\r\nhello\r\n0\r\nx-a: 1\r\n", []).done, false);
  assert.deepEqual(decodePieces("5\r\nhello\r\n0\r\nx-a: 1\r\n", []).rest, "");
  assert.deepEqual(decodePieces("3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200 OK", [5]), {
    payload: "abc",
    done: true,
    rest: "HTTP/1.1 200 OK",
  });
  assert.deepEqual(decodePieces("3\r\nab", []), { payload: "ab", done: false, rest: "" });
  assert.deepEqual(decodePieces("3\r\nabc\r", []), { payload: "abc", done: false, rest: "\r" });
});

Deno.test("ChunkedDecoder rejects malformed size lines and missing CRLF after data", () => {
  const bad = [
    "zz\r\nhello\r\n",
    "\r\n",
    "-1\r\n",
    "0x5\r\nhello\r\n",
    "5 x\r\nhello\r\n",
    "1000000000000\r\n",
    "3\r\nabcX\r\n0\r\n\r\n",
    "3\r\nabc0\r\n\r\n",
    "3\r\nabc\r\nq\r\n",
  ];
  for (const wire of bad) {
    // Payload before the fault comes out first; the fault is thrown on the next step.
    const chunked = new ChunkedDecoder();
    assert.throws(
      () => {
        chunked.decode(encoder.encode(wire));
        chunked.throwIfFailed();
      },
      ProtocolError,
      wire,
    );
  }
  const long = encoder.encode("1" + ";x".repeat(5000));
  assert.throws(() => new ChunkedDecoder().decode(long), ProtocolError, "size line too long");
  assert.equal(new ChunkedDecoder().decode(encoder.encode("ffffffffffff\r\n")).consumed, 14);
});
