// Tests of the engine metric table: raw expositions in, per-model readings and ServerMetrics out.

import assert from "node:assert/strict";
import { parsePrometheusText } from "../../scrape/prometheus_text.ts";
import {
  ANY_MODEL,
  ENGINE_METRIC_NAMES,
  ENGINE_METRICS,
  type Reading,
  readingFor,
  toReadings,
  toServerMetrics,
} from "../../scrape/engines.ts";

function readings(text: string): Map<string, Reading> {
  const parsed = parsePrometheusText(text, { names: ENGINE_METRIC_NAMES });
  assert.equal(parsed.errors, 0, parsed.firstError);
  return toReadings(parsed.samples);
}

/** vLLM V1 serving two models (two API servers on one box) , the first with two DP engines. */
function vllmV1(queries: [number, number], hits: [number, number]): string {
  const l = (e: string) => `{engine="${e}",model_name="llama"}`;
  return `# TYPE vllm:num_requests_running gauge
vllm:num_requests_running${l("0")} 8.0
vllm:num_requests_running${l("1")} 6.0
vllm:num_requests_running{engine="0",model_name="qwen"} 1.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting${l("0")} 2.0
vllm:num_requests_waiting${l("1")} 1.0
vllm:num_requests_waiting{engine="0",model_name="qwen"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc${l("0")} 0.5
vllm:kv_cache_usage_perc${l("1")} 0.25
vllm:kv_cache_usage_perc{engine="0",model_name="qwen"} 0.125
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total${l("0")} ${queries[0]}.0
vllm:prefix_cache_queries_total${l("1")} ${queries[1]}.0
# TYPE vllm:prefix_cache_queries_created gauge
vllm:prefix_cache_queries_created${l("0")} 1.7327123456789e+09
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total${l("0")} ${hits[0]}.0
vllm:prefix_cache_hits_total${l("1")} ${hits[1]}.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="llama"} 140.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="llama"} 140.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="llama"} 9.81
`;
}

Deno.test("the table maps every engine name the brief lists, as data", () => {
  const expected: Record<string, string> = {
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
    "vllm:kv_cache_usage_perc": "kvUsage",
    "vllm:prefix_cache_queries_total": "prefixQueries",
    "vllm:prefix_cache_hits_total": "prefixHits",
    "vllm:gpu_cache_usage_perc": "kvUsage",
    "vllm:gpu_prefix_cache_queries_total": "prefixQueries",
    "vllm:gpu_prefix_cache_hits_total": "prefixHits",
    "sglang:num_running_reqs": "running",
    "sglang:num_queue_reqs": "waiting",
    "sglang:token_usage": "kvUsage",
    "llamacpp:requests_processing": "running",
    "llamacpp:requests_deferred": "waiting",
  };
  for (const [name, field] of Object.entries(expected)) {
    assert.equal(ENGINE_METRICS.get(name)?.field, field, name);
    assert.ok(ENGINE_METRIC_NAMES.has(name));
  }
});

Deno.test("vLLM V1 DP engines combine: counts and counters summed, KV averaged", () => {
  const r = readings(vllmV1([100, 300], [40, 60]));
  assert.deepEqual(r.get("llama"), {
    running: 14,
    waiting: 3,
    kvUsage: 0.375,
    prefixQueries: 400,
    prefixHits: 100,
    ranks: 2,
  });
});

Deno.test("other model_name series on a shared server stay apart", () => {
  const r = readings(vllmV1([0, 0], [0, 0]));
  assert.deepEqual([...r.keys()].sort(), ["llama", "qwen"]);
  assert.deepEqual(r.get("qwen"), { running: 1, waiting: 0, kvUsage: 0.125, ranks: 1 });
  assert.equal(readingFor(r, "qwen")?.running, 1);
  assert.equal(readingFor(r, "mistral"), undefined);
});

Deno.test("legacy vLLM names are read, and lose to current names when both appear", () => {
  const v0 = readings(`vllm:num_requests_running{model_name="m"} 2.0
vllm:num_requests_swapped{model_name="m"} 0.0
vllm:num_requests_waiting{model_name="m"} 1.0
vllm:gpu_cache_usage_perc{model_name="m"} 0.25
vllm:cpu_cache_usage_perc{model_name="m"} 0.9
vllm:gpu_prefix_cache_hit_rate{model_name="m"} 0.4
`);
  assert.deepEqual(v0.get("m"), {
    running: 2,
    waiting: 1,
    kvUsage: 0.25,
    prefixHitRate: 0.4,
    ranks: 1,
  });
  assert.equal(toServerMetrics(v0.get("m")!, 5).prefixHitRate, 0.4);
  // vLLM 0.9 prints both names for a while; the legacy series must not double the counters.
  const both = readings(`vllm:gpu_prefix_cache_queries_total{engine="0",model_name="m"} 50.0
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 50.0
vllm:gpu_prefix_cache_hits_total{engine="0",model_name="m"} 10.0
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 10.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.75
`);
  assert.deepEqual(both.get("m"), {
    running: 0,
    waiting: 0,
    kvUsage: 0.5,
    prefixQueries: 50,
    prefixHits: 10,
    ranks: 1,
  });
  const v08 = readings(`vllm:gpu_prefix_cache_queries_total{engine="0",model_name="m"} 50.0
vllm:gpu_prefix_cache_hits_total{engine="0",model_name="m"} 10.0
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.75
`);
  assert.equal(v08.get("m")?.kvUsage, 0.75);
  assert.equal(v08.get("m")?.prefixQueries, 50);
});

Deno.test("SGLang: tp_rank replicas are not summed, dp_rank ranks are", () => {
  const lab = (dp: string, tp: string) =>
    `{dp_rank="${dp}",engine_type="unified",model_name="qwen",pp_rank="0",tp_rank="${tp}"}`;
  const r = readings(`# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs${lab("0", "0")} 4.0
sglang:num_running_reqs${lab("0", "1")} 4.0
sglang:num_running_reqs${lab("1", "0")} 2.0
sglang:num_running_reqs${lab("1", "1")} 2.0
sglang:num_queue_reqs${lab("0", "0")} 3.0
sglang:num_queue_reqs${lab("1", "0")} 0.0
sglang:token_usage${lab("0", "0")} 0.8
sglang:token_usage${lab("1", "0")} 0.4
sglang:cache_hit_rate${lab("0", "0")} 0.0
sglang:gen_throughput${lab("0", "0")} 35.1
`);
  const q = r.get("qwen");
  assert.equal(q?.running, 6);
  assert.equal(q?.waiting, 3);
  assert.ok(Math.abs((q?.kvUsage ?? 0) - 0.6) < 1e-12);
  assert.equal(q?.ranks, 2);
  assert.equal(q?.prefixHitRate, undefined);
  const single = readings(`sglang:num_running_reqs{model_name="m"} 0.0
sglang:token_usage{model_name="m"} 0.74
`);
  assert.deepEqual(single.get("m"), { running: 0, waiting: 0, kvUsage: 0.74, ranks: 1 });
});

Deno.test("llama.cpp series have no model_name and apply to any model", () => {
  const r = readings(`# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
llamacpp:requests_deferred 3
llamacpp:prompt_tokens_total 1024
`);
  assert.deepEqual([...r.keys()], [ANY_MODEL]);
  const reading = readingFor(r, "whatever-the-spec-calls-it");
  assert.deepEqual(reading, { running: 1, waiting: 3, ranks: 1 });
  const metrics = toServerMetrics(reading!, 1000);
  assert.deepEqual(metrics, { running: 1, waiting: 3, scrapedAt: 1000 });
});

Deno.test("NaN and infinite values are ignored rather than poisoning sums", () => {
  const r = readings(`vllm:num_requests_running{engine="0",model_name="m"} NaN
vllm:num_requests_running{engine="1",model_name="m"} 3.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} +Inf
`);
  assert.deepEqual(r.get("m"), { running: 3, waiting: 0, ranks: 1 });
});

Deno.test("prefix hit rate is a delta of counters between two scrapes", () => {
  const before = readings(vllmV1([100, 300], [40, 60])).get("llama")!;
  const after = readings(vllmV1([200, 500], [100, 180])).get("llama")!;
  // (60 + 120) hits over (100 + 200) queries.
  const m = toServerMetrics(after, 42, { previous: before });
  assert.deepEqual(m, {
    running: 14,
    waiting: 3,
    kvUsage: 0.375,
    prefixHitRate: 0.6,
    prefixQueries: 700,
    scrapedAt: 42,
  });
  // No previous reading, or no queries in between: no rate.
  assert.equal(toServerMetrics(after, 42).prefixHitRate, undefined);
  assert.equal(toServerMetrics(after, 42, { previous: after }).prefixHitRate, undefined);
  // A restart resets the counters: the current totals are the deltas.
  const restarted = readings(vllmV1([10, 0], [5, 0])).get("llama")!;
  assert.equal(toServerMetrics(restarted, 43, { previous: after }).prefixHitRate, 0.5);
});

Deno.test("out-of-range engine values are clamped into 0..1", () => {
  const reading: Reading = {
    running: 1,
    waiting: 0,
    kvUsage: 1.2,
    prefixQueries: 10,
    prefixHits: 20,
    ranks: 1,
  };
  const m = toServerMetrics(reading, 0, {
    previous: { ...reading, prefixQueries: 0, prefixHits: 0 },
  });
  assert.equal(m.kvUsage, 1);
  assert.equal(m.prefixHitRate, 1);
});
