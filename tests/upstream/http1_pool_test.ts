import assert from "node:assert/strict";
import { UpstreamClosed } from "../../upstream/http1_connection.ts";
import { ConnectError, Http1Pool } from "../../upstream/http1_pool.ts";
import {
  answer,
  answering,
  deferred,
  latin1,
  ok,
  post,
  withServer,
} from "../support/raw_server.ts";
import { waitFor } from "../support/stack.ts";

Deno.test("two sequential requests reuse one keep-alive connection", async () => {
  await withServer(answering(ok), async (pool, server) => {
    assert.deepEqual(await answer(post(pool)), ["0", "ok"]);
    assert.deepEqual([pool.openCount, pool.idleCount], [1, 1]);
    assert.deepEqual(await answer(post(pool)), ["0", "ok"]);
    assert.equal(server.accepted, 1);
    assert.equal(server.requests.length, 2);
    assert.deepEqual([pool.openCount, pool.idleCount], [1, 1]);
  });
});

Deno.test("a response with connection: close is not reused", async () => {
  const clientClosed = deferred();
  await withServer(async (peer, index) => {
    if (index > 0) return await answering(ok)(peer, index);
    await peer.request();
    await peer.write("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok");
    await peer.eof();
    clientClosed.resolve();
  }, async (pool, server) => {
    assert.deepEqual(await answer(post(pool)), [undefined, "ok"]);
    assert.deepEqual([pool.openCount, pool.idleCount], [0, 0]);
    await clientClosed.promise;
    assert.deepEqual(await answer(post(pool)), ["1", "ok"]);
    assert.equal(server.accepted, 2);
  });
});

Deno.test("an idle connection the server closes leaves the pool at once", async () => {
  const hangUp = deferred();
  await withServer(async (peer, index) => {
    if (index > 0) return await answering(ok)(peer, index);
    await peer.write(ok((await peer.request())!, index));
    await hangUp.promise;
  }, async (pool, server) => {
    assert.deepEqual(await answer(post(pool)), ["0", "ok"]);
    assert.deepEqual([pool.openCount, pool.idleCount], [1, 1]);
    hangUp.resolve();
    await waitFor(() => pool.idleCount === 0 && pool.openCount === 0, { what: "pool to notice" });
    assert.deepEqual(await answer(post(pool)), ["1", "ok"]);
    assert.equal(server.accepted, 2);
  });
});

Deno.test("a reused connection closed without an answer is retried once on a new one", async () => {
  await withServer(async (peer, index) => {
    if (index > 0) return await answering(ok)(peer, index);
    await peer.write(ok((await peer.request())!, index));
    await peer.request(); // read the second request fully, then close without answering
  }, async (pool, server) => {
    assert.deepEqual(await answer(post(pool)), ["0", "ok"]);
    assert.deepEqual(await answer(post(pool, [], "again")), ["1", "ok"]);
    assert.equal(server.accepted, 2);
    assert.equal(server.requests.length, 3);
    assert.equal(server.requests[1], server.requests[2], "the same request was sent again");
  });
});

Deno.test("a new connection closed without an answer is not retried", async () => {
  await withServer(async (peer, index) => {
    if (index > 0) return await answering(ok)(peer, index);
    await peer.request();
  }, async (pool, server) => {
    await assert.rejects(post(pool).response, UpstreamClosed);
    assert.equal(server.accepted, 1);
    assert.equal(server.requests.length, 1);
    assert.deepEqual([pool.openCount, pool.idleCount], [0, 0]);
  });
});

Deno.test("a refused connection rejects with ConnectError", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const pool = new Http1Pool(`http://127.0.0.1:${port}`);
  try {
    await assert.rejects(post(pool).response, ConnectError);
    assert.equal(pool.openCount, 0);
  } finally {
    pool.close();
  }
});

Deno.test("abort() while waiting for the head rejects and closes the connection", async () => {
  const received = deferred();
  const clientClosed = deferred();
  await withServer(async (peer) => {
    await peer.request();
    received.resolve();
    await peer.eof();
    clientClosed.resolve();
  }, async (pool) => {
    const call = post(pool);
    await received.promise;
    const started = performance.now();
    call.abort();
    await assert.rejects(call.response, UpstreamClosed);
    assert.ok(performance.now() - started < 1_000, "rejected promptly");
    await clientClosed.promise;
    assert.deepEqual([pool.openCount, pool.idleCount], [0, 0]);
  });
});

Deno.test("cancel() in the middle of a body closes the connection", async () => {
  const clientClosed = deferred();
  await withServer(async (peer) => {
    await peer.request();
    await peer.write("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234");
    await peer.eof();
    clientClosed.resolve();
  }, async (pool) => {
    const body = (await post(pool).response).body!;
    assert.equal(latin1((await body.read())!), "01234");
    body.cancel();
    assert.deepEqual([pool.openCount, pool.idleCount], [0, 0]);
    await clientClosed.promise;
    assert.equal(await body.read(), undefined);
  });
});

/** A head of exactly `size` bytes (blank line included), then `ok`. */
Deno.test("a base URL with a path prefix puts the prefix before the request path", async () => {
  await withServer(answering(ok), async (pool, server) => {
    await answer(post(pool));
    const slash = new Http1Pool(`${server.url}/prefix/`);
    await answer(post(slash)).finally(() => slash.close());
    assert.deepEqual(server.requests.map((request) => request.split("\r\n")[0]), [
      "POST /prefix/v1/x HTTP/1.1",
      "POST /prefix/v1/x HTTP/1.1",
    ]);
  }, "/prefix");
});

Deno.test("a header value with a line break is refused before anything is sent", async () => {
  await withServer(answering(ok), async (pool, server) => {
    for (const value of ["1\r\nx-evil: 2", "1\nx-evil: 2", "1\rx"]) {
      await assert.rejects(post(pool, [["x-a", value]]).response, TypeError);
    }
    assert.equal(server.accepted, 0);
    assert.deepEqual(await answer(post(pool)), ["0", "ok"]);
    assert.equal(server.requests.length, 1);
  });
});
