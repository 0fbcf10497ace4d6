import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { type LineWriter, writeBehindSink } from "../../common/log_sink.ts";

/** An output whose writes finish only when the test releases them. */
class HeldWriter implements LineWriter {
  writes: string[] = [];
  #release: (() => void)[] = [];
  #decoder = new TextDecoder();

  write(bytes: Uint8Array): Promise<number> {
    this.writes.push(this.#decoder.decode(bytes));
    const { promise, resolve } = Promise.withResolvers<number>();
    this.#release.push(() => resolve(bytes.byteLength));
    return promise;
  }

  releaseAll(): void {
    for (const release of this.#release.splice(0)) release();
  }
}

function record(message: string): LogRecord {
  return {
    category: ["test"],
    level: "info",
    message: [message],
    rawMessage: message,
    timestamp: 0,
    properties: {},
  };
}

const formatter = (record: LogRecord) => `${record.rawMessage}\n`;

Deno.test("an idle sink writes a line at once", async () => {
  const writer = new HeldWriter();
  const sink = writeBehindSink({ formatter, writer });
  sink(record("one"));
  assert.deepEqual(writer.writes, ["one\n"]);
  writer.releaseAll();
  await sink.flush();
});

Deno.test("lines that arrive during a write go out together, in order", async () => {
  const writer = new HeldWriter();
  const sink = writeBehindSink({ formatter, writer });
  sink(record("a"));
  for (const line of ["b", "c", "d"]) sink(record(line));
  assert.deepEqual(writer.writes, ["a\n"]);
  const flushed = sink.flush();
  // Release writes as they come until the sink has nothing left.
  let done = false;
  void flushed.then(() => (done = true));
  while (!done) {
    writer.releaseAll();
    await Promise.resolve();
    await new Promise((resolve) => queueMicrotask(() => resolve(undefined)));
  }
  assert.deepEqual(writer.writes, ["a\n", "b\nc\nd\n"]);
});

Deno.test("partial writes are completed", async () => {
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  const sink = writeBehindSink({
    formatter,
    writer: {
      write(bytes) {
        const n = Math.min(3, bytes.byteLength);
        chunks.push(decoder.decode(bytes.subarray(0, n)));
        return Promise.resolve(n);
      },
    },
  });
  sink(record("hello world"));
  await sink.flush();
  assert.equal(chunks.join(""), "hello world\n");
});

Deno.test("a stalled output drops lines past the limit and reports how many", async () => {
  const writer = new HeldWriter();
  const sink = writeBehindSink({ formatter, writer, maxPendingBytes: 8 });
  sink(record("first"));
  for (const line of ["aa", "bb", "cc", "dd", "ee"]) sink(record(line));
  const flushed = sink.flush();
  let done = false;
  void flushed.then(() => (done = true));
  while (!done) {
    writer.releaseAll();
    await new Promise((resolve) => queueMicrotask(() => resolve(undefined)));
  }
  assert.deepEqual(writer.writes, [
    "first\n",
    // 8 bytes hold "aa\n" and "bb\n"; the other three lines do not fit.
    "aa\nbb\nDropped 3 log lines: standard output did not keep up\n",
  ]);
});

Deno.test("a failing output does not throw into the logger", async () => {
  const sink = writeBehindSink({
    formatter,
    writer: { write: () => Promise.reject(new Error("broken pipe")) },
  });
  sink(record("lost"));
  await sink.flush();
  sink(record("also lost"));
  await sink.flush();
});
