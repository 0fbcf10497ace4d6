/**
 * Options of the simulated vLLM server, their defaults and their validation.
 *
 * @module
 */

/** Metric name sets the simulator can expose on `/metrics`. */
export type MetricsFlavor = "vllm" | "vllm_legacy" | "sglang" | "llamacpp";

/** All metric flavors, in the order the CLI lists them. */
export const METRICS_FLAVORS: readonly MetricsFlavor[] = [
  "vllm",
  "vllm_legacy",
  "sglang",
  "llamacpp",
];

/** How a simulated server listens, queues, times its steps and fails. */
export interface SimOptions {
  /** Interface to listen on (default `127.0.0.1`). */
  hostname?: string;
  /** Port to listen on; 0 picks a free port (default 0). */
  port?: number;
  /** Served model names; the first names the metrics (default `["sim-model"]`). */
  models?: string[];
  /** Serve any model name instead of answering 404 for unknown ones (default true). */
  acceptAnyModel?: boolean;
  /** Base prefill latency in milliseconds, paid by every engine step that prefills (default 20). */
  ttftMs?: number;
  /** Decode step time in milliseconds for a batch of one (default 10). */
  itlMs?: number;
  /** Extra step time per prefilled (uncached) prompt token, in milliseconds (default 0.02). */
  prefillMsPerToken?: number;
  /** Relative growth of the decode step time per extra running request (default 0.01). */
  batchFactor?: number;
  /** Speed multiplier: 2 runs every step twice as fast (default 1). */
  speed?: number;
  /** Running slots (vLLM `--max-num-seqs`, default 256). */
  maxNumSeqs?: number;
  /** Token budget of one engine step (vLLM `--max-num-batched-tokens`, default 8192). */
  maxNumBatchedTokens?: number;
  /** Tokens per KV-cache block; read at start only (default 16). */
  blockSize?: number;
  /** KV-cache capacity in blocks (default 8192). */
  numGpuBlocks?: number;
  /** Reuse cached prompt blocks across requests; read at start only (default true). */
  enablePrefixCaching?: boolean;
  /**
   * Report each answer's prompt tokens found in the prefix cache as `usage.prompt_tokens_details
   * .cached_tokens` (vLLM `--enable-prompt-tokens-details`, default false: the field is null).
   */
  enablePromptTokensDetails?: boolean;
  /** Output tokens when a request sets no `max_tokens` (default 16). */
  defaultMaxTokens?: number;
  /** Fixed output length that ends with `"stop"` when below the request's `max_tokens`. */
  outputTokens?: number;
  /** Metric names on `/metrics` (default `"vllm"`). */
  metricsFlavor?: MetricsFlavor;
  /** Share of inference requests answered with an error, 0..1 (default 0). */
  errorRate?: number;
  /** Status of injected errors: 500, 503 or 429 (default 500). */
  errorStatus?: number;
  /** Accept inference requests and never answer them (default false). */
  hang?: boolean;
  /** Close a streaming connection abruptly after this many token chunks. */
  dropAfterTokens?: number;
  /** Never answer `/metrics` (default false). */
  metricsHang?: boolean;
  /** Status of `/metrics` answers; anything but 200 gets an error body (default 200). */
  metricsStatus?: number;
  /** Status of `/health` answers (default 200). */
  healthStatus?: number;
  /** Seed of the error-injection random numbers (default 1). */
  seed?: number;
}

/** Options with every default filled in. */
export type ResolvedSimOptions =
  & Required<Omit<SimOptions, "outputTokens" | "dropAfterTokens">>
  & Pick<SimOptions, "outputTokens" | "dropAfterTokens">;

/** The defaults of every option that has one. */
export const SIM_DEFAULTS: Readonly<
  Required<Omit<SimOptions, "outputTokens" | "dropAfterTokens">>
> = {
  hostname: "127.0.0.1",
  port: 0,
  models: ["sim-model"],
  acceptAnyModel: true,
  ttftMs: 20,
  itlMs: 10,
  prefillMsPerToken: 0.02,
  batchFactor: 0.01,
  speed: 1,
  maxNumSeqs: 256,
  maxNumBatchedTokens: 8192,
  blockSize: 16,
  numGpuBlocks: 8192,
  enablePrefixCaching: true,
  enablePromptTokensDetails: false,
  defaultMaxTokens: 16,
  metricsFlavor: "vllm",
  errorRate: 0,
  errorStatus: 500,
  hang: false,
  metricsHang: false,
  metricsStatus: 200,
  healthStatus: 200,
  seed: 1,
};

const POSITIVE = [
  "speed",
  "maxNumSeqs",
  "maxNumBatchedTokens",
  "blockSize",
  "numGpuBlocks",
  "defaultMaxTokens",
] as const;
const NON_NEGATIVE = [
  "port",
  "ttftMs",
  "itlMs",
  "prefillMsPerToken",
  "batchFactor",
  "dropAfterTokens",
] as const;
const INTEGERS = [
  "port",
  "maxNumSeqs",
  "maxNumBatchedTokens",
  "blockSize",
  "numGpuBlocks",
  "defaultMaxTokens",
  "outputTokens",
  "dropAfterTokens",
] as const;

/**
 * Checks options and fills in defaults.
 *
 * @param options Options as given.
 * @param base Options to fill gaps from (the defaults unless given).
 * @returns Complete options.
 * @throws {RangeError} When a value is out of range.
 */
export function resolveSimOptions(
  options: Partial<SimOptions>,
  base: ResolvedSimOptions = SIM_DEFAULTS,
): ResolvedSimOptions {
  const merged: ResolvedSimOptions = { ...base };
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) (merged as unknown as Record<string, unknown>)[key] = value;
  }
  for (const key of POSITIVE) checkNumber(key, merged[key], (n) => n > 0, "be positive");
  for (const key of NON_NEGATIVE) {
    const value = merged[key];
    if (value !== undefined) checkNumber(key, value, (n) => n >= 0, "be zero or more");
  }
  for (const key of INTEGERS) {
    const value = merged[key];
    if (value !== undefined) checkNumber(key, value, Number.isInteger, "be an integer");
  }
  if (merged.outputTokens !== undefined) {
    checkNumber("outputTokens", merged.outputTokens, (n) => n > 0, "be positive");
  }
  checkNumber("errorRate", merged.errorRate, (n) => n >= 0 && n <= 1, "lie between 0 and 1");
  checkNumber("errorStatus", merged.errorStatus, (n) => n >= 400 && n <= 599, "be 400..599");
  if (merged.models.length === 0) throw new RangeError("Option models needs at least one name");
  if (!METRICS_FLAVORS.includes(merged.metricsFlavor)) {
    throw new RangeError(
      `Option metricsFlavor must be one of ${
        METRICS_FLAVORS.join(", ")
      }, not "${merged.metricsFlavor}"`,
    );
  }
  return merged;
}

function checkNumber(key: string, value: number, ok: (n: number) => boolean, rule: string): void {
  if (typeof value !== "number" || !Number.isFinite(value) || !ok(value)) {
    throw new RangeError(`Option ${key} must ${rule}, not "${value}"`);
  }
}
