/**
 * Prometheus text for the simulator's `/metrics`, in the names of vLLM (current or legacy),
 * SGLang or llama.cpp, reflecting the engine's state at scrape time. The vLLM flavors also carry
 * `vllm:cache_config_info` and `http_requests_total{handler,method,status}` (answers per endpoint,
 * tokenizer endpoints included) as vLLM's API server exports them.
 *
 * @module
 */

import type { Engine } from "./engine/engine.ts";
import type { ResolvedSimOptions } from "./options.ts";
import type { Histogram } from "./engine/stats.ts";

type Labels = Readonly<Record<string, string>>;

/** Builds exposition text family by family. */
class Exposition {
  readonly #lines: string[] = [];
  readonly #labels: Labels;
  readonly #created: number | undefined;
  readonly #format: (value: number) => string;

  constructor(labels: Labels, created: number | undefined, format: (value: number) => string) {
    this.#labels = labels;
    this.#created = created;
    this.#format = format;
  }

  gauge(name: string, help: string, value: number, extra: Labels = {}): void {
    this.#head(name, help, "gauge");
    this.#sample(name, extra, value);
  }

  counter(name: string, help: string, samples: ReadonlyArray<readonly [Labels, number]>): void {
    this.#head(name, help, "counter");
    const base = name.endsWith("_total") ? name.slice(0, -"_total".length) : name;
    for (const [extra, value] of samples) {
      this.#sample(name, extra, value);
      if (this.#created !== undefined) this.#sample(`${base}_created`, extra, this.#created);
    }
  }

  histogram(name: string, help: string, histogram: Histogram): void {
    this.#head(name, help, "histogram");
    const cumulative = histogram.cumulative();
    histogram.bounds.forEach((bound, i) => {
      this.#sample(`${name}_bucket`, { le: formatBound(bound) }, cumulative[i] ?? 0);
    });
    this.#sample(`${name}_bucket`, { le: "+Inf" }, histogram.count);
    this.#sample(`${name}_count`, {}, histogram.count);
    this.#sample(`${name}_sum`, {}, histogram.sum);
    if (this.#created !== undefined) this.#sample(`${name}_created`, {}, this.#created);
  }

  text(): string {
    return this.#lines.join("\n") + "\n";
  }

  #head(name: string, help: string, type: string): void {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }

  #sample(name: string, extra: Labels, value: number): void {
    const all = { ...this.#labels, ...extra };
    const keys = Object.keys(all).sort();
    const labels = keys.length === 0
      ? ""
      : `{${keys.map((key) => `${key}="${escapeLabel(all[key] ?? "")}"`).join(",")}}`;
    this.#lines.push(`${name}${labels} ${this.#format(value)}`);
  }
}

/**
 * Renders `/metrics` for the engine in the flavor the options name.
 *
 * @param engine The engine whose state and counters to show.
 * @param options The simulator options (flavor, served model, cache config).
 * @returns Prometheus text exposition (version 0.0.4).
 */
export function renderMetrics(engine: Engine, options: ResolvedSimOptions): string {
  switch (options.metricsFlavor) {
    case "sglang":
      return renderSglang(engine, options);
    case "llamacpp":
      return renderLlamacpp(engine);
    default:
      return renderVllm(engine, options, options.metricsFlavor === "vllm_legacy");
  }
}

function renderVllm(engine: Engine, options: ResolvedSimOptions, legacy: boolean): string {
  const state = engine.state();
  const stats = engine.stats;
  const out = new Exposition(
    { engine: "0", model_name: options.models[0] ?? "" },
    stats.created,
    formatPython,
  );
  out.gauge(
    "vllm:num_requests_running",
    "Number of requests in model execution batches.",
    state.running,
  );
  out.gauge(
    "vllm:num_requests_waiting",
    "Number of requests waiting to be processed.",
    state.waiting,
  );
  out.gauge(
    legacy ? "vllm:gpu_cache_usage_perc" : "vllm:kv_cache_usage_perc",
    `${legacy ? "GPU " : ""}KV-cache usage. 1 means 100 percent usage.`,
    state.kvUsage,
  );
  const prefix = legacy ? "vllm:gpu_prefix_cache" : "vllm:prefix_cache";
  out.counter(
    `${prefix}_queries_total`,
    "Prefix cache queries, in terms of number of queried tokens.",
    [[{}, stats.prefixQueries]],
  );
  out.counter(
    `${prefix}_hits_total`,
    "Prefix cache hits, in terms of number of cached tokens.",
    [[{}, stats.prefixHits]],
  );
  out.counter(
    "vllm:num_preemptions_total",
    "Cumulative number of preemption from the engine.",
    [[{}, stats.preemptions]],
  );
  out.counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.", [
    [{}, stats.promptTokens],
  ]);
  out.counter("vllm:generation_tokens_total", "Number of generation tokens processed.", [
    [{}, stats.generationTokens],
  ]);
  out.counter(
    "vllm:request_success_total",
    "Count of successfully processed requests.",
    (["stop", "length", "abort"] as const).map((reason) => [
      { finished_reason: reason },
      stats.finished[reason],
    ]),
  );
  out.histogram(
    "vllm:time_to_first_token_seconds",
    "Histogram of time to first token in seconds.",
    stats.ttft,
  );
  out.histogram(
    legacy ? "vllm:time_per_output_token_seconds" : "vllm:inter_token_latency_seconds",
    legacy
      ? "Histogram of time per output token in seconds."
      : "Histogram of inter-token latency in seconds.",
    stats.itl,
  );
  out.histogram(
    "vllm:e2e_request_latency_seconds",
    "Histogram of e2e request latency in seconds.",
    stats.e2e,
  );
  out.histogram(
    "vllm:request_queue_time_seconds",
    "Histogram of time spent in WAITING phase for request.",
    stats.queueTime,
  );
  out.gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", 1, {
    block_size: String(options.blockSize),
    cache_dtype: "auto",
    enable_prefix_caching: engine.prefixCaching ? "True" : "False",
    gpu_memory_utilization: "0.9",
    num_gpu_blocks: String(options.numGpuBlocks),
    prefix_caching_hash_algo: "sha256",
  });
  return out.text() + renderHttp(stats.httpRequests, stats.created);
}

/** `http_requests_total{handler,method,status}` as prometheus-fastapi-instrumentator writes it. */
function renderHttp(counts: ReadonlyMap<string, number>, created: number): string {
  if (counts.size === 0) return "";
  const out = new Exposition({}, created, formatPython);
  const samples = [...counts].map(([key, value]): readonly [Labels, number] => {
    const [method = "", handler = "", status = ""] = key.split(" ");
    return [{ handler, method, status }, value];
  });
  out.counter(
    "http_requests_total",
    "Total number of requests by method, status and handler.",
    samples,
  );
  return out.text();
}

function renderSglang(engine: Engine, options: ResolvedSimOptions): string {
  const state = engine.state();
  const stats = engine.stats;
  const out = new Exposition({ model_name: options.models[0] ?? "" }, stats.created, formatPython);
  out.gauge("sglang:num_running_reqs", "The number of running requests.", state.running);
  out.gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", state.waiting);
  out.gauge("sglang:num_used_tokens", "The number of used tokens.", engine.usedTokens);
  out.gauge("sglang:token_usage", "The token usage.", state.kvUsage);
  out.gauge(
    "sglang:cache_hit_rate",
    "The prefix cache hit rate.",
    stats.prefixQueries > 0 ? stats.prefixHits / stats.prefixQueries : 0,
  );
  out.gauge("sglang:gen_throughput", "The generation throughput (token/s).", stats.lastThroughput);
  out.counter("sglang:prompt_tokens_total", "Number of prefill tokens processed.", [
    [{}, stats.promptTokens],
  ]);
  out.counter("sglang:generation_tokens_total", "Number of generation tokens processed.", [
    [{}, stats.generationTokens],
  ]);
  out.histogram(
    "sglang:time_to_first_token_seconds",
    "Histogram of time to first token in seconds.",
    stats.ttft,
  );
  out.histogram(
    "sglang:inter_token_latency_seconds",
    "Histogram of inter-token latency in seconds.",
    stats.itl,
  );
  out.histogram(
    "sglang:e2e_request_latency_seconds",
    "Histogram of End-to-end request latency in seconds",
    stats.e2e,
  );
  return out.text();
}

function renderLlamacpp(engine: Engine): string {
  const state = engine.state();
  const stats = engine.stats;
  const out = new Exposition({}, undefined, String);
  out.counter("llamacpp:prompt_tokens_total", "Number of prompt tokens processed.", [
    [{}, stats.promptTokens],
  ]);
  out.counter("llamacpp:prompt_seconds_total", "Prompt process time", [
    [{}, stats.prefillSeconds],
  ]);
  out.counter("llamacpp:tokens_predicted_total", "Number of generation tokens processed.", [
    [{}, stats.generationTokens],
  ]);
  out.counter("llamacpp:tokens_predicted_seconds_total", "Predict process time", [
    [{}, stats.decodeSeconds],
  ]);
  out.counter("llamacpp:n_decode_total", "Total number of llama_decode() calls", [
    [{}, stats.steps],
  ]);
  out.gauge(
    "llamacpp:n_busy_slots_per_decode",
    "Average number of busy slots per llama_decode() call",
    stats.steps > 0 ? stats.scheduledRequests / stats.steps : 0,
  );
  out.gauge(
    "llamacpp:prompt_tokens_seconds",
    "Average prompt throughput in tokens/s.",
    stats.prefillSeconds > 0 ? stats.promptTokens / stats.prefillSeconds : 0,
  );
  out.gauge(
    "llamacpp:predicted_tokens_seconds",
    "Average generation throughput in tokens/s.",
    stats.decodeSeconds > 0 ? stats.generationTokens / stats.decodeSeconds : 0,
  );
  out.gauge("llamacpp:requests_processing", "Number of requests processing.", state.running);
  out.gauge("llamacpp:requests_deferred", "Number of requests deferred.", state.waiting);
  return out.text();
}

/** Formats a sample value like Python's prometheus_client: `8.0`, `0.4375`, `+Inf`. */
function formatPython(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (Number.isNaN(value)) return "NaN";
  return Number.isInteger(value) && Math.abs(value) < 1e16 ? `${value}.0` : String(value);
}

function formatBound(bound: number): string {
  return Number.isInteger(bound) ? `${bound}.0` : String(bound);
}

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}
