/**
 * Slow clients are never blamed on servers: the upstream is read at the client's pace, the idle
 * timeout counts the server's silence only while the gateway waits for it, and a client that
 * stops reading for longer than `timeouts.client_idle` is cut with the outcome `client_slow`,
 * which the breaker never counts.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Peer } from "../support/raw_server.ts";
import { PacedClient } from "../support/paced_client.ts";
import { chatBody, GOOD, postChat, withRawGateway } from "../support/raw_gateway.ts";

/** SSE events of 32 KiB each: ~12.5 MiB a stream, more than every socket buffer on the way. */
const EVENTS = 400;
const EVENT = `data: {"x":"${"a".repeat(32 * 1024 - 16)}"}\n\n`;
const CHUNK = new TextEncoder().encode(`${EVENT.length.toString(16)}\r\n${EVENT}\r\n`);

/** Streams EVENTS big events then [DONE] to stream requests; answers others at once. */
function streamingServer(progress: { finished: number }) {
  return async (peer: Peer) => {
    for (let request = await peer.request(); request; request = await peer.request()) {
      if (!request.includes('"stream":true')) {
        await peer.write(GOOD);
        continue;
      }
      await peer.write(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
      );
      for (let i = 0; i < EVENTS; i++) {
        for (let offset = 0; offset < CHUNK.length;) {
          offset += await peer.conn.write(CHUNK.subarray(offset));
        }
      }
      await peer.write("e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
      progress.finished++;
    }
  };
}

Deno.test("five clients pausing longer than timeouts.idle do not eject a healthy server", async () => {
  const progress = { finished: 0 };
  await withRawGateway(streamingServer(progress), async ({ stack, chat }) => {
    const clients = await Promise.all(
      Array.from({ length: 5 }, () => PacedClient.post(chat, chatBody({ stream: true }))),
    );
    for (const client of clients) {
      assert.equal(await client.status(), 200);
      assert.ok(await client.readUntil('"}\n\n'));
    }
    // The pause under test: three times timeouts.idle, while the server has more to send.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.equal(progress.finished, 0, "back-pressure held the server: it has not finished");
    for (const client of clients) {
      const body = await client.readAll();
      client.close();
      assert.ok(body.endsWith("data: [DONE]\n\n"), body.slice(-200));
      assert.ok(!body.includes('"error"'));
      assert.equal(body.length, EVENT.length * EVENTS + "data: [DONE]\n\n".length);
    }
    const [server] = stack.gateway.pool.all();
    assert.equal(server!.breaker.state, "closed");
    assert.equal(server!.breaker.ejections, 0);
    const ordinary = await postChat(chat, chatBody());
    assert.equal(ordinary.status, 200);
    assert.equal(await ordinary.text(), '{"ok":true}');
  }, (url) => ({
    models: { m: { servers: [url] } },
    timeouts: { first_byte: 5, idle: 0.5, client_idle: 30 },
    // One failure would eject it: none may be counted.
    outlier_detection: { consecutive_failures: 1 },
  }));
});

Deno.test("a client that stops reading past timeouts.client_idle is cut as client_slow", async () => {
  const progress = { finished: 0 };
  await withRawGateway(streamingServer(progress), async ({ stack, chat }) => {
    const client = await PacedClient.post(chat, chatBody({ stream: true }));
    assert.equal(await client.status(), 200);
    assert.ok(await client.readUntil('"}\n\n'));
    // The client reads no more; the gateway cuts it once client_idle passes with nothing taken.
    const [server] = stack.gateway.pool.all();
    const deadline = performance.now() + 5_000;
    while (server!.inFlight > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(server!.inFlight, 0, "the lease was released without the client reading");
    const body = await client.readAll();
    client.close();
    assert.ok(!body.includes("[DONE]"), "the stream was cut");
    assert.equal(progress.finished, 0);
    assert.equal(server!.breaker.state, "closed");
    const metrics = await (await fetch(`${stack.url}/metrics`)).text();
    assert.match(metrics, /llmstream_requests_total\{[^}]*status="200",outcome="client_slow"\} 1/);
    const ordinary = await postChat(chat, chatBody());
    assert.equal(ordinary.status, 200);
    await ordinary.body?.cancel();
  }, (url) => ({
    models: { m: { servers: [url] } },
    timeouts: { first_byte: 5, idle: 5, client_idle: 0.3 },
    outlier_detection: { consecutive_failures: 1 },
    plugins: ["metrics"],
  }));
});
