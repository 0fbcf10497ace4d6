import assert from "node:assert/strict";
import { loadSpecText } from "../../config/load.ts";
import createMetrics from "../../plugins/metrics.ts";
import { pluginContextOf } from "../../gateway/plugin_context.ts";
import { parsePrometheusText, type Sample } from "../../scrape/prometheus_text.ts";
import {
  postJson,
  type Stack,
  type StackOptions,
  startStack,
  totalInFlight,
  waitFor,
} from "../support/stack.ts";

const FAST = { itlMs: 1, ttftMs: 1 };
const ODD = 'odd "quoted" \\ name\nline two';
const CHAT = "/v1/chat/completions";

/** Scrapes `/metrics`, checks it parses with zero errors and its histograms are well-formed. */
async function scrape(url: string): Promise<Sample[]> {
  const response = await fetch(`${url}/metrics`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const text = await response.text();
  const parsed = parsePrometheusText(text);
  assert.equal(parsed.errors, 0, parsed.firstError);
  for (const [family, type] of parsed.types) {
    assert.ok(text.includes(`# HELP ${family} `), `${family} has no HELP`);
    if (type === "histogram") checkHistogram(family, parsed.samples);
  }
  const seen = new Set<string>();
  for (const sample of parsed.samples) {
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    assert.ok(!seen.has(key), `duplicate series ${key}`);
    seen.add(key);
  }
  return parsed.samples;
}

/** Buckets ascend by `le`, counts are cumulative, `+Inf` equals `_count`. */
function checkHistogram(family: string, samples: Sample[]): void {
  const groups = new Map<string, Sample[]>();
  for (const sample of samples.filter((s) => s.name === `${family}_bucket`)) {
    const { le: _, ...rest } = sample.labels;
    const key = JSON.stringify(rest);
    groups.set(key, [...groups.get(key) ?? [], sample]);
  }
  for (const [key, buckets] of groups) {
    let previous = { le: -Infinity, value: 0 };
    for (const bucket of buckets) {
      const le = bucket.labels["le"] === "+Inf" ? Infinity : Number(bucket.labels["le"]);
      assert.ok(
        le > previous.le && bucket.value >= previous.value,
        `${family}${key} not cumulative`,
      );
      previous = { le, value: bucket.value };
    }
    assert.equal(previous.le, Infinity, `${family}${key} lacks +Inf`);
    const labels = JSON.parse(key) as Record<string, string>;
    assert.equal(previous.value, value(samples, `${family}_count`, labels), `${family}${key}`);
  }
}

/** Sum of the samples of a name whose labels include `labels`. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  ).reduce((sum, s) => sum + s.value, 0);
}

async function withStack(
  spec: (urls: string[]) => Record<string, unknown>,
  fn: (stack: Stack) => Promise<void>,
  sims = [FAST, FAST],
  extra: Pick<StackOptions, "scrape" | "health"> = {},
): Promise<void> {
  const stack = await startStack({ sims, spec, ...extra });
  try {
    await fn(stack);
    await waitFor(() => totalInFlight(stack.gateway) === 0, { what: "in-flight back to 0" });
  } finally {
    await stack.close();
  }
}

const twoModels = ([a, b]: string[]) => ({
  models: {
    m: { servers: [a, { url: b, weight: 3 }] },
    [ODD]: { servers: [b], strategy: "real_time_metrics" },
  },
  plugins: ["metrics"],
});

Deno.test("metrics: /metrics counts exactly the traffic sent", async () => {
  await withStack(twoModels, async ({ url, sims, gateway }) => {
    const tokens = { prompt: 0, completion: 0 };
    for (let i = 0; i < 5; i++) {
      const model = i === 4 ? ODD : "m";
      const response = await postJson(`${url}${CHAT}`, {
        model,
        messages: [{ role: "user", content: `hello ${"x ".repeat(i)}` }],
        max_tokens: 2 + i,
      });
      assert.equal(response.status, 200);
      const { usage } = await response.json();
      tokens.prompt += usage.prompt_tokens;
      tokens.completion += usage.completion_tokens;
    }
    for (const model of ["nope", "gpt-9"]) {
      const response = await postJson(`${url}${CHAT}`, { model, messages: [] });
      assert.equal(response.status, 404);
      await response.body?.cancel();
    }
    const streamed = await postJson(`${url}/v1/completions`, {
      model: "m",
      prompt: "Once upon a time",
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
    });
    const events = (await streamed.text()).split("\n\n").filter((e) => e.includes('"usage"'));
    const { usage } = JSON.parse(events.at(-1)!.slice(6));
    tokens.prompt += usage.prompt_tokens;
    tokens.completion += usage.completion_tokens;
    await waitFor(() => totalInFlight(gateway) === 0, { what: "requests to end" });

    const samples = await scrape(url);
    const requests = "llmstream_requests_total";
    assert.equal(value(samples, requests, { status: "200", outcome: "success" }), 6);
    assert.equal(value(samples, requests, { model: "m", status: "200" }), 5);
    assert.equal(value(samples, requests, { model: ODD, server: sims[1]!.url }), 1);
    assert.equal(value(samples, requests, { path: "/v1/completions", model: "m" }), 1);
    assert.equal(
      value(samples, requests, { model: "unknown", server: "none", status: "404", path: CHAT }),
      2,
    );
    assert.equal(value(samples, "llmstream_prompt_tokens_total"), tokens.prompt);
    assert.equal(value(samples, "llmstream_completion_tokens_total"), tokens.completion);
    assert.ok(tokens.prompt > 0 && tokens.completion === 2 + 3 + 4 + 5 + 6 + 4);
    assert.equal(value(samples, "llmstream_request_duration_seconds_count"), 6);
    assert.equal(value(samples, "llmstream_gateway_overhead_seconds_count"), 6);
    assert.equal(value(samples, "llmstream_time_to_first_token_seconds_count", { model: "m" }), 1);
    assert.equal(value(samples, "llmstream_time_to_first_token_seconds_count"), 1);
    assert.equal(value(samples, "llmstream_retries_total"), 0);
    // Scrape-time gauges: static weights for round_robin, a live weight for real_time_metrics.
    const weight = "llmstream_route_weight";
    assert.equal(value(samples, weight, { model: "m", server: sims[0]!.url }), 1);
    assert.equal(value(samples, weight, { model: "m", server: sims[1]!.url }), 3);
    assert.ok(value(samples, weight, { model: ODD }) > 0);
    for (const sim of sims) {
      assert.equal(value(samples, "llmstream_server_healthy", { server: sim.url }), 1);
      assert.equal(value(samples, "llmstream_server_in_flight", { server: sim.url }), 0);
      const breaker = { server: sim.url, state: "closed" };
      assert.equal(value(samples, "llmstream_server_breaker_state", breaker), 1);
      assert.equal(value(samples, "llmstream_server_ejections_total", { server: sim.url }), 0);
    }
    assert.equal(value(samples, "llmstream_config_reloads_total"), 0);
  });
});

Deno.test("metrics: 200 random model names add no series", async () => {
  await withStack(twoModels, async ({ url }) => {
    const ask = async (model: string) => {
      const response = await postJson(`${url}${CHAT}`, { model, messages: [] });
      await response.body?.cancel();
      return response.status;
    };
    assert.equal(await ask("warm-up"), 404);
    const before = await scrape(url);
    const names = Array.from({ length: 200 }, () => `model-${crypto.randomUUID()}"\\\n`);
    for (let i = 0; i < names.length; i += 20) {
      const statuses = await Promise.all(names.slice(i, i + 20).map(ask));
      assert.ok(statuses.every((status) => status === 404));
    }
    const bad = await postJson(`${url}${CHAT}`, "{not json");
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    const after = await scrape(url);
    const series = (samples: Sample[]) =>
      samples.filter((s) => s.name !== "llmstream_server_metrics_age_seconds").map((s) =>
        `${s.name}${JSON.stringify(s.labels)}`
      );
    const added = series(after).filter((key) => !series(before).includes(key));
    assert.deepEqual(added, [
      `llmstream_requests_total{"model":"unknown","server":"none","path":"${CHAT}",` +
      `"status":"400","outcome":"error"}`,
    ]);
    const models = new Set(after.flatMap((s) => s.labels["model"] ?? []));
    assert.deepEqual([...models].sort(), ["m", ODD, "unknown"].sort());
    assert.equal(
      value(after, "llmstream_requests_total", { model: "unknown", status: "404" }),
      201,
    );
  });
});

Deno.test("metrics: the in-flight gauge shows a held stream", async () => {
  await withStack(twoModels, async ({ url, sims }) => {
    const gate = sims[1]!.gate();
    const response = await postJson(`${url}${CHAT}`, {
      model: ODD,
      messages: [{ role: "user", content: "hold on" }],
      max_tokens: 3,
      stream: true,
    });
    const reader = response.body!.getReader();
    await reader.read();
    await sims[1]!.until((state) => state.gated === 1);
    const held = await scrape(url);
    assert.equal(value(held, "llmstream_server_in_flight", { server: sims[1]!.url }), 1);
    assert.equal(value(held, "llmstream_server_in_flight", { server: sims[0]!.url }), 0);
    assert.equal(value(held, "llmstream_requests_total"), 0);
    gate.open();
    while (!(await reader.read()).done);
    await waitFor(() => sims[1]!.state().running === 0, { what: "the stream to end" });
    await waitFor(async () => value(await scrape(url), "llmstream_requests_total") === 1);
    const done = await scrape(url);
    assert.equal(value(done, "llmstream_server_in_flight"), 0);
    assert.equal(value(done, "llmstream_time_to_first_token_seconds_count", { model: ODD }), 1);
  });
});

Deno.test("metrics: retries, ejections and config reloads are counted", async () => {
  const spec = ([bad, good]: string[]) => ({
    models: { m: { servers: [bad, good] } },
    retries: { max_attempts: 2, backoff: 0 },
    outlier_detection: { consecutive_failures: 2, cooldown: 60 },
    health_checks: { enabled: false },
    plugins: [{ name: "metrics", options: { tokens: false } }],
  });
  const sims = [{ ...FAST, errorRate: 1, errorStatus: 503 }, FAST];
  await withStack(spec, async ({ url, sims, gateway }) => {
    let retried = 0;
    for (let i = 0; i < 6; i++) {
      const response = await postJson(`${url}${CHAT}`, {
        model: "m",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 1,
      });
      assert.equal(response.status, 200);
      retried += Number(response.headers.get("x-llmstream-attempts")) - 1;
      await response.body?.cancel();
    }
    await waitFor(() => totalInFlight(gateway) === 0, { what: "requests to end" });
    const [bad, good] = sims.map((sim) => sim.url);
    assert.equal(retried, 2);
    const samples = await scrape(url);
    assert.equal(value(samples, "llmstream_retries_total", { model: "m", server: bad! }), 2);
    assert.equal(value(samples, "llmstream_retries_total"), 2);
    assert.equal(value(samples, "llmstream_server_ejections_total", { server: bad! }), 1);
    assert.equal(value(samples, "llmstream_server_ejections_total", { server: good! }), 0);
    const open = { server: bad!, state: "open" };
    assert.equal(value(samples, "llmstream_server_breaker_state", open), 1);
    // An ejected server gets no picks, so its weight in the route is 0.
    assert.equal(value(samples, "llmstream_route_weight", { server: bad! }), 0);
    assert.equal(value(samples, "llmstream_route_weight", { server: good! }), 1);
    assert.equal(value(samples, "llmstream_requests_total", { server: good!, status: "200" }), 6);
    // tokens: false leaves the token series out.
    assert.ok(!samples.some((s) => s.name === "llmstream_prompt_tokens_total"));

    const text = JSON.stringify({ ...spec([bad!, good!]), metrics_update_interval: 5 });
    gateway.apply(await loadSpecText(text, { format: "json" }));
    gateway.apply(await loadSpecText(text, { format: "json" }));
    await gateway.pluginsSettled();
    const reloaded = await scrape(url);
    assert.equal(value(reloaded, "llmstream_config_reloads_total"), 2);
    assert.ok(value(reloaded, "llmstream_config_last_reload_timestamp_seconds") > 1e9);
    // The plugin was kept across reloads (same options), so its counts were too.
    assert.equal(value(reloaded, "llmstream_retries_total"), 2);
    // A closed instance stops counting reloads.
    const closed = createMetrics({
      name: "metrics",
      options: {},
      context: pluginContextOf(gateway),
    });
    gateway.apply(await loadSpecText(text, { format: "json" }));
    await closed.close?.();
    gateway.apply(await loadSpecText(text, { format: "json" }));
    const answer = await closed.routes!({
      request: new Request(`${url}/metrics`),
      path: "/metrics",
      requestId: "test",
    });
    const own = parsePrometheusText(await answer!.text()).samples;
    assert.equal(value(own, "llmstream_config_reloads_total"), 1);
    assert.equal(value(await scrape(url), "llmstream_config_reloads_total"), 4);
  }, sims);
});

Deno.test("metrics: health checks and metrics scrapes show per server", async () => {
  const spec = ([a, b]: string[]) => ({
    models: { m: { servers: [a, b], strategy: "real_time_metrics" } },
    metrics_update_interval: 0.05,
    health_checks: { interval: 0.05, timeout: 1, unhealthy_threshold: 1 },
    plugins: ["metrics"],
  });
  await withStack(
    spec,
    async ({ url, sims, feed }) => {
      const [a, b] = sims.map((sim) => sim.url);
      await feed!.scrapeNow();
      const fresh = await scrape(url);
      assert.equal(value(fresh, "llmstream_server_metrics_stale"), 0);
      assert.equal(value(fresh, "llmstream_server_scrape_errors_total", { server: b! }), 0);
      assert.ok(value(fresh, "llmstream_server_metrics_age_seconds", { server: a! }) < 1);
      assert.ok(value(fresh, "llmstream_route_weight", { server: b! }) > 0);
      sims[1]!.update({ healthStatus: 503, metricsStatus: 500 });
      await waitFor(async () => {
        const samples = await scrape(url);
        return value(samples, "llmstream_server_healthy", { server: b! }) === 0 &&
          value(samples, "llmstream_server_metrics_stale", { server: b! }) === 1;
      }, { what: "server b to show unhealthy with stale metrics" });
      const down = await scrape(url);
      assert.equal(value(down, "llmstream_server_healthy", { server: a! }), 1);
      assert.equal(value(down, "llmstream_route_weight", { server: b! }), 0);
      assert.ok(value(down, "llmstream_server_scrape_errors_total", { server: b! }) >= 1);
      assert.equal(value(down, "llmstream_server_scrape_errors_total", { server: a! }), 0);
      assert.ok(value(down, "llmstream_route_weight", { server: a! }) > 0);
    },
    [FAST, FAST],
    { scrape: true, health: true },
  );
});

Deno.test("metrics: options path and token; wrong method and bad options are refused", async () => {
  const spec = ([a]: string[]) => ({
    models: { m: { servers: [a] } },
    plugins: [{ name: "metrics", options: { path: "/internal/prom", token: "s3cret-token" } }],
  });
  await withStack(spec, async ({ url }) => {
    const missing = await fetch(`${url}/internal/prom`);
    assert.equal(missing.status, 401);
    assert.equal((await missing.json()).error.type, "authentication_error");
    const wrong = await fetch(`${url}/internal/prom`, { headers: { authorization: "Bearer no" } });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    const ok = await fetch(`${url}/internal/prom`, {
      headers: { authorization: "Bearer s3cret-token" },
    });
    assert.equal(ok.status, 200);
    assert.equal(parsePrometheusText(await ok.text()).errors, 0);
    const post = await fetch(`${url}/internal/prom`, { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
    const old = await fetch(`${url}/metrics`);
    assert.equal(old.status, 404);
    await old.body?.cancel();
  }, [FAST]);
  await assert.rejects(
    startStack({
      sims: [],
      spec: () => ({ models: {}, plugins: [{ name: "metrics", options: { buckets: [1] } }] }),
    }),
    /metrics/,
  );
});
