import assert from "node:assert/strict";
import { MAX_HEAD_BYTES } from "../../upstream/http1_connection.ts";
import { ProtocolError } from "../../upstream/http1_parse.ts";
import {
  answer,
  answering,
  deferred,
  latin1,
  ok,
  post,
  withServer,
} from "../support/raw_server.ts";

Deno.test("a content-length body is read whole by bytes() and in parts by read()", async () => {
  const rest = [deferred(), deferred()];
  await withServer(async (peer) => {
    for (let i = 0; await peer.request(); i++) {
      await peer.write("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234");
      await rest[i]!.promise;
      await peer.write("56789");
    }
  }, async (pool, server) => {
    const whole = (await post(pool).response).body!;
    rest[0]!.resolve();
    assert.equal(latin1(await whole.bytes()), "0123456789");
    const parts = (await post(pool).response).body!;
    assert.equal(latin1((await parts.read())!), "01234");
    rest[1]!.resolve();
    assert.equal(latin1((await parts.read())!), "56789");
    assert.equal(await parts.read(), undefined);
    assert.equal(await parts.read(), undefined);
    assert.equal(server.accepted, 1);
    assert.equal(pool.idleCount, 1);
  });
});

Deno.test("a chunked body split across socket writes is decoded part by part", async () => {
  const steps = [deferred(), deferred(), deferred(), deferred()];
  const parts = ["lo\r\n1", "0\r\n0123456789abcdef", "\r", "\n0\r\nx-trailer: 1\r\n\r\n"];
  await withServer(async (peer, index) => {
    await peer.request();
    await peer.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel");
    for (const [i, part] of parts.entries()) {
      await steps[i]!.promise;
      await peer.write(part);
    }
    await answering(ok)(peer, index);
  }, async (pool) => {
    const body = (await post(pool).response).body!;
    assert.equal(latin1((await body.read())!), "hel");
    steps[0]!.resolve();
    assert.equal(latin1((await body.read())!), "lo");
    steps[1]!.resolve();
    assert.equal(latin1((await body.read())!), "0123456789abcdef");
    const end = body.read();
    steps[2]!.resolve();
    steps[3]!.resolve();
    assert.equal(await end, undefined);
    assert.equal(await body.read(), undefined);
    assert.equal(pool.idleCount, 1);
    assert.deepEqual(await answer(post(pool)), ["0", "ok"], "the connection is reused cleanly");
  });
});

Deno.test("a body without length ends when the server closes the connection", async () => {
  const more = deferred();
  await withServer(async (peer) => {
    await peer.request();
    await peer.write("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nfirst ");
    await more.promise;
    await peer.write("second");
  }, async (pool) => {
    const body = (await post(pool).response).body!;
    assert.equal(latin1((await body.read())!), "first ");
    more.resolve();
    assert.equal(latin1(await body.bytes()), "second");
    assert.deepEqual([pool.openCount, pool.idleCount], [0, 0]);
  });
});

Deno.test("interim 1xx responses before the real one are skipped", async () => {
  await withServer(async (peer) => {
    for (let request = await peer.request(); request; request = await peer.request()) {
      await peer.write(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n",
      );
      await peer.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    }
  }, async (pool, server) => {
    for (let i = 0; i < 2; i++) {
      const response = await post(pool).response;
      assert.equal(response.status, 200);
      assert.deepEqual(response.headers, [["content-length", "2"]]);
      assert.equal(latin1(await response.body!.bytes()), "ok");
    }
    assert.equal(server.accepted, 1);
  });
});

function headOfSize(size: number): string {
  const start = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-pad: ";
  return `${start}${"a".repeat(size - start.length - 4)}\r\n\r\nok`;
}

Deno.test("a response head of 64 KiB is read and a larger one is rejected", async () => {
  await withServer(
    answering((request) => headOfSize(MAX_HEAD_BYTES + (request.includes("big") ? 1 : 0))),
    async (pool) => {
      const response = await post(pool).response;
      assert.equal(response.headers[1]![1], "a".repeat(MAX_HEAD_BYTES - 47));
      assert.equal(latin1(await response.body!.bytes()), "ok");
      await assert.rejects(post(pool, [["x-size", "big"]]).response, (error: Error) => {
        assert.ok(error instanceof ProtocolError);
        assert.equal(error.message, "sent response headers larger than 65536 bytes");
        return true;
      });
    },
  );
});

Deno.test("header values with bytes above 0x7f go out and come back as one byte each", async () => {
  await withServer(
    answering((request) => {
      const value = /\r\nx-in: ([^\r]*)\r\n/.exec(request)![1];
      return `HTTP/1.1 200 OK\r\nx-echo: ${value}\r\nx-name: na\xefve\r\ncontent-length: 0\r\n\r\n`;
    }),
    async (pool, server) => {
      const response = await post(pool, [["x-in", "caf\xe9 \xff"]]).response;
      assert.ok(server.requests[0]!.includes("\r\nx-in: caf\xe9 \xff\r\n"), "raw bytes e9 and ff");
      assert.deepEqual(response.headers.slice(0, 2), [["x-echo", "caf\xe9 \xff"], [
        "x-name",
        "na\xefve",
      ]]);
      assert.equal(new Headers(response.headers).get("x-name"), "na\xefve");
    },
  );
});

Deno.test("the request head carries host, the given headers and content-length", async () => {
  await withServer(answering(ok), async (pool, server) => {
    const host = new URL(server.url).host;
    await answer(post(pool, [["authorization", "Bearer k"], ["x-a", "1"]], '{"a":1}'));
    await answer(post(pool));
    const get = pool.send({ method: "GET", path: "/v1/models", headers: [], body: null }, {
      connectTimeoutMs: 5_000,
    });
    await answer(get);
    assert.deepEqual(server.requests, [
      `POST /v1/x HTTP/1.1\r\nhost: ${host}\r\nauthorization: Bearer k\r\nx-a: 1\r\n` +
      `content-length: 7\r\n\r\n{"a":1}`,
      `POST /v1/x HTTP/1.1\r\nhost: ${host}\r\ncontent-length: 0\r\n\r\n`,
      `GET /v1/models HTTP/1.1\r\nhost: ${host}\r\n\r\n`,
    ]);
  });
});

Deno.test("HEAD and 204 answers have no body and leave the connection reusable", async () => {
  await withServer(
    answering((request) =>
      request.startsWith("HEAD")
        ? "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
        : "HTTP/1.1 204 No Content\r\n\r\n"
    ),
    async (pool, server) => {
      const head = pool.send({ method: "HEAD", path: "/", headers: [], body: null }, {
        connectTimeoutMs: 5_000,
      });
      assert.deepEqual(await head.response, {
        status: 200,
        headers: [["content-length", "5"]],
        body: null,
      });
      assert.equal(pool.idleCount, 1);
      const response = await post(pool).response;
      assert.deepEqual([response.status, response.body], [204, null]);
      assert.deepEqual([server.accepted, pool.idleCount], [1, 1]);
    },
  );
});

Deno.test("large request and response bodies arrive intact", async () => {
  const chunks = Array.from(
    { length: 400 },
    (_, i) => String.fromCharCode(97 + i % 26).repeat(i * 7 % 1_000 + 1),
  );
  const sent = "r".repeat(100_000);
  await withServer(
    answering(() => {
      const body = chunks.map((chunk) => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join("");
      return `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${body}0\r\n\r\n`;
    }),
    async (pool, server) => {
      for (let i = 0; i < 2; i++) {
        assert.equal((await answer(post(pool, [], sent)))[1], chunks.join(""));
      }
      assert.ok(server.requests.every((request) => request.endsWith(`\r\n\r\n${sent}`)));
      assert.deepEqual([server.accepted, server.requests.length, pool.idleCount], [1, 2, 1]);
    },
  );
});

// Regression: the last payload of a chunked body used to be copied after the connection went back
// to the pool, whose idle read had already overwritten the buffer with the stray bytes.
Deno.test({
  name: "bytes arriving after a chunked body do not corrupt the body's last payload",
  async fn() {
    // A head over 32 KiB grows the buffer to 64 KiB (whatever its first size up to 32 KiB); head
    // and body fill it exactly, so the stray bytes stay on the socket until the connection is
    // parked. 13 bytes of framing: 4 hex digits and CRLF, CRLF after the data, "0\r\n\r\n".
    const start = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-pad: ";
    const head = `${start}${"a".repeat(33_000 - start.length - 4)}\r\n\r\n`;
    const payload = "p".repeat(MAX_HEAD_BYTES - head.length - 13);
    const written = deferred();
    await withServer(async (peer) => {
      await peer.request();
      const body = `${payload.length.toString(16)}\r\n${payload}\r\n0\r\n\r\n`;
      await peer.write(head + body + "X".repeat(MAX_HEAD_BYTES)).finally(written.resolve);
      await peer.eof();
    }, async (pool) => {
      const response = await post(pool).response;
      await written.promise;
      const body = latin1(await response.body!.bytes());
      assert.equal(body.length, payload.length);
      assert.ok(body === payload, `payload starts ${JSON.stringify(body.slice(0, 8))}`);
    });
  },
});
