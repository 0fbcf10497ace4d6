import assert from "node:assert/strict";
import { postJson, startStack, totalInFlight, waitFor } from "../support/stack.ts";

const FAST = { itlMs: 1, ttftMs: 1 };

async function countTo(url: string, model: string, requests: number): Promise<void> {
  for (let i = 0; i < requests; i++) {
    const response = await postJson(`${url}/v1/completions`, { model, prompt: "x", max_tokens: 1 });
    assert.equal(response.status, 200);
    await response.body?.cancel();
  }
}

Deno.test("round_robin cycles through the servers exactly", async () => {
  const stack = await startStack({
    sims: [FAST, FAST, FAST],
    spec: (urls) => ({ models: { m: { servers: urls, strategy: "round_robin" } } }),
  });
  try {
    const order: number[] = [];
    for (let i = 0; i < 9; i++) {
      const before = stack.sims.map((sim) => sim.state().received);
      await countTo(stack.url, "m", 1);
      order.push(stack.sims.findIndex((sim, index) => sim.state().received > before[index]!));
    }
    assert.deepEqual(order, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
  } finally {
    await stack.close();
  }
});

Deno.test("random honours weights within tolerance", async () => {
  const stack = await startStack({
    sims: [FAST, FAST],
    spec: ([a, b]) => ({
      models: {
        m: {
          servers: [{ url: a, weight: 3 }, { url: b, weight: 1 }],
          strategy: "random",
          strategy_options: { seed: 7 },
        },
      },
    }),
  });
  try {
    await countTo(stack.url, "m", 200);
    const [a, b] = stack.sims.map((sim) => sim.state().received);
    assert.equal(a! + b!, 200);
    // Expected 150 / 50; the binomial standard deviation is about 6.1, so 5 deviations either side.
    assert.ok(a! > 120 && a! < 180, `weighted share off: ${a} / ${b}`);
  } finally {
    await stack.close();
  }
});

Deno.test("least_connection prefers the idle server and releases counters", async () => {
  const stack = await startStack({
    sims: [FAST, FAST],
    spec: (urls) => ({ models: { m: { servers: urls, strategy: "least_connection" } } }),
  });
  try {
    const [busy, idle] = stack.sims;
    const gate = busy!.gate();
    // The first stream goes to server 0 (ties start at the first server) and is held open there.
    const held = await postJson(`${stack.url}/v1/completions`, {
      model: "m",
      prompt: "x",
      max_tokens: 3,
      stream: true,
    });
    const reader = held.body!.getReader();
    await reader.read();
    assert.equal(busy!.state().running, 1);
    // Every other request now prefers the idle server.
    await countTo(stack.url, "m", 5);
    assert.equal(idle!.state().received, 5);
    assert.equal(busy!.state().received, 1);
    gate.open();
    while (!(await reader.read()).done) { /* drain */ }
    await waitFor(() => totalInFlight(stack.gateway) === 0, { what: "in-flight back to 0" });
  } finally {
    await stack.close();
  }
});

Deno.test("least_connection counters return to zero after errors and aborts", async () => {
  const stack = await startStack({
    sims: [{ ...FAST, errorRate: 1 }, { ...FAST, hang: true }, { ...FAST, dropAfterTokens: 2 }],
    spec: ([failing, hanging, dropping]) => ({
      models: {
        failing: { servers: [failing], strategy: "least_connection" },
        hanging: { servers: [hanging], strategy: "least_connection" },
        dropping: { servers: [dropping], strategy: "least_connection" },
        dead: { servers: ["http://127.0.0.1:9"], strategy: "least_connection" },
      },
    }),
  });
  try {
    const failed = await postJson(`${stack.url}/v1/completions`, { model: "failing", prompt: "x" });
    assert.equal(failed.status, 500);
    await failed.body?.cancel();
    const dead = await postJson(`${stack.url}/v1/completions`, { model: "dead", prompt: "x" });
    assert.equal(dead.status, 502);
    await dead.body?.cancel();
    const dropped = await postJson(`${stack.url}/v1/completions`, {
      model: "dropping",
      prompt: "x",
      max_tokens: 10,
      stream: true,
    });
    await dropped.text();
    const abort = new AbortController();
    const hung = fetch(`${stack.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "hanging", prompt: "x" }),
      signal: abort.signal,
    });
    await waitFor(() => stack.sims[1]!.state().received === 1, { what: "the hung request" });
    assert.equal(totalInFlight(stack.gateway), 1);
    abort.abort();
    await assert.rejects(hung);
    await waitFor(() => totalInFlight(stack.gateway) === 0, { what: "in-flight back to 0" });
    for (const server of stack.gateway.pool.all()) assert.equal(server.inFlight, 0, server.url);
  } finally {
    await stack.close();
  }
});

Deno.test("a strategy file dropped next to the spec is used with no edit to the core", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/strategies`);
    const types = new URL("../../strategies/types.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/strategies/always_last.ts`,
      `import type { Strategy, StrategyOptions } from "${types}";
export default function create(_options: StrategyOptions): Strategy {
  return { pick: (servers) => servers[servers.length - 1] };
}
`,
    );
    await Deno.writeTextFile(
      `${dir}/by_path.ts`,
      `export default function create() { return { pick: (servers) => servers[0] }; }\n`,
    );
    const { loadSpecFile } = await import("../../config/load.ts");
    const { Gateway } = await import("../../gateway/gateway.ts");
    const { startGateway } = await import("../../gateway/server.ts");
    const { startSimServer } = await import("../../sim/server.ts");
    const sims = [await startSimServer(FAST), await startSimServer(FAST)];
    const spec = {
      models: {
        last: { servers: sims.map((sim) => sim.url), strategy: "always_last" },
        first: { servers: sims.map((sim) => sim.url), strategy: "./by_path.ts" },
      },
    };
    await Deno.writeTextFile(`${dir}/spec.json`, JSON.stringify(spec));
    const gateway = new Gateway(await loadSpecFile(`${dir}/spec.json`));
    const running = startGateway(gateway, { port: 0 });
    try {
      await countTo(running.url, "last", 3);
      await countTo(running.url, "first", 2);
      assert.deepEqual(sims.map((sim) => sim.state().received), [2, 3]);
    } finally {
      await running.close();
      await Promise.all(sims.map((sim) => sim.close()));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
