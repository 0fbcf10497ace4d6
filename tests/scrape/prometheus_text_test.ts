// Tests of the Prometheus text parser on expositions shaped as real servers print them.

import assert from "node:assert/strict";
import { seededRandom } from "../../strategies/_seeded_random.ts";
import { parsePrometheusText, type Sample } from "../../scrape/prometheus_text.ts";

const MODEL = "meta-llama/Llama-3.1-8B-Instruct";

/** vLLM V1 (prometheus_client 0.0.4 output): two DP engines, histograms, `_created` gauges. */
const VLLM_V1 = `# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 20412.0
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.73271234512e+09
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="${MODEL}"} 8.0
vllm:num_requests_running{engine="1",model_name="${MODEL}"} 6.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="${MODEL}"} 2.0
vllm:num_requests_waiting{engine="1",model_name="${MODEL}"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="${MODEL}"} 0.4375
vllm:kv_cache_usage_perc{engine="1",model_name="${MODEL}"} 0.3125
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="${MODEL}"} 32.0
vllm:prefix_cache_queries_total{engine="1",model_name="${MODEL}"} 64.0
# HELP vllm:prefix_cache_queries_created Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_created gauge
vllm:prefix_cache_queries_created{engine="0",model_name="${MODEL}"} 1.7327123456789e+09
vllm:prefix_cache_queries_created{engine="1",model_name="${MODEL}"} 1.7327123456791e+09
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="${MODEL}"} 131.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="${MODEL}"} 9.0
vllm:request_success_total{engine="0",finished_reason="abort",model_name="${MODEL}"} 0.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="${MODEL}"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.02",model_name="${MODEL}"} 13.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="2560.0",model_name="${MODEL}"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="${MODEL}"} 140.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="${MODEL}"} 140.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="${MODEL}"} 9.81
# HELP vllm:time_to_first_token_seconds_created Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds_created gauge
vllm:time_to_first_token_seconds_created{engine="0",model_name="${MODEL}"} 1.7327123456789e+09
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.9",num_gpu_blocks="27910",num_cpu_blocks="None"} 1.0
# HELP vllm:lora_requests_info Running stats on lora requests.
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{max_lora="0",running_lora_adapters="",waiting_lora_adapters=""} 1.7327123456e+09
`;

/** vLLM V0 (0.6): only `model_name`, old names. */
const VLLM_LEGACY = `# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 2.0
# HELP vllm:num_requests_swapped Number of requests swapped to CPU.
# TYPE vllm:num_requests_swapped gauge
vllm:num_requests_swapped{model_name="m"} 0.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.25
# HELP vllm:gpu_prefix_cache_hit_rate GPU prefix cache block hit rate.
# TYPE vllm:gpu_prefix_cache_hit_rate gauge
vllm:gpu_prefix_cache_hit_rate{model_name="m"} 0.4
`;

/** SGLang with TP 2: the scheduler's state is repeated per tp_rank. */
const SGLANG = `# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{engine_type="unified",model_name="qwen",pp_rank="0",tp_rank="0"} 4.0
sglang:num_running_reqs{engine_type="unified",model_name="qwen",pp_rank="0",tp_rank="1"} 4.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{engine_type="unified",model_name="qwen",pp_rank="0",tp_rank="0"} 0.74
# HELP sglang:e2e_request_latency_seconds Histogram of End-to-end request latency in seconds
# TYPE sglang:e2e_request_latency_seconds histogram
sglang:e2e_request_latency_seconds_sum{model_name="qwen"} 1234.5
sglang:e2e_request_latency_seconds_bucket{le="0.1",model_name="qwen"} 3.0
sglang:e2e_request_latency_seconds_bucket{le="+Inf",model_name="qwen"} 77.0
sglang:e2e_request_latency_seconds_count{model_name="qwen"} 77.0
`;

/** llama-server --metrics: no labels at all. */
const LLAMACPP = `# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1024
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 245.123
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 3
`;

function find(samples: readonly Sample[], name: string, labels: Record<string, string> = {}) {
  return samples.filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
}

Deno.test("parser reads a vLLM V1 exposition with DP engines, histograms and _created", () => {
  const r = parsePrometheusText(VLLM_V1);
  assert.equal(r.errors, 0, r.firstError);
  assert.equal(r.types.get("vllm:time_to_first_token_seconds"), "histogram");
  assert.equal(r.types.get("vllm:prefix_cache_queries_total"), "counter");
  assert.equal(r.types.get("vllm:prefix_cache_queries_created"), "gauge");
  const running = find(r.samples, "vllm:num_requests_running");
  assert.deepEqual(running.map((s) => [s.labels.engine, s.labels.model_name, s.value]), [
    ["0", MODEL, 8],
    ["1", MODEL, 6],
  ]);
  assert.equal(find(r.samples, "vllm:kv_cache_usage_perc", { engine: "0" })[0]?.value, 0.4375);
  const inf = find(r.samples, "vllm:time_to_first_token_seconds_bucket", { le: "+Inf" });
  assert.equal(inf[0]?.value, 140);
  assert.equal(find(r.samples, "vllm:time_to_first_token_seconds_sum")[0]?.value, 9.81);
  assert.equal(find(r.samples, "vllm:time_to_first_token_seconds_count")[0]?.value, 140);
  const created = find(r.samples, "vllm:time_to_first_token_seconds_created")[0];
  assert.equal(created?.value, 1.7327123456789e9);
  assert.equal(find(r.samples, "process_start_time_seconds")[0]?.value, 1.73271234512e9);
  const lora = find(r.samples, "vllm:lora_requests_info")[0];
  assert.deepEqual(lora?.labels, {
    max_lora: "0",
    running_lora_adapters: "",
    waiting_lora_adapters: "",
  });
  assert.equal(find(r.samples, "vllm:cache_config_info")[0]?.labels.num_gpu_blocks, "27910");
  assert.equal(r.samples.length, 24);
});

Deno.test("parser reads vLLM legacy, SGLang and llama.cpp expositions", () => {
  const legacy = parsePrometheusText(VLLM_LEGACY);
  assert.equal(legacy.errors, 0);
  assert.deepEqual(find(legacy.samples, "vllm:gpu_cache_usage_perc")[0], {
    name: "vllm:gpu_cache_usage_perc",
    labels: { model_name: "m" },
    value: 0.25,
  });
  const sglang = parsePrometheusText(SGLANG);
  assert.equal(sglang.errors, 0);
  assert.deepEqual(find(sglang.samples, "sglang:num_running_reqs").map((s) => s.labels.tp_rank), [
    "0",
    "1",
  ]);
  assert.equal(sglang.types.get("sglang:e2e_request_latency_seconds"), "histogram");
  assert.equal(find(sglang.samples, "sglang:e2e_request_latency_seconds_sum")[0]?.value, 1234.5);
  const llama = parsePrometheusText(LLAMACPP);
  assert.equal(llama.errors, 0);
  assert.deepEqual(llama.samples.map((s) => [s.name, s.value]), [
    ["llamacpp:prompt_tokens_total", 1024],
    ["llamacpp:prompt_tokens_seconds", 245.123],
    ["llamacpp:requests_processing", 1],
    ["llamacpp:requests_deferred", 3],
  ]);
  assert.deepEqual(llama.samples[0]?.labels, {});
});

Deno.test("parser unescapes label values and keeps odd characters", () => {
  const text =
    String.raw`m{path="C:\\dir\\file",quote="say \"hi\"",nl="a\nb",utf="héllo ☃",eq="a=b,c}"} 1` +
    "\n";
  const r = parsePrometheusText(text);
  assert.equal(r.errors, 0, r.firstError);
  assert.deepEqual(r.samples[0]?.labels, {
    path: "C:\\dir\\file",
    quote: 'say "hi"',
    nl: "a\nb",
    utf: "héllo ☃",
    eq: "a=b,c}",
  });
  const invalid = parsePrometheusText(String.raw`m{a="bad \x escape"} 1`);
  assert.equal(invalid.errors, 1);
  assert.match(invalid.firstError ?? "", /line 1: invalid escape/);
});

Deno.test("parser reads NaN, infinities, exponents, signs and timestamps", () => {
  const text = `a NaN
b +Inf
c -Inf
d 1.5e-3
e -2E+2 1700000000000
f 3 -5
g 0.1
h 12345678901234567890
i .5
j +7
k{} 4
l { x = "y" , } 5
m\t6\t\t1`;
  const r = parsePrometheusText(text);
  assert.equal(r.errors, 0, r.firstError);
  const by = new Map(r.samples.map((s) => [s.name, s]));
  assert.ok(Number.isNaN(by.get("a")?.value));
  assert.equal(by.get("b")?.value, Infinity);
  assert.equal(by.get("c")?.value, -Infinity);
  assert.equal(by.get("d")?.value, 0.0015);
  assert.deepEqual(by.get("e"), { name: "e", labels: {}, value: -200, timestamp: 1700000000000 });
  assert.equal(by.get("f")?.timestamp, -5);
  assert.equal(by.get("g")?.value, 0.1);
  assert.equal(by.get("h")?.value, 12345678901234567890);
  assert.equal(by.get("i")?.value, 0.5);
  assert.equal(by.get("j")?.value, 7);
  assert.deepEqual(by.get("l")?.labels, { x: "y" });
  assert.equal(by.get("m")?.timestamp, 1);
  assert.equal("timestamp" in (by.get("a") ?? {}), false);
});

Deno.test("parser handles CRLF, blank lines, comments, and no final newline", () => {
  const text = "\r\n# just a comment\r\n#\r\n# HELPER not help\r\n  \r\n" +
    '# TYPE x gauge\r\nx{a="1"} 2\r\n\r\n   y 3\r\nz 4';
  const r = parsePrometheusText(text);
  assert.equal(r.errors, 0, r.firstError);
  assert.deepEqual(r.samples.map((s) => [s.name, s.labels, s.value]), [
    ["x", { a: "1" }, 2],
    ["y", {}, 3],
    ["z", {}, 4],
  ]);
  assert.equal(r.types.get("x"), "gauge");
});

Deno.test("parser skips and counts malformed lines, keeping the rest", () => {
  // deno-fmt-ignore
  const lines = ["ok1 1", "1bad 1", "no_value", 'unterminated{a="x 1', "noquote{a=x} 1",
    'dup{a="1",a="2"} 1', "bad_value 1.2.3", "bad_ts 1 12.5", "trailing 1 2 3",
    'nocomma{a="1" b="2"} 1', "# TYPE t bogus", "# TYPE", "# HELP",
    "<html><body>Not found</body></html>", "name-with-dash 1", "ok2 2"];
  const r = parsePrometheusText(lines.join("\n"));
  assert.deepEqual(r.samples.map((s) => s.name), ["ok1", "ok2"]);
  assert.equal(r.errors, lines.length - 2);
  assert.equal(r.firstError, "line 2: invalid metric name");
  assert.equal(r.types.size, 0);
});

Deno.test("parser's name filter keeps only wanted series without judging the others", () => {
  const wanted = new Set(["vllm:num_requests_running", "vllm:kv_cache_usage_perc"]);
  const r = parsePrometheusText(VLLM_V1 + 'unwanted{broken="1 2\n', { names: wanted });
  assert.equal(r.errors, 0);
  assert.deepEqual([...new Set(r.samples.map((s) => s.name))], [...wanted]);
  assert.equal(r.samples.length, 4);
  assert.deepEqual([...r.types.keys()], [...wanted]);
  const bad = parsePrometheusText('vllm:num_requests_running{engine="0" 1\n', { names: wanted });
  assert.equal(bad.errors, 1);
});

Deno.test("parser keeps a __proto__ label as a plain label", () => {
  const r = parsePrometheusText('m{__proto__="x",b="y"} 1\n');
  assert.equal(r.errors, 0);
  const labels = r.samples[0]?.labels ?? {};
  assert.equal(Object.getOwnPropertyDescriptor(labels, "__proto__")?.value, "x");
  assert.equal(Object.getPrototypeOf(labels), Object.prototype);
});

const PALETTE = ' {}",=\\\n\r\t#:_.-+eE0123456789aZnNIf';

function mutate(text: string, from: number, random: () => number): string {
  let out = text;
  const edits = 1 + Math.floor(random() * 4);
  for (let k = 0; k < edits; k++) {
    const at = from + Math.floor(random() * (out.length - from + 1));
    const kind = Math.floor(random() * 4);
    const ch = PALETTE[Math.floor(random() * PALETTE.length)] ?? "x";
    if (kind === 0) out = out.slice(0, at) + out.slice(at + 1);
    else if (kind === 1) out = out.slice(0, at) + ch + out.slice(at);
    else if (kind === 2) out = out.slice(0, at) + ch + out.slice(at + 1);
    else out = out.slice(0, at) + out.slice(at, at + 20) + out.slice(at);
  }
  return out;
}

Deno.test("parser never throws on mutated input and keeps the lines before the damage", () => {
  const random = seededRandom(20240611);
  const sources = [VLLM_V1, VLLM_LEGACY, SGLANG, LLAMACPP];
  for (let round = 0; round < 3000; round++) {
    const source = sources[round % sources.length] ?? "";
    const lineStarts = [0];
    for (let i = source.indexOf("\n"); i !== -1; i = source.indexOf("\n", i + 1)) {
      lineStarts.push(i + 1);
    }
    const cut = lineStarts[Math.floor(random() * lineStarts.length)] ?? 0;
    const mutated = mutate(source, cut, random);
    const prefix = parsePrometheusText(source.slice(0, cut));
    const names = round % 2 === 0 ? undefined : new Set(["vllm:num_requests_running", "x"]);
    const whole = parsePrometheusText(mutated, names === undefined ? {} : { names });
    assert.ok(whole.errors >= 0);
    for (const s of whole.samples) {
      assert.equal(typeof s.name, "string");
      assert.equal(typeof s.value, "number");
    }
    if (names === undefined) {
      assert.deepEqual(
        whole.samples.slice(0, prefix.samples.length),
        prefix.samples,
        `round ${round}`,
      );
    }
  }
});

Deno.test("parser's fast decimal path agrees with Number() and fuzzed garbage never throws", () => {
  const random = seededRandom(7);
  for (let k = 0; k < 5000; k++) {
    const intPart = String(Math.floor(random() * 10 ** Math.floor(random() * 12)));
    const frac = String(Math.floor(random() * 10 ** Math.floor(random() * 8)));
    const token = random() < 0.5 ? intPart : `${intPart}.${frac}`;
    const r = parsePrometheusText(`x ${token}\n`);
    assert.equal(r.samples[0]?.value, Number(token), token);
  }
  for (let k = 0; k < 2000; k++) {
    let garbage = "";
    const length = Math.floor(random() * 80);
    for (let i = 0; i < length; i++) garbage += PALETTE[Math.floor(random() * PALETTE.length)];
    const r = parsePrometheusText(garbage);
    assert.ok(r.errors >= 0);
  }
});
