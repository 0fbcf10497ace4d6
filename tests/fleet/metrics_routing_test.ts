import assert from "node:assert/strict";
import { DEFAULT_PARAMS, liveWeight } from "../../strategies/real_time_metrics.ts";
import type { ServerMetrics, ServerView } from "../../strategies/types.ts";
import { postJson, type Stack, startStack, totalInFlight, waitFor } from "../support/stack.ts";

function view(
  metrics: Partial<ServerMetrics> | undefined,
  extra: Partial<ServerView> = {},
): ServerView {
  return {
    url: "http://s",
    weight: 1,
    index: 0,
    inFlight: 0,
    sentSinceScrape: 0,
    metrics: metrics === undefined
      ? undefined
      : { running: 0, waiting: 0, scrapedAt: Date.now(), ...metrics },
    ...extra,
  };
}

Deno.test("the real_time_metrics weight falls with queue and KV usage and is never zero", () => {
  const w = (metrics: Partial<ServerMetrics> | undefined, extra?: Partial<ServerView>) =>
    liveWeight(view(metrics, extra), DEFAULT_PARAMS);
  let previous = Infinity;
  for (const waiting of [0, 1, 2, 5, 10, 30, 63, 64, 500]) {
    const weight = w({ waiting });
    assert.ok(weight > 0, `waiting ${waiting}: weight ${weight}`);
    assert.ok(weight <= previous, `not monotonic at waiting ${waiting}`);
    previous = weight;
  }
  previous = Infinity;
  for (const kvUsage of [0, 0.2, 0.5, 0.8, 0.95, 0.97, 0.98, 1]) {
    const weight = w({ kvUsage, running: 3 });
    assert.ok(weight > 0 && weight <= previous, `kv ${kvUsage}: weight ${weight}`);
    previous = weight;
  }
  // Requests sent since the scrape count as load, so a burst does not pile onto one server.
  assert.ok(w({ running: 1 }, { sentSinceScrape: 5 }) < w({ running: 1 }));
  // Without metrics the gateway's own in-flight count decides.
  assert.ok(w(undefined, { inFlight: 4 }) < w(undefined, { inFlight: 1 }));
  // A waiting request counts as more load than a running one.
  assert.ok(w({ waiting: 2 }) < w({ running: 2 }));
  // Spec weights scale the result.
  assert.equal(w({ running: 2 }, { weight: 3 }), 3 * w({ running: 2 }));
  // Saturated servers get the minimal weight, which still wins a pick now and then.
  assert.equal(w({ kvUsage: 1 }), DEFAULT_PARAMS.minWeight);
});

Deno.test("weighted_round_robin follows static weights exactly and interleaves", async () => {
  const stack = await startStack({
    sims: [{ itlMs: 1 }, { itlMs: 1 }],
    spec: ([a, b]) => ({
      models: {
        m: {
          servers: [{ url: a, weight: 3 }, { url: b, weight: 1 }],
          strategy: "weighted_round_robin",
        },
      },
    }),
  });
  try {
    const order: number[] = [];
    for (let i = 0; i < 8; i++) {
      const before = stack.sims.map((sim) => sim.state().received);
      const response = await postJson(`${stack.url}/v1/completions`, { model: "m", prompt: "x" });
      await response.body?.cancel();
      order.push(stack.sims.findIndex((sim, index) => sim.state().received > before[index]!));
    }
    assert.deepEqual(order, [0, 0, 1, 0, 0, 0, 1, 0]);
  } finally {
    await stack.close();
  }
});

Deno.test("the gateway scrapes /metrics on the interval and sees the servers' queues", async () => {
  const stack = await startStack({
    sims: [{ itlMs: 20, maxNumSeqs: 1, models: ["m"] }],
    spec: (urls) => ({ models: { m: { servers: urls } }, metrics_update_interval: 0.1 }),
    scrape: true,
  });
  const streams: Promise<Response>[] = [];
  try {
    const sim = stack.sims[0]!;
    for (let i = 0; i < 3; i++) {
      // One long request runs and two wait; queued requests get no headers until they run.
      streams.push(postJson(`${stack.url}/v1/completions`, {
        model: "m",
        prompt: "x",
        max_tokens: 1000,
        stream: true,
      }));
    }
    const server = stack.gateway.pool.get(sim.url)!;
    await waitFor(() => {
      const metrics = server.metricsFor("m");
      return metrics?.running === 1 && metrics.waiting === 2;
    }, { what: "scraped running 1 and waiting 2" });
    assert.equal(server.sentSinceScrape, 0);
    assert.equal(server.inFlight, 3);
    const before = stack.feed!.scrapes;
    await waitFor(() => stack.feed!.scrapes >= before + 3, { what: "three more scrapes" });
  } finally {
    await stack.close();
    for (const response of await Promise.all(streams)) await response.body?.cancel();
  }
});

Deno.test("an unreachable /metrics goes stale and the server falls back to in-flight", async () => {
  const stack = await startStack({
    sims: [{ itlMs: 1, models: ["m"] }, { itlMs: 1, models: ["m"] }],
    spec: (urls) => ({
      models: { m: { servers: urls, strategy: "real_time_metrics" } },
      metrics_update_interval: 0.1,
    }),
    scrape: true,
  });
  try {
    const [kept, lost] = stack.sims;
    const lostState = stack.gateway.pool.get(lost!.url)!;
    await waitFor(() => lostState.metricsFor("m") !== undefined, { what: "first scrape" });
    lost!.update({ metricsStatus: 500 });
    await waitFor(() => stack.feed!.failing.has(lost!.url), { what: "the scrape failure" });
    await waitFor(() => lostState.metricsFor("m") === undefined, { what: "staleness" });
    assert.notEqual(stack.gateway.pool.get(kept!.url)!.metricsFor("m"), undefined);
    // Routing goes on: the stale server is judged by the gateway's in-flight count.
    for (let i = 0; i < 4; i++) {
      const response = await postJson(`${stack.url}/v1/completions`, { model: "m", prompt: "x" });
      assert.equal(response.status, 200);
      await response.body?.cancel();
    }
    assert.ok(lost!.state().received > 0);
    lost!.update({ metricsStatus: 200 });
    await waitFor(() => lostState.metricsFor("m") !== undefined, { what: "metrics to return" });
    assert.equal(stack.feed!.failing.size, 0);
  } finally {
    await stack.close();
  }
});

/** Sends requests from `clients` loops until `stop()`; counts where each went. */
function steadyLoad(
  stack: Stack,
  clients: number,
): { stop(): Promise<void>; errors: () => number } {
  let running = true;
  let errors = 0;
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      const response = await postJson(`${stack.url}/v1/completions`, {
        model: "m",
        prompt: "steady load",
        max_tokens: 8,
      });
      if (response.status !== 200) errors++;
      await response.body?.cancel();
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
    },
    errors: () => errors,
  };
}

/** Share of requests that reached `sim` while `window` requests went through. */
async function shareOver(stack: Stack, index: number, window: number): Promise<number> {
  const before = stack.sims.map((sim) => sim.state().received);
  await waitFor(
    () => stack.sims.reduce((sum, sim, i) => sum + sim.state().received - before[i]!, 0) >= window,
    { timeoutMs: 20_000, what: `${window} requests` },
  );
  const after = stack.sims.map((sim) => sim.state().received);
  const total = after.reduce((sum, value, i) => sum + value - before[i]!, 0);
  return (after[index]! - before[index]!) / total;
}

Deno.test("traffic moves away from a server slowed mid-test and returns when it recovers", async () => {
  const sim = { itlMs: 4, ttftMs: 2, maxNumSeqs: 4, models: ["m"] };
  const stack = await startStack({
    sims: [sim, sim],
    spec: (urls) => ({
      models: { m: { servers: urls, strategy: "real_time_metrics" } },
      metrics_update_interval: 0.1,
    }),
    scrape: true,
  });
  const load = steadyLoad(stack, 8);
  try {
    const even = await shareOver(stack, 0, 60);
    assert.ok(even > 0.3 && even < 0.7, `share before the slowdown: ${even}`);
    stack.sims[0]!.update({ speed: 0.1 });
    // Within a few intervals the slowed server's queue shows, and its share drops.
    let slowShare = 1;
    await waitFor(async () => {
      slowShare = await shareOver(stack, 0, 40);
      return slowShare < 0.2;
    }, { timeoutMs: 30_000, what: "the slowed server to lose its share" });
    stack.sims[0]!.update({ speed: 1 });
    let backShare = 0;
    await waitFor(async () => {
      backShare = await shareOver(stack, 0, 60);
      return backShare > 0.35;
    }, { timeoutMs: 30_000, what: "traffic to return" });
  } finally {
    await load.stop();
    assert.equal(load.errors(), 0);
    await waitFor(() => totalInFlight(stack.gateway) === 0, { what: "in-flight back to 0" });
    await stack.close();
  }
});
