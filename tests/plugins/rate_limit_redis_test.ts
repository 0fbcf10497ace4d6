import assert from "node:assert/strict";
import { connectRedisStore } from "../../plugins/_redis_store.ts";
import { startSimServer } from "../../sim/server.ts";
import { postJson, startStack, waitFor } from "../support/stack.ts";

// Redis comes from LLMSTREAM_TEST_REDIS_URL when set (CI starts one), else from a redis-server on
// PATH started here on a free port; without either, the tests that need one are ignored.

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;
const ENV_URL = Deno.env.get("LLMSTREAM_TEST_REDIS_URL") || undefined;
const HAS_SERVER = await runs("redis-server", ["--version"]);
const NO_REDIS = !ENV_URL && !HAS_SERVER;
if (NO_REDIS) {
  console.log(
    "rate_limit Redis tests ignored: no redis-server on PATH and LLMSTREAM_TEST_REDIS_URL unset",
  );
}

async function runs(command: string, args: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command(command, { args, stdout: "null", stderr: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** Whether a Redis on the port answers PING. */
async function pong(port: number): Promise<boolean> {
  try {
    const connection = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await connection.write(new TextEncoder().encode("PING\r\n"));
      const buffer = new Uint8Array(16);
      const read = await connection.read(buffer);
      return new TextDecoder().decode(buffer.subarray(0, read ?? 0)).startsWith("+PONG");
    } finally {
      connection.close();
    }
  } catch {
    return false;
  }
}

interface TestRedis {
  url: string;
  stop(): Promise<void>;
}

/** Starts a throwaway redis-server (no persistence) on the port, or a free one. */
async function startRedis(port = freePort()): Promise<TestRedis> {
  const child = new Deno.Command("redis-server", {
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    stdout: "null",
    stderr: "null",
    stdin: "null",
  }).spawn();
  await waitFor(() => pong(port), { timeoutMs: 10_000, what: `redis-server on port ${port}` });
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** The test Redis: the one CI started, else a new one. */
function testRedis(): Promise<TestRedis> {
  return ENV_URL ? Promise.resolve({ url: ENV_URL, stop: () => Promise.resolve() }) : startRedis();
}

interface Main {
  url: string;
  log(): string;
  stop(): Promise<number>;
}

/** Runs main.ts with a spec file and resolves once it listens (as tests/cli_test.ts does). */
async function startMain(spec: string): Promise<Main> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--config", CONFIG, "-A", MAIN, "--config", spec, "--host", "127.0.0.1"]
      // One worker: the log lines counted below are one Redis client's (each worker has one).
      .concat(["--port", "0", "--workers", "1"]),
    stdout: "piped",
    stderr: "null",
    stdin: "null",
  }).spawn();
  let log = "";
  const listening = Promise.withResolvers<string>();
  (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      log += chunk;
      const match = /listening on "?(http:\/\/[^\s"]+)/.exec(log);
      if (match) listening.resolve(match[1]!);
    }
    listening.reject(new Error(`main.ts exited before listening:\n${log}`));
  })();
  const timer = setTimeout(
    () => listening.reject(new Error(`main.ts did not start:\n${log}`)),
    30_000,
  );
  try {
    const url = await listening.promise;
    return {
      url,
      log: () => log,
      async stop() {
        child.kill("SIGTERM");
        return (await child.status).code;
      },
    };
  } catch (error) {
    child.kill("SIGKILL");
    await child.status;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** A spec file with one simulated server and the rate limit plugin. */
async function writeSpec(dir: string, server: string, options: Record<string, unknown>) {
  const path = `${dir}/spec.json`;
  const spec = {
    models: { m1: { servers: [server] }, m2: { servers: [server] } },
    plugins: [{
      name: "rate_limit",
      options: { store: "redis", redis_prefix: `test:${crypto.randomUUID()}:`, ...options },
    }],
  };
  await Deno.writeTextFile(path, JSON.stringify(spec));
  return path;
}

const hi = { messages: [{ role: "user", content: "hi" }], max_tokens: 1 };

async function ask(url: string, model: string): Promise<Response> {
  const response = await postJson(`${url}/v1/chat/completions`, { model, ...hi });
  await response.body?.cancel();
  return response;
}

function count(text: string, pattern: RegExp): number {
  return text.match(new RegExp(pattern, "g"))?.length ?? 0;
}

Deno.test({
  name: "rate_limit: two gateway processes on one Redis share one limit",
  ignore: NO_REDIS,
  async fn() {
    const redis = await testRedis();
    const sim = await startSimServer({ itlMs: 1, ttftMs: 1 });
    const dir = await Deno.makeTempDir();
    const mains: Main[] = [];
    try {
      const spec = await writeSpec(dir, sim.url, {
        redis_url: redis.url,
        models: { m1: { requests_per_minute: 3 }, m2: { concurrent: 1 } },
      });
      const [a, b] = await Promise.all([startMain(spec), startMain(spec)]);
      mains.push(a!, b!);
      // Requests per minute: both gateways count against one budget.
      const remainingAfter = [];
      for (const gateway of [a!, b!, a!]) {
        const response = await ask(gateway.url, "m1");
        assert.equal(response.status, 200);
        remainingAfter.push(response.headers.get("x-ratelimit-remaining-requests"));
      }
      assert.deepEqual(remainingAfter, ["2", "1", "0"]);
      assert.equal((await ask(b!.url, "m1")).status, 429);
      assert.equal((await ask(a!.url, "m1")).status, 429);
      // Concurrency: a stream held on one gateway takes the slot on the other too.
      const gate = sim.gate();
      const held = await postJson(`${a!.url}/v1/chat/completions`, {
        ...hi,
        model: "m2",
        max_tokens: 4,
        stream: true,
      });
      assert.equal(held.status, 200);
      await sim.until((state) => state.gated === 1);
      const refused = await postJson(`${b!.url}/v1/chat/completions`, { ...hi, model: "m2" });
      assert.equal(refused.status, 429);
      assert.match((await refused.json()).error.message, /1 concurrent requests/);
      gate.open();
      assert.match(await held.text(), /data: \[DONE\]/);
      await waitFor(async () => (await ask(b!.url, "m2")).status === 200, {
        what: "the slot to be released across gateways",
      });
      for (const main of mains) assert.doesNotMatch(main.log(), /cannot use Redis/);
    } finally {
      const codes = await Promise.all(mains.map((main) => main.stop()));
      await sim.close();
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
      assert.deepEqual(codes, mains.map(() => 0));
    }
  },
});

Deno.test({
  name: "rate_limit: Redis slots are leases renewed while held and freed when a replica dies",
  ignore: NO_REDIS,
  async fn() {
    const redis = await testRedis();
    const options = {
      prefix: `test:${crypto.randomUUID()}:`,
      timeoutMs: 1000,
      onError: "open",
      leaseMs: 300,
    } as const;
    const a = await connectRedisStore(redis.url, options);
    const b = await connectRedisStore(redis.url, options);
    const limits = { requests_per_minute: undefined, tokens_per_minute: 40, concurrent: 1 };
    try {
      assert.equal((await a.admit("k|m", { limits, requestId: "r1" })).refused, undefined);
      // Held for several lease lengths: its replica renews it, so the other is refused all along.
      const until = Date.now() + 1000;
      while (Date.now() < until) {
        assert.equal((await b.admit("k|m", { limits, requestId: "r2" })).refused, "concurrent");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await a.release("k|m", "r1");
      assert.equal((await b.admit("k|m", { limits, requestId: "r2" })).refused, undefined);
      // b dies holding its slot: the lease runs out and a gets the slot.
      await b.close();
      await waitFor(async () => !(await a.admit("k|m", { limits, requestId: "r3" })).refused, {
        what: "the dead replica's lease to run out",
      });
      await a.release("k|m", "r3");
      // Tokens charged by one replica count for all.
      await a.charge("k|m", 45);
      const refused = await a.admit("k|m", { limits, requestId: "r4" });
      assert.equal(refused.refused, "tokens_per_minute");
      assert.equal(refused.tokens.current, 45);
    } finally {
      await a.close();
      await b.close();
      await redis.stop();
    }
  },
});

Deno.test("rate_limit: Redis unreachable fails open, logged once per change", async () => {
  const sim = await startSimServer({ itlMs: 1, ttftMs: 1 });
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const spec = await writeSpec(dir, sim.url, {
    redis_url: `redis://127.0.0.1:${port}`,
    redis_timeout: 0.5,
    on_store_error: "open",
    default: { requests_per_minute: 1000 },
  });
  const main = await startMain(spec);
  let redis: TestRedis | undefined;
  try {
    for (let i = 0; i < 3; i++) {
      const response = await ask(main.url, "m1");
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("x-ratelimit-limit-requests"), null);
    }
    await waitFor(() => /cannot use Redis/.test(main.log()), { what: "the warning" });
    assert.equal(count(main.log(), /cannot use Redis at .*: requests pass without rate limits/), 1);
    if (!HAS_SERVER) {
      console.log("Redis coming back is not tested: no redis-server on PATH");
      return;
    }
    // Redis comes up: limits apply again, and that is logged once.
    redis = await startRedis(port);
    await waitFor(
      async () => (await ask(main.url, "m1")).headers.has("x-ratelimit-limit-requests"),
      { what: "limits to apply again" },
    );
    await ask(main.url, "m1");
    await waitFor(() => /use Redis at .* again/.test(main.log()), { what: "the recovery line" });
    assert.equal(count(main.log(), /use Redis at .* again/), 1);
    // It goes away again: one more warning, however many requests pass meanwhile.
    await redis.stop();
    redis = undefined;
    for (let i = 0; i < 3; i++) assert.equal((await ask(main.url, "m1")).status, 200);
    await waitFor(() => count(main.log(), /cannot use Redis/) === 2, {
      what: "the second warning",
    });
    assert.equal(count(main.log(), /cannot use Redis/), 2);
  } finally {
    const code = await main.stop();
    await redis?.stop();
    await sim.close();
    await Deno.remove(dir, { recursive: true });
    assert.equal(code, 0);
  }
});

Deno.test("rate_limit: Redis unreachable fails closed with 503 when configured", async () => {
  const port = freePort();
  const stack = await startStack({
    sims: [{ itlMs: 1, ttftMs: 1 }],
    spec: ([url]) => ({
      models: { m1: { servers: [url] } },
      plugins: [{
        name: "rate_limit",
        options: {
          store: "redis",
          redis_url: `redis://127.0.0.1:${port}`,
          on_store_error: "closed",
          default: { requests_per_minute: 1000 },
        },
      }],
    }),
  });
  try {
    const response = await postJson(`${stack.url}/v1/chat/completions`, { model: "m1", ...hi });
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("retry-after"), "1");
    const body = await response.json();
    assert.equal(body.error.type, "service_unavailable_error");
    assert.equal(body.error.code, "rate_limit_unavailable");
    assert.doesNotMatch(body.error.message, new RegExp(String(port)));
    assert.equal(stack.sims[0]!.state().received, 0);
  } finally {
    await stack.close();
  }
});
