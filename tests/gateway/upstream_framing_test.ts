/**
 * Raw-socket upstream answers that are odd but valid are passed on exactly (bare LF heads, 0xA0
 * in values, leading zeros in chunk sizes, interim answers, any-case SSE types), connections are
 * reused only when RFC 9112 allows, an early answer arrives while the request is still being
 * written, and bodies that stall or lie about their length end cleanly with nothing leaked.
 *
 * @module
 */
import assert from "node:assert/strict";
import { answering, deferred } from "../support/raw_server.ts";
import {
  assertOpenAiError,
  chatBody,
  GOOD,
  postChat,
  withRawGateway,
} from "../support/raw_gateway.ts";

const JSON_TYPE = "content-type: application/json\r\n";

Deno.test("a head with bare LF line ends is accepted", async () => {
  const wire = `HTTP/1.1 200 OK\n${JSON_TYPE.trim()}\nx-a: b\ncontent-length: 11\n\n{"ok":true}`;
  await withRawGateway(answering(() => wire), async ({ chat, server }) => {
    for (let i = 0; i < 2; i++) {
      const response = await postChat(chat, chatBody());
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("x-a"), "b");
      assert.equal(await response.text(), '{"ok":true}');
    }
    assert.equal(server.accepted, 1, "the connection is reused");
  });
});

Deno.test("only SP and HTAB are trimmed from values; 0xA0 stays", async () => {
  const wire = `HTTP/1.1 200 OK\r\nx-a: \t\xa0v\xa0 \r\n${JSON_TYPE}content-length: 2\r\n\r\n{}`;
  await withRawGateway(answering(() => wire), async ({ chat }) => {
    const response = await postChat(chat, chatBody());
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("x-a"), "\xa0v\xa0");
    assert.equal(await response.text(), "{}");
  });
});

Deno.test("chunk sizes with leading zeros are read by value", async () => {
  const wire = `HTTP/1.1 200 OK\r\n${JSON_TYPE}transfer-encoding: chunked\r\n\r\n` +
    '0000000000000000000b\r\n{"ok":true}\r\n000\r\n\r\n';
  await withRawGateway(answering(() => wire), async ({ chat, server }) => {
    for (let i = 0; i < 2; i++) {
      const response = await postChat(chat, chatBody());
      assert.equal(await response.text(), '{"ok":true}');
    }
    assert.equal(server.accepted, 1);
  });
});

Deno.test("HTTP/1.0 with chunked framing is read and its connection not reused", async () => {
  const wire = `HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n${JSON_TYPE}` +
    'transfer-encoding: chunked\r\n\r\nb\r\n{"ok":true}\r\n0\r\n\r\n';
  await withRawGateway(answering(() => wire), async ({ chat, server }) => {
    for (let i = 0; i < 2; i++) {
      const response = await postChat(chat, chatBody());
      assert.equal(await response.text(), '{"ok":true}');
    }
    assert.equal(server.accepted, 2);
  });
});

Deno.test("interim 100 and 103 answers are skipped", async () => {
  const wire = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + GOOD;
  await withRawGateway(answering(() => wire), async ({ chat }) => {
    const response = await postChat(chat, chatBody());
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("link"), null);
    assert.equal(await response.text(), '{"ok":true}');
  });
});

Deno.test("an early answer (413, then close) reaches the client while the body is written", async () => {
  const answer = '{"error":{"message":"too big","type":"invalid_request_error"}}';
  await withRawGateway(async (peer) => {
    await peer.head();
    await peer.write(
      `HTTP/1.1 413 Payload Too Large\r\n${JSON_TYPE}content-length: ${answer.length}\r\n` +
        `connection: close\r\n\r\n${answer}`,
    );
  }, async ({ chat }) => {
    const body = chatBody({ marker: "x".repeat(8 * 1024 * 1024) });
    const response = await postChat(chat, body);
    assert.equal(response.status, 413);
    assert.equal(await response.text(), answer);
  }, { limits: { max_body_bytes: 16 * 1024 * 1024 } });
});

Deno.test("a huge declared content-length is streamed, not allocated, and cut when the server closes", async () => {
  await withRawGateway(async (peer) => {
    await peer.request();
    await peer.write(`HTTP/1.1 200 OK\r\n${JSON_TYPE}content-length: 999999999999999\r\n\r\n{"a":`);
  }, async ({ chat }) => {
    const response = await postChat(chat, chatBody());
    assert.equal(response.status, 200);
    await assert.rejects(response.text());
  });
});

Deno.test("a JSON body that stalls is cut by the idle timeout (504) and its socket closed", async () => {
  const closed = deferred();
  await withRawGateway(async (peer) => {
    await peer.request();
    await peer.write(`HTTP/1.1 200 OK\r\n${JSON_TYPE}content-length: 11\r\n\r\n{"ok"`);
    await peer.eof();
    closed.resolve();
  }, async ({ chat, server }) => {
    const response = await postChat(chat, chatBody());
    await assertOpenAiError(response, {
      status: 504,
      code: "upstream_idle_timeout",
      message: `Server "${server.url}" sent nothing for 0.3 s while sending its answer`,
    });
    await closed.promise;
  }, { timeouts: { first_byte: 2, idle: 0.3 } });
});

Deno.test("Text/Event-Stream in any case, with parameters, is streamed as SSE", async () => {
  const event = 'data: {"a":1}\n\n';
  const wire = "HTTP/1.1 200 OK\r\ncontent-type: Text/Event-Stream; charset=utf-8\r\n" +
    `transfer-encoding: chunked\r\n\r\n${event.length.toString(16)}\r\n${event}\r\n`;
  await withRawGateway(async (peer) => {
    await peer.request();
    await peer.write(wire);
    await peer.eof();
  }, async ({ chat }) => {
    const response = await postChat(chat, chatBody({ stream: true }));
    assert.equal(response.headers.get("content-type"), "Text/Event-Stream; charset=utf-8");
    const reader = response.body!.getReader();
    // The first event arrives while the server is still sending (a JSON body would wait).
    assert.equal(new TextDecoder().decode((await reader.read()).value), event);
    const rest = new TextDecoder().decode((await reader.read()).value);
    assert.match(rest, /^data: \{"error":.*"code":"upstream_idle_timeout"\}\}\n\n$/);
    await reader.cancel();
  }, { timeouts: { first_byte: 2, idle: 0.3 } });
});
