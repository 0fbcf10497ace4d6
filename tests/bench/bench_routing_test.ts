import assert from "node:assert/strict";
import { ratioLine, renderReport } from "../../bench/routing/report.ts";
import { runStrategies } from "../../bench/routing/pool.ts";
import { ORACLE, prepareRun } from "../../bench/routing/run.ts";
import { quantile } from "../../bench/routing/stats.ts";
import { burstyTrace, poissonTrace, prefixTrace, type Trace } from "../../bench/routing/traces.ts";
import { type PrefixRunResult, runPrefix } from "../../bench/prefix/run.ts";
import { type Contender, ORACLE_STRATEGY, PROXIED_ORACLE } from "../../bench/prefix/contenders.ts";
import { chatTrace } from "../../bench/prefix/traces.ts";

const BASE = { capacity: 20, seconds: 10, warmup: 0, seed: 1 };

Deno.test("routing traces are seeded and offer the load asked for", () => {
  const trace = poissonTrace(0.5, BASE);
  assert.deepEqual(poissonTrace(0.5, BASE), trace);
  assert.notDeepEqual(poissonTrace(0.5, { ...BASE, seed: 2 }), trace);
  // 0.5 x 20 req/s for 10 s: about 100 arrivals.
  assert.ok(trace.requests.length > 70 && trace.requests.length < 130, `${trace.requests.length}`);
  assert.ok(trace.requests.every((request, i, all) => i === 0 || request.at >= all[i - 1]!.at));
  const bursty = burstyTrace({ ...BASE, seconds: 40 });
  assert.ok(Math.abs(bursty.requests.length / (40 * 20) - bursty.load) < 0.15, "bursty mean load");
  const prefix = prefixTrace(0.5, { ...BASE, prefixes: 4 });
  assert.equal(new Set(prefix.requests.map((request) => request.system)).size, 4);
  assert.ok(prefix.requests.every((request) => request.system.length > 4000));
});

Deno.test("quantiles use the nearest rank", () => {
  assert.equal(quantile([5, 1, 3, 2, 4], 0.5), 3);
  assert.equal(quantile([1, 2, 3], 0.99), 3);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

Deno.test("a short benchmark run measures every request through the gateway", async () => {
  const trace: Trace = { ...poissonTrace(0.3, { ...BASE, seconds: 1.5 }), warmupMs: 300 };
  const measured = trace.requests.filter((request) => request.at >= 300).length;
  const base = { interval: 0.1, seed: 1, rtmOptions: {}, drainSeconds: 10 };
  // In this thread (the oracle reads the simulators in-process) ...
  const prepared = await prepareRun({ ...base, strategy: ORACLE });
  const summary = await prepared.run(trace, Date.now());
  await prepared.close();
  // ... and in workers, as the benchmark runs.
  const rows = await runStrategies(trace, ["real_time_metrics", "round_robin"], {
    ...base,
    parallel: 2,
  });
  for (const row of [summary, ...rows]) {
    assert.equal(row.requests, measured, row.strategy);
    assert.equal(row.errors + row.cut, 0, row.strategy);
    assert.ok(row.ttftP50 > 0 && row.ttftP99 >= row.ttftP50, row.strategy);
    assert.ok(row.e2eP50 > row.ttftP50, row.strategy);
    const shares = row.shares.reduce((sum, share) => sum + share, 0);
    assert.ok(Math.abs(shares - 1) < 1e-9, `${row.strategy}: shares ${shares}`);
  }
  const results = [{ trace: { ...trace, name: "poisson 90%", load: 0.9 }, rows }];
  const report = renderReport({
    command: "deno task bench:routing --test",
    interval: 0.1,
    seconds: 1.5,
    warmup: 0.3,
    drain: 10,
    parallel: 2,
    seed: 1,
    probe: { perServer: [1, 1, 1, 1], total: 4 },
    results,
    wallSeconds: 1,
  });
  assert.match(report, /\| real_time_metrics \| \d+ \| \d+ \|/);
  assert.match(ratioLine(results), /^real_time_metrics\/round_robin p99 TTFT ratio: \d+\.\d\d$/);
});

Deno.test("a short prefix-cache run measures every turn, the cache hits, and no request beats its floor", async () => {
  const row = await shortChatRun({ kind: "llmstream", strategy: "cache_aware", replicas: 1 }, 3);
  assert.ok(row.requests > 0);
  assert.equal(row.failed, 0);
  // Later turns re-send their history: the servers' own counters show hits.
  assert.ok(row.hitRate > 0.1, `hit rate ${row.hitRate}`);
  // The servers count by admission, the floor by sending: a few requests' worth of slack.
  assert.ok(row.idealHitRate + 0.05 >= row.hitRate, `ideal ${row.idealHitRate} < ${row.hitRate}`);
  // The floor leaves out queueing, the decode batch and HTTP: measured TTFT is above it.
  assert.ok(row.floor[0] > 0 && row.ttft[0] > row.floor[0], `${row.ttft} vs floor ${row.floor}`);
  assert.ok(row.ttft[1] > row.floor[1], `${row.ttft} vs floor ${row.floor}`);
  // The loaded floor adds a decode step where every server was busy: at least the floor, and
  // still below what was measured.
  const loaded = row.loadedFloor;
  assert.ok(loaded[0] >= row.floor[0] && loaded[1] >= row.floor[1], `${loaded} vs ${row.floor}`);
  assert.ok(row.ttft[0] > loaded[0] && row.ttft[1] > loaded[1], `${row.ttft} vs ${loaded}`);
  // The servers' own first-token time leaves out HTTP and the gateway: it is below the client's.
  const { client, server } = row.ttftMean;
  assert.ok(server > 0 && server < client, `client ${client} ms, servers ${server} ms`);
  const shares = row.shares.reduce((sum, share) => sum + share, 0);
  assert.ok(Math.abs(shares - 1) < 1e-9, `shares ${shares}`);
  // Every measured turn is a first or a later one; a later turn finds its history cached and
  // prefills only its new message, so its first token comes sooner.
  const { first, later } = row.byTurn;
  assert.equal(first[2] + later[2], row.requests);
  assert.ok(first[2] > 0 && later[2] > 0, `first ${first}, later ${later}`);
  assert.ok(later[0] < first[0], `first ${first}, later ${later}`);
});

Deno.test("the prefix suite's oracle sends each turn to the server where its history is, straight or through the plain proxy", async () => {
  for (const strategy of [ORACLE_STRATEGY, PROXIED_ORACLE]) {
    const row = await shortChatRun({ kind: "oracle", strategy, replicas: 1 }, 4);
    assert.equal(row.contender, `oracle ${strategy}`);
    assert.ok(row.requests > 0, strategy);
    // The proxy answers 400 to a request that does not name its server.
    assert.equal(row.failed, 0, strategy);
    // At this light load a later turn's own server forecasts far earlier than one that would
    // prefill its history again: the servers hit about as often as they ideally could.
    assert.ok(
      row.hitRate >= row.idealHitRate - 0.05,
      `${strategy}: hit ${row.hitRate}, ideal ${row.idealHitRate}`,
    );
    // And new chats go where the first token comes soonest, not always to the same server.
    assert.ok(row.shares.every((share) => share > 0.1), `${strategy}: shares ${row.shares}`);
    // The client's time to first token is the servers' plus HTTP.
    assert.ok(row.ttft[0] > row.floor[0], `${strategy}: ${row.ttft} vs floor ${row.floor}`);
  }
});

/** A 2 s chat run (after 0.5 s of warm-up) through a contender in front of two servers. */
async function shortChatRun(contender: Contender, seed: number): Promise<PrefixRunResult> {
  const runDir = await Deno.makeTempDir({ prefix: "llmstream-prefix-test-" });
  try {
    return await runPrefix(chatTrace({ seed, seconds: 2, warmup: 0.5, rate: 2 }), {
      fleet: { name: "homogeneous", speeds: [1, 1], kvBlocks: 4096 },
      contender,
      context: {
        repoDir: decodeURIComponent(new URL("../..", import.meta.url).pathname).replace(/\/$/, ""),
        runDir,
        interval: 0.5,
      },
      drainMs: 20_000,
      tag: "test",
    });
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
}
