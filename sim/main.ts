/**
 * Command line for the simulated vLLM server.
 *
 * @example
 * ```sh
 * deno task sim --port 8001 --model llama --ttft-ms 30 --itl-ms 12 --max-num-seqs 64
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { METRICS_FLAVORS, SIM_DEFAULTS, type SimOptions } from "./options.ts";
import { startSimServer } from "./server.ts";

type Kind = "number" | "string" | "boolean" | "flag";

interface Flag {
  name: string;
  key: keyof SimOptions;
  kind: Kind;
  help: string;
}

const FLAGS: readonly Flag[] = [
  { name: "hostname", key: "hostname", kind: "string", help: "Interface to listen on" },
  { name: "port", key: "port", kind: "number", help: "Port to listen on; 0 picks a free one" },
  { name: "model", key: "models", kind: "string", help: "Served model name (repeatable)" },
  {
    name: "accept-any-model",
    key: "acceptAnyModel",
    kind: "boolean",
    help: "Serve any model name (true|false)",
  },
  { name: "ttft-ms", key: "ttftMs", kind: "number", help: "Base prefill time of a step, ms" },
  { name: "itl-ms", key: "itlMs", kind: "number", help: "Decode step time for one request, ms" },
  {
    name: "prefill-ms-per-token",
    key: "prefillMsPerToken",
    kind: "number",
    help: "Prefill time per uncached prompt token, ms",
  },
  {
    name: "batch-factor",
    key: "batchFactor",
    kind: "number",
    help: "Decode step growth per extra running request",
  },
  { name: "speed", key: "speed", kind: "number", help: "Speed multiplier of every step" },
  { name: "max-num-seqs", key: "maxNumSeqs", kind: "number", help: "Running slots" },
  {
    name: "max-num-batched-tokens",
    key: "maxNumBatchedTokens",
    kind: "number",
    help: "Token budget per step",
  },
  { name: "block-size", key: "blockSize", kind: "number", help: "Tokens per KV block" },
  {
    name: "num-gpu-blocks",
    key: "numGpuBlocks",
    kind: "number",
    help: "KV cache capacity, blocks",
  },
  {
    name: "enable-prefix-caching",
    key: "enablePrefixCaching",
    kind: "boolean",
    help: "Reuse cached prompt blocks (true|false)",
  },
  {
    name: "enable-prompt-tokens-details",
    key: "enablePromptTokensDetails",
    kind: "flag",
    help: "Report cached prompt tokens in usage",
  },
  {
    name: "default-max-tokens",
    key: "defaultMaxTokens",
    kind: "number",
    help: "Output tokens when a request sets none",
  },
  {
    name: "output-tokens",
    key: "outputTokens",
    kind: "number",
    help: "Fixed output length, ends with stop",
  },
  {
    name: "metrics-flavor",
    key: "metricsFlavor",
    kind: "string",
    help: `Metric names: ${METRICS_FLAVORS.join("|")}`,
  },
  { name: "error-rate", key: "errorRate", kind: "number", help: "Share of requests failing, 0..1" },
  { name: "error-status", key: "errorStatus", kind: "number", help: "Status of injected errors" },
  { name: "hang", key: "hang", kind: "flag", help: "Accept inference requests, never answer" },
  {
    name: "drop-after-tokens",
    key: "dropAfterTokens",
    kind: "number",
    help: "Drop streams after N token chunks",
  },
  { name: "metrics-hang", key: "metricsHang", kind: "flag", help: "Never answer /metrics" },
  { name: "metrics-status", key: "metricsStatus", kind: "number", help: "Status of /metrics" },
  { name: "health-status", key: "healthStatus", kind: "number", help: "Status of /health" },
  { name: "seed", key: "seed", kind: "number", help: "Seed of injected errors" },
];

/**
 * Turns command-line arguments into simulator options.
 *
 * @param args Arguments without the program name.
 * @returns The options, or `"help"` when `--help` was given.
 * @throws {TypeError} When a flag is unknown or a value is not a number or boolean.
 */
export function parseSimArgs(args: readonly string[]): SimOptions | "help" {
  const config: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    help: { type: "boolean" },
  };
  for (const flag of FLAGS) {
    config[flag.name] = flag.kind === "flag"
      ? { type: "boolean" }
      : { type: "string", ...(flag.key === "models" ? { multiple: true } : {}) };
  }
  const { values } = parseArgs({ args: [...args], options: config, strict: true });
  if (values.help === true) return "help";
  const options: Record<string, unknown> = {};
  for (const flag of FLAGS) {
    const value = values[flag.name];
    if (value === undefined) continue;
    if (flag.kind === "flag" || Array.isArray(value)) options[flag.key] = value;
    else if (flag.kind === "number") options[flag.key] = toNumber(flag.name, String(value));
    else if (flag.kind === "boolean") options[flag.key] = toBoolean(flag.name, String(value));
    else options[flag.key] = value;
  }
  return options as SimOptions;
}

/**
 * The `--help` text, with every option and its default.
 *
 * @returns The usage text.
 */
export function simUsage(): string {
  const defaults = SIM_DEFAULTS as Readonly<Record<string, unknown>>;
  const lines = FLAGS.map((flag) => {
    const value = flag.kind === "flag" ? "" : flag.kind === "number" ? " N" : " VALUE";
    const fallback = defaults[flag.key];
    const shown = fallback === undefined
      ? "none"
      : Array.isArray(fallback)
      ? fallback.join(",")
      : String(fallback);
    return `  --${(flag.name + value).padEnd(30)} ${flag.help} (default: ${shown})`;
  });
  return [
    "Simulated vLLM server (OpenAI API, vLLM-like batching, /metrics).",
    "",
    "Usage: deno task sim [options]",
    "",
    ...lines,
    `  --${"help".padEnd(30)} Show this text`,
  ].join("\n");
}

function toNumber(name: string, value: string): number {
  const number = Number(value);
  if (value.trim() === "" || !Number.isFinite(number)) {
    throw new TypeError(`Flag --${name} needs a number, not "${value}"`);
  }
  return number;
}

function toBoolean(name: string, value: string): boolean {
  if (["true", "1", "yes"].includes(value)) return true;
  if (["false", "0", "no"].includes(value)) return false;
  throw new TypeError(`Flag --${name} needs true or false, not "${value}"`);
}

async function main(): Promise<void> {
  let options: SimOptions | "help";
  try {
    options = parseSimArgs(Deno.args);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${simUsage()}`);
    Deno.exit(2);
  }
  if (options === "help") {
    console.log(simUsage());
    return;
  }
  const sim = await startSimServer(options).catch((error: Error) => {
    console.error(error.message);
    Deno.exit(2);
  });
  const models = (options.models ?? SIM_DEFAULTS.models).join(", ");
  const flavor = options.metricsFlavor ?? SIM_DEFAULTS.metricsFlavor;
  console.log(
    `Simulated vLLM server listening on ${sim.url} (models: ${models}; metrics: ${flavor})`,
  );
}

if (import.meta.main) await main();
