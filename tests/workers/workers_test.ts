/**
 * Two data-plane workers behind one port (`main.ts --workers 2`): shared in-flight counts, slots
 * and rate limits hold exactly across them, admin changes and ejections reach both, `/metrics`
 * counts every request once, and SIGTERM drains both. Connections are pinned to a worker by
 * holding them open (see `raw_client.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { startSimServer } from "../../sim/server.ts";
import { connectionsPerWorker, type RawConnection } from "../support/raw_client.ts";
import { startMain } from "../support/main_process.ts";
import { waitFor } from "../support/stack.ts";

const WORKERS = ["--workers", "2"];
const FAST = { itlMs: 1, ttftMs: 1 };
const QUIET = { health_checks: { enabled: false }, plugins: [] as unknown[] };

function chat(model = "m", stream = false) {
  return { model, messages: [{ role: "user", content: "hi" }], max_tokens: 4, stream };
}

function closeAll(groups: Map<string, RawConnection[]>): void {
  for (const group of groups.values()) for (const connection of group) connection.close();
}

/** Sums `llmstream_requests_total` samples of a scrape. */
function requestsTotal(metrics: string): number {
  return metrics.split("\n").filter((line) => line.startsWith("llmstream_requests_total{"))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}

Deno.test("workers: least_connection splits concurrent long streams exactly across workers", async () => {
  const sims = [await startSimServer(FAST), await startSimServer(FAST)];
  const gates = sims.map((sim) => sim.gate());
  const main = await startMain({
    ...QUIET,
    models: { m: { servers: sims.map((sim) => sim.url), strategy: "least_connection" } },
  }, WORKERS);
  const groups = await connectionsPerWorker(main.url, { workers: 2, perWorker: 5 });
  try {
    const streams = [...groups.values()].flat().map((connection) =>
      connection.request("POST", "/v1/chat/completions", chat("m", true))
    );
    await waitFor(() => sims[0]!.state().gated + sims[1]!.state().gated === 10, {
      what: "10 streams held at both servers",
    });
    assert.deepEqual(sims.map((sim) => sim.state().gated), [5, 5]);
    for (const gate of gates) gate.open();
    for (const answer of await Promise.all(streams)) {
      assert.equal(answer.status, 200);
      assert.match(answer.body, /data: \[DONE\]/);
    }
  } finally {
    closeAll(groups);
    await main.stop();
    await Promise.all(sims.map((sim) => sim.close()));
  }
});

Deno.test("workers: max_concurrent 2 holds across workers under 50 concurrent requests", async () => {
  const sim = await startSimServer({ itlMs: 5, ttftMs: 5 });
  const main = await startMain({
    ...QUIET,
    models: { m: { servers: [{ url: sim.url, max_concurrent: 2 }] } },
  }, WORKERS);
  const groups = await connectionsPerWorker(main.url, { workers: 2, perWorker: 25 });
  let most = 0;
  const watched = sim.until((state) => {
    most = Math.max(most, state.running + state.waiting);
    return state.completed >= 50;
  }, { timeoutMs: 30_000 });
  try {
    const answers = await Promise.all(
      [...groups.values()].flat().map((connection) =>
        connection.request("POST", "/v1/chat/completions", chat())
      ),
    );
    await watched;
    assert.deepEqual(answers.map((answer) => answer.status), Array(50).fill(200));
    assert.equal(most, 2, "requests at the server at once");
  } finally {
    closeAll(groups);
    await main.stop();
    await sim.close();
  }
});

Deno.test("workers: a memory rate limit of 10 admits exactly 10 across workers", async () => {
  const sim = await startSimServer(FAST);
  const main = await startMain({
    ...QUIET,
    models: { m: { servers: [sim.url] } },
    plugins: [{ name: "rate_limit", options: { default: { requests_per_minute: 10 } } }],
  }, WORKERS);
  const groups = await connectionsPerWorker(main.url, { workers: 2, perWorker: 15 });
  try {
    const answers = await Promise.all(
      [...groups.values()].flat().map((connection) =>
        connection.request("POST", "/v1/chat/completions", chat())
      ),
    );
    const statuses = answers.map((answer) => answer.status);
    assert.equal(statuses.filter((status) => status === 200).length, 10);
    assert.equal(statuses.filter((status) => status === 429).length, 20);
  } finally {
    closeAll(groups);
    await main.stop();
    await sim.close();
  }
});

Deno.test("workers: an admin change and an ejection are seen by every worker", async () => {
  const good = await startSimServer(FAST);
  const bad = await startSimServer({ ...FAST, errorRate: 1, errorStatus: 500 });
  const main = await startMain({
    ...QUIET,
    plugins: ["metrics"],
    models: { m: { servers: [bad.url, good.url], strategy: "round_robin" } },
    outlier_detection: { consecutive_failures: 3, cooldown: 60 },
    retries: { on_status: [] },
  }, WORKERS);
  const groups = await connectionsPerWorker(main.url, { workers: 2, perWorker: 1 });
  const [first, second] = [...groups.values()].map((group) => group[0]!);
  try {
    const added = await first!.request("POST", "/admin/models", {
      model_name: "added",
      servers: [good.url],
    });
    assert.equal(added.status, 201, added.body);
    for (const connection of [first!, second!]) {
      const models = await connection.request("GET", "/v1/models");
      assert.match(models.body, /"added"/, `worker ${connection.worker} knows the new model`);
    }
    // Three failures through the first worker eject the bad server.
    let failures = 0;
    while (failures < 3) {
      const answer = await first!.request("POST", "/v1/chat/completions", chat());
      if (answer.status === 500) failures++;
    }
    const metrics = await second!.request("GET", "/metrics");
    const open = `llmstream_server_breaker_state{server="${bad.url}",state="open"} 1`;
    assert.ok(metrics.body.includes(open), `the second worker sees the ejection:\n${metrics.body}`);
    const before = bad.state().received;
    for (let i = 0; i < 6; i++) {
      const answer = await second!.request("POST", "/v1/chat/completions", chat());
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.get("x-llmstream-server"), good.url);
    }
    assert.equal(bad.state().received, before);
  } finally {
    closeAll(groups);
    await main.stop();
    await Promise.all([good.close(), bad.close()]);
  }
});

Deno.test("workers: /metrics counts every request once, whichever worker is scraped", async () => {
  const sim = await startSimServer(FAST);
  const main = await startMain({
    ...QUIET,
    plugins: ["metrics"],
    metrics_update_interval: 0.2,
    models: { m: { servers: [sim.url] } },
  }, WORKERS);
  const groups = await connectionsPerWorker(main.url, { workers: 2, perWorker: 4 });
  try {
    const connections = [...groups.values()].flat();
    await Promise.all(connections.map(async (connection, i) => {
      for (let n = 0; n < 5 + i; n++) {
        assert.equal(
          (await connection.request("POST", "/v1/chat/completions", chat())).status,
          200,
        );
      }
    }));
    const sent = connections.reduce((sum, _connection, i) => sum + 5 + i, 0);
    for (const group of groups.values()) {
      const metrics = await group[0]!.request("GET", "/metrics");
      assert.equal(requestsTotal(metrics.body), sent, `worker ${group[0]!.worker}`);
    }
    // What the control plane scrapes reaches every worker.
    const fresh = `llmstream_server_metrics_stale{server="${sim.url}"} 0`;
    for (const group of groups.values()) {
      await waitFor(async () => (await group[0]!.request("GET", "/metrics")).body.includes(fresh), {
        what: `scraped metrics in worker ${group[0]!.worker}`,
      });
    }
  } finally {
    closeAll(groups);
    await main.stop();
    await sim.close();
  }
});

Deno.test("workers: SIGTERM with streams in flight on both workers loses none", async () => {
  const sim = await startSimServer(FAST);
  const gate = sim.gate();
  const main = await startMain({ ...QUIET, models: { m: { servers: [sim.url] } } }, WORKERS);
  const groups = await connectionsPerWorker(main.url, { workers: 2, perWorker: 3 });
  try {
    const streams = [...groups.values()].flat().map((connection) =>
      connection.request("POST", "/v1/chat/completions", chat("m", true))
    );
    await waitFor(() => sim.state().gated === 6, { what: "6 streams held" });
    main.terminate();
    await waitFor(() => /Received SIGTERM/.test(main.log()), { what: "the drain to begin" });
    gate.open();
    for (const answer of await Promise.all(streams)) {
      assert.equal(answer.status, 200);
      assert.match(answer.body, /data: \[DONE\]/);
    }
    const status = await main.stop();
    assert.equal(status.code, 0, main.log());
    assert.match(main.log(), /LLMStream stopped/);
    assert.doesNotMatch(main.log(), /still in flight/);
  } finally {
    closeAll(groups);
    await main.stop();
    await sim.close();
  }
});

Deno.test("workers: --workers 1 serves from the main isolate; a bad count is refused", async () => {
  const sim = await startSimServer(FAST);
  const main = await startMain({ ...QUIET, models: { m: { servers: [sim.url] } } }, [
    "--workers",
    "1",
  ]);
  try {
    const health = await fetch(`${main.url}/health`);
    await health.body?.cancel();
    assert.equal(health.headers.get("x-llmstream-worker"), null, "no worker answered");
    assert.doesNotMatch(main.log(), /with \d+ workers/);
  } finally {
    await main.stop();
    await sim.close();
  }
  const refused = await startMain({ models: {} }, ["--workers", "0"]).catch((error) => error);
  assert.match(String(refused), /Invalid --workers "0"/);
});
