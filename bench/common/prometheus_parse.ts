/**
 * Micro benchmark of the `/metrics` parser on a large vLLM V1 exposition (8 data-parallel engines,
 * every histogram, ~2,000 lines). Writes nothing.
 *
 * Run: `deno bench bench/common/prometheus_parse.ts`
 *
 * @module
 */

import { parsePrometheusText } from "../../scrape/prometheus_text.ts";
import { ENGINE_METRIC_NAMES, toReadings } from "../../scrape/engines.ts";

const BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40];
const HISTOGRAMS = [
  "time_to_first_token_seconds",
  "inter_token_latency_seconds",
  "e2e_request_latency_seconds",
  "request_queue_time_seconds",
  "request_prefill_time_seconds",
  "request_decode_time_seconds",
  "request_prompt_tokens",
  "request_generation_tokens",
];

/**
 * Builds an exposition shaped as vLLM V1 prints it.
 *
 * @param engines Data-parallel ranks.
 * @returns The text.
 */
function exposition(engines: number): string {
  const lines: string[] = [];
  const labels = (e: number, extra = "") =>
    `{engine="${e}",${extra}model_name="meta-llama/Llama-3.1-8B-Instruct"}`;
  const gauge = (name: string, value: (e: number) => number) => {
    lines.push(`# HELP vllm:${name} ${name}.`, `# TYPE vllm:${name} gauge`);
    for (let e = 0; e < engines; e++) lines.push(`vllm:${name}${labels(e)} ${value(e).toFixed(1)}`);
  };
  gauge("num_requests_running", (e) => 8 + e);
  gauge("num_requests_waiting", (e) => e % 3);
  gauge("kv_cache_usage_perc", (e) => 0.1 * e);
  for (const name of ["prefix_cache_queries", "prefix_cache_hits", "prompt_tokens"]) {
    lines.push(`# TYPE vllm:${name}_total counter`);
    for (let e = 0; e < engines; e++) lines.push(`vllm:${name}_total${labels(e)} ${1e6 + e}.0`);
    lines.push(`# TYPE vllm:${name}_created gauge`);
    for (let e = 0; e < engines; e++) {
      lines.push(`vllm:${name}_created${labels(e)} 1.7327123456789e+09`);
    }
  }
  for (const name of HISTOGRAMS) {
    lines.push(`# HELP vllm:${name} Histogram of ${name}.`, `# TYPE vllm:${name} histogram`);
    for (let e = 0; e < engines; e++) {
      for (const le of BUCKETS) lines.push(`vllm:${name}_bucket${labels(e, `le="${le}",`)} ${le}`);
      lines.push(`vllm:${name}_bucket${labels(e, 'le="+Inf",')} 140.0`);
      lines.push(`vllm:${name}_count${labels(e)} 140.0`, `vllm:${name}_sum${labels(e)} 9.81`);
    }
    lines.push(`# TYPE vllm:${name}_created gauge`);
    for (let e = 0; e < engines; e++) {
      lines.push(`vllm:${name}_created${labels(e)} 1.7327123456789e+09`);
    }
  }
  return lines.join("\n") + "\n";
}

const TEXT = exposition(8);

Deno.bench("parse everything", { group: "parse", baseline: true }, () => {
  parsePrometheusText(TEXT);
});

Deno.bench("parse engine names only", { group: "parse" }, () => {
  parsePrometheusText(TEXT, { names: ENGINE_METRIC_NAMES });
});

Deno.bench("parse engine names + readings", { group: "parse" }, () => {
  toReadings(parsePrometheusText(TEXT, { names: ENGINE_METRIC_NAMES }).samples);
});
