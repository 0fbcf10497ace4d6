import assert from "node:assert/strict";
import { ChunkedDecoder, MAX_CHUNK_SIZE } from "../../upstream/http1_chunked.ts";
import { MAX_HEADERS, parseResponseHead, ProtocolError } from "../../upstream/http1_parse.ts";

const encoder = new TextEncoder();

function parse(text: string, method = "POST") {
  return parseResponseHead(text, { method });
}

Deno.test("values may hold HTAB and bytes above 0x7f but no other control byte", () => {
  assert.equal(parse("HTTP/1.1 200 OK\r\nx-a: a\tb\xff\r\n").headers[0]![1], "a\tb\xff");
  for (const code of [0, 1, 8, 10, 13, 27, 31, 127]) {
    const text = `HTTP/1.1 200 OK\r\nx-a: a${String.fromCharCode(code)}b\r\ncontent-length: 0\r\n`;
    assert.throws(() => parse(text), ProtocolError, `byte ${code}`);
  }
});

Deno.test("only statuses 100-599 and well-formed status lines are accepted", () => {
  for (const status of ["100", "200", "599"]) {
    assert.equal(parse(`HTTP/1.1 ${status} X\r\n`).status, Number(status));
  }
  for (
    const line of [
      "HTTP/1.1 000",
      "HTTP/1.1 099 X",
      "HTTP/1.1 600",
      "HTTP/1.1 999 X",
      "HTTP/1.1 200 a\x01",
    ]
  ) {
    assert.throws(() => parse(`${line}\r\n`), ProtocolError, line);
  }
});

Deno.test("heads with bare LF parse like CRLF ones; only SP and HTAB are trimmed", () => {
  const head = parse("HTTP/1.1 200 OK\nx-a:  \xa0v\xa0\t\ncontent-length: 3\n\n");
  assert.deepEqual(head.headers, [["x-a", "\xa0v\xa0"], ["content-length", "3"]]);
  assert.equal(head.framing, "length");
});

Deno.test("a head holds at most MAX_HEADERS headers", () => {
  const lines = (n: number) => `HTTP/1.1 200 OK\r\n${"x-h: 1\r\n".repeat(n)}`;
  assert.equal(parse(lines(MAX_HEADERS)).headers.length, MAX_HEADERS);
  assert.throws(() => parse(lines(MAX_HEADERS + 1)), ProtocolError);
});

Deno.test("HTTP/1.0 chunked answers and 205 with content are not kept alive", () => {
  const chunked = parse(
    "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n",
  );
  assert.deepEqual([chunked.framing, chunked.keepAlive], ["chunked", false]);
  const reset = parse("HTTP/1.1 205 Reset Content\r\ncontent-length: 4\r\n");
  assert.deepEqual([reset.framing, reset.keepAlive], ["none", false]);
  assert.equal(parse("HTTP/1.1 205 Reset Content\r\ncontent-length: 0\r\n").keepAlive, true);
});

Deno.test("chunk sizes are read by value, with leading zeros, up to MAX_CHUNK_SIZE", () => {
  const decoded = new ChunkedDecoder().decode(
    encoder.encode("00000000000000000003\r\nabc\r\n000\r\n\r\n"),
  );
  assert.equal(new TextDecoder().decode(decoded.payload[0]), "abc");
  const max = MAX_CHUNK_SIZE.toString(16);
  assert.equal(new ChunkedDecoder().decode(encoder.encode(`${max}\r\n`)).consumed, max.length + 2);
  assert.throws(
    () => new ChunkedDecoder().decode(encoder.encode(`1${"0".repeat(max.length)}\r\n`)),
    ProtocolError,
  );
  assert.throws(() => new ChunkedDecoder().decode(encoder.encode("5;a\x01\r\n")), ProtocolError);
});
