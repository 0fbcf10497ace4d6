/**
 * Engine metric names as data, and their reduction to one normalised reading per model.
 *
 * {@link ENGINE_METRICS} maps each known series name (vLLM V1 and older names, SGLang, llama.cpp)
 * to a field of {@link Reading}. {@link toReadings} groups samples by the `model_name` label, so
 * models sharing one server stay apart; series without `model_name` (llama.cpp) land under
 * {@link ANY_MODEL}, which {@link readingFor} uses for any model the server has no own entry for.
 *
 * Data-parallel ranks (vLLM `engine`, SGLang `dp_rank`) are combined per {@link FIELD_COMBINE}:
 * request counts and counters are summed; KV usage is averaged. Ranks of one server have the same
 * KV capacity, so the mean equals blocks used over blocks total for the whole server, which is
 * what a router placing one more request needs (the server's own balancer picks the rank); the
 * max would call a server full while most of its ranks are idle. Series of one rank that differ
 * only in other labels (SGLang repeats the scheduler's state per `tp_rank`/`pp_rank`) are
 * replicas: the largest is kept, never the sum.
 *
 * SGLang's `sglang:cache_hit_rate` is not mapped: it is the hit rate of the last prefill batch
 * only and is reset to 0 by every decode log, so it mostly reads 0 under load.
 *
 * @module
 */

import type { Sample } from "./prometheus_text.ts";
import type { ServerMetrics } from "../strategies/types.ts";

/** A normalised field an engine metric feeds. */
export type Field =
  | "running"
  | "waiting"
  | "kvUsage"
  | "prefixQueries"
  | "prefixHits"
  | "prefixHitRate"
  | "cacheTokens";

/** How one engine series maps to a field. */
export interface EngineMetric {
  /** The engine that prints it. */
  readonly engine: "vllm" | "sglang" | "llamacpp";
  /** The field it feeds. */
  readonly field: Field;
  /** Label naming the data-parallel rank; series of different ranks are combined. */
  readonly rankLabel?: string;
  /** When two names feed one field of one model, the lower preference wins (legacy names: 1). */
  readonly preference: number;
  /** Reads the value from the sample's labels instead (info gauges, whose value is 1). */
  readonly fromLabels?: (labels: Readonly<Record<string, string>>) => number;
}

/** KV-cache capacity in tokens from `vllm:cache_config_info`'s labels: blocks times block size. */
function cacheTokensOf(labels: Readonly<Record<string, string>>): number {
  return Number(labels["num_gpu_blocks"]) * Number(labels["block_size"]);
}

/** How a field combines across data-parallel ranks: summed, or averaged. */
export const FIELD_COMBINE: Readonly<Record<Field, "sum" | "mean">> = {
  running: "sum",
  waiting: "sum",
  kvUsage: "mean",
  prefixQueries: "sum",
  prefixHits: "sum",
  prefixHitRate: "mean",
  cacheTokens: "sum",
};

/** The table of known engine series. */
// deno-fmt-ignore
export const ENGINE_METRICS: ReadonlyMap<string, EngineMetric> = new Map<string, EngineMetric>([
  // vLLM V1 (current names).
  ["vllm:num_requests_running", { engine: "vllm", field: "running", rankLabel: "engine", preference: 0 }],
  ["vllm:num_requests_waiting", { engine: "vllm", field: "waiting", rankLabel: "engine", preference: 0 }],
  ["vllm:kv_cache_usage_perc", { engine: "vllm", field: "kvUsage", rankLabel: "engine", preference: 0 }],
  ["vllm:prefix_cache_queries_total", { engine: "vllm", field: "prefixQueries", rankLabel: "engine", preference: 0 }],
  ["vllm:prefix_cache_hits_total", { engine: "vllm", field: "prefixHits", rankLabel: "engine", preference: 0 }],
  ["vllm:cache_config_info", { engine: "vllm", field: "cacheTokens", rankLabel: "engine", preference: 0, fromLabels: cacheTokensOf }],
  // vLLM older names (before 0.9, and V0), used only when the current name is absent.
  ["vllm:gpu_cache_usage_perc", { engine: "vllm", field: "kvUsage", rankLabel: "engine", preference: 1 }],
  ["vllm:gpu_prefix_cache_queries_total", { engine: "vllm", field: "prefixQueries", rankLabel: "engine", preference: 1 }],
  ["vllm:gpu_prefix_cache_hits_total", { engine: "vllm", field: "prefixHits", rankLabel: "engine", preference: 1 }],
  ["vllm:gpu_prefix_cache_hit_rate", { engine: "vllm", field: "prefixHitRate", rankLabel: "engine", preference: 1 }],
  // SGLang (`--enable-metrics`); labels model_name, engine_type, tp_rank, pp_rank, dp_rank.
  ["sglang:num_running_reqs", { engine: "sglang", field: "running", rankLabel: "dp_rank", preference: 0 }],
  ["sglang:num_queue_reqs", { engine: "sglang", field: "waiting", rankLabel: "dp_rank", preference: 0 }],
  ["sglang:token_usage", { engine: "sglang", field: "kvUsage", rankLabel: "dp_rank", preference: 0 }],
  // llama.cpp (`--metrics`): no labels, no KV gauge.
  ["llamacpp:requests_processing", { engine: "llamacpp", field: "running", preference: 0 }],
  ["llamacpp:requests_deferred", { engine: "llamacpp", field: "waiting", preference: 0 }],
]);

/** Every name in {@link ENGINE_METRICS}: pass it as the parser's `names` filter. */
export const ENGINE_METRIC_NAMES: ReadonlySet<string> = new Set(ENGINE_METRICS.keys());

/** Key of the reading built from series without a `model_name` label; it applies to any model. */
export const ANY_MODEL = "*";

/** One model's load on one server, ranks combined; counters are raw (cumulative). */
export interface Reading {
  /** Requests in the running batch (0 when unreported). */
  readonly running: number;
  /** Requests queued (0 when unreported). */
  readonly waiting: number;
  /** KV-cache usage 0..1, mean over ranks. */
  readonly kvUsage?: number;
  /** Prefix-cache queries counter (tokens), summed over ranks. */
  readonly prefixQueries?: number;
  /** Prefix-cache hits counter (tokens), summed over ranks. */
  readonly prefixHits?: number;
  /** A hit-rate gauge the engine reports itself (vLLM V0), 0..1. */
  readonly prefixHitRate?: number;
  /** KV-cache capacity in tokens (vLLM's `cache_config_info`), summed over ranks. */
  readonly cacheTokens?: number;
  /** Data-parallel ranks seen (the most any field had). */
  readonly ranks: number;
}

/** Options of {@link toReadings}. */
export interface ToReadingsOptions {
  /** The table to use (default {@link ENGINE_METRICS}). */
  readonly table?: ReadonlyMap<string, EngineMetric>;
}

/** Per model and field: the winning preference and the value per rank. */
interface FieldAcc {
  preference: number;
  readonly ranks: Map<string, number>;
}

/**
 * Reduces parsed samples to one reading per model.
 *
 * @param samples Samples of one scrape of one server (unknown names are ignored, as are NaN and
 *   infinite values).
 * @param options `table` overrides {@link ENGINE_METRICS}.
 * @returns Model name (or {@link ANY_MODEL}) to its reading; models with no known series are absent.
 * @example
 * ```ts
 * const { samples } = parsePrometheusText(body, { names: ENGINE_METRIC_NAMES });
 * const reading = readingFor(toReadings(samples), "meta-llama/Llama-3.1-8B-Instruct");
 * ```
 */
export function toReadings(
  samples: readonly Sample[],
  options: ToReadingsOptions = {},
): Map<string, Reading> {
  const table = options.table ?? ENGINE_METRICS;
  const groups = new Map<string, Map<Field, FieldAcc>>();
  for (const sample of samples) {
    const entry = table.get(sample.name);
    if (entry === undefined) continue;
    const value = entry.fromLabels ? entry.fromLabels(sample.labels) : sample.value;
    if (!Number.isFinite(value)) continue;
    const model = sample.labels["model_name"] || ANY_MODEL;
    let fields = groups.get(model);
    if (fields === undefined) groups.set(model, fields = new Map());
    let acc = fields.get(entry.field);
    if (acc === undefined || entry.preference < acc.preference) {
      fields.set(entry.field, acc = { preference: entry.preference, ranks: new Map() });
    } else if (entry.preference > acc.preference) {
      continue;
    }
    const rank = entry.rankLabel === undefined ? "" : sample.labels[entry.rankLabel] ?? "";
    const seen = acc.ranks.get(rank);
    acc.ranks.set(rank, seen === undefined ? value : Math.max(seen, value));
  }
  // The KV cache is the server's, not a model's: a model's reading takes the server-wide one.
  const shared = groups.get(ANY_MODEL)?.get("cacheTokens");
  const readings = new Map<string, Reading>();
  for (const [model, fields] of groups) {
    if (shared !== undefined && !fields.has("cacheTokens")) fields.set("cacheTokens", shared);
    readings.set(model, combine(fields));
  }
  return readings;
}

function combine(fields: Map<Field, FieldAcc>): Reading {
  let ranks = 0;
  const values: Partial<Record<Field, number>> = {};
  for (const [field, acc] of fields) {
    let sum = 0;
    for (const v of acc.ranks.values()) sum += v;
    values[field] = FIELD_COMBINE[field] === "sum" ? sum : sum / acc.ranks.size;
    ranks = Math.max(ranks, acc.ranks.size);
  }
  const reading: { -readonly [K in keyof Reading]: Reading[K] } = {
    running: values.running ?? 0,
    waiting: values.waiting ?? 0,
    ranks,
  };
  if (values.kvUsage !== undefined) reading.kvUsage = values.kvUsage;
  if (values.prefixQueries !== undefined) reading.prefixQueries = values.prefixQueries;
  if (values.prefixHits !== undefined) reading.prefixHits = values.prefixHits;
  if (values.prefixHitRate !== undefined) reading.prefixHitRate = values.prefixHitRate;
  if (values.cacheTokens !== undefined) reading.cacheTokens = values.cacheTokens;
  return reading;
}

/**
 * Finds the reading for a model: its own entry, else the server-wide {@link ANY_MODEL} one.
 *
 * @param readings What {@link toReadings} returned for one server.
 * @param model The model name as the server reports it in `model_name`.
 * @returns The reading, or `undefined` when the server reports nothing for that model.
 */
export function readingFor(
  readings: ReadonlyMap<string, Reading>,
  model: string,
): Reading | undefined {
  return readings.get(model) ?? readings.get(ANY_MODEL);
}

/** Options of {@link toServerMetrics}. */
export interface ToServerMetricsOptions {
  /** The same model's reading from an earlier successful scrape of the same server. */
  readonly previous?: Reading | undefined;
}

/**
 * Builds the strategies' {@link ServerMetrics} from a reading and, for the prefix hit rate, the
 * previous one.
 *
 * The hit rate is (hits now - hits before) / (queries now - queries before), clamped to 0..1. A
 * counter that went down means the server restarted: the current totals are used as the deltas
 * (as Prometheus' `rate()` does). With no queries in between, or no previous reading, the rate
 * falls back to the engine's own hit-rate gauge, or stays undefined.
 *
 * @param current The reading of this scrape.
 * @param scrapedAt When this scrape finished, in milliseconds since the epoch.
 * @param options `previous`: the earlier reading.
 * @returns Normalised metrics.
 * @example
 * ```ts
 * const metrics = toServerMetrics(now, Date.now(), { previous: before });
 * metrics.prefixHitRate; // e.g. 0.75
 * ```
 */
export function toServerMetrics(
  current: Reading,
  scrapedAt: number,
  options: ToServerMetricsOptions = {},
): ServerMetrics {
  const rate = deltaHitRate(current, options.previous) ?? current.prefixHitRate;
  const metrics: { -readonly [K in keyof ServerMetrics]: ServerMetrics[K] } = {
    running: current.running,
    waiting: current.waiting,
    scrapedAt,
  };
  if (current.kvUsage !== undefined) metrics.kvUsage = clamp01(current.kvUsage);
  if (rate !== undefined) metrics.prefixHitRate = clamp01(rate);
  if (current.prefixQueries !== undefined) metrics.prefixQueries = current.prefixQueries;
  if (current.cacheTokens !== undefined && current.cacheTokens > 0) {
    metrics.cacheTokens = current.cacheTokens;
  }
  return metrics;
}

function deltaHitRate(current: Reading, previous: Reading | undefined): number | undefined {
  const { prefixQueries: q, prefixHits: h } = current;
  const q0 = previous?.prefixQueries;
  const h0 = previous?.prefixHits;
  if (q === undefined || h === undefined || q0 === undefined || h0 === undefined) return undefined;
  let dq = q - q0;
  let dh = h - h0;
  if (dq < 0 || dh < 0) {
    dq = q;
    dh = h;
  }
  return dq > 0 ? dh / dq : undefined;
}

function clamp01(value: number): number {
  return value < 0 ? 0 : value > 1 ? 1 : value;
}
