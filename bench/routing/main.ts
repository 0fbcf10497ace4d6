/**
 * Routing quality benchmark: every strategy, and an oracle baseline, on a heterogeneous simulated
 * fleet under Poisson arrivals up to 90% of capacity, on/off bursts, and shared-prefix traffic.
 * Requests go through the real gateway over HTTP; TTFT is measured at the client.
 *
 * Run: `deno task bench:routing [--quick] [--suite load|prefix|all]`: `load` is this file's suite,
 * `prefix` the prefix-cache comparison with the vLLM router (`bench/prefix/main.ts`), `all` (the
 * default) both. `--prefix-only chat,control` (or `"chat, homogeneous,control"`: a comma
 * followed by a space is part of a name) and `--prefix-contenders "cache_aware"` run part of
 * the prefix suite (into `routing-prefix-partial.md`); `--prefix-seconds` and `--prefix-warmup` set
 * its lengths; `--prefix-variants 'cache_aware{"load_tokens":64},cache_aware{"load_tokens":64}x2'`
 * adds LLMStream contenders with other `strategy_options` (for tuning). Other flags: `--interval S` (`metrics_update_interval`,
 * 0.1), `--seconds S` (measured, 15; quick 6), `--warmup S` (5; quick 4), `--drain S` (8; quick 3),
 * `--parallel N` (runs at once, 3), `--seed N`, `--out FILE`, `--strategies a,b` (default all; a
 * variant with options is `name{"power":3}`), `--rtm-options JSON` (extra real_time_metrics
 * options).
 *
 * Writes `bench/results/routing.md` (`routing-quick.md` with `--quick`), prints it, and ends with
 * the line `real_time_metrics/round_robin p99 TTFT ratio: X` (X at the highest Poisson rate).
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Contender } from "../prefix/contenders.ts";
import { runPrefixSuite } from "../prefix/main.ts";
import { probeCapacity } from "./fleet.ts";
import { runStrategies } from "./pool.ts";
import { ratioLine, renderReport } from "./report.ts";
import { ORACLE } from "./run.ts";
import type { RunSummary } from "./stats.ts";
import { burstyTrace, poissonTrace, prefixTrace, type Trace } from "./traces.ts";

/** Strategies compared, in table order; the oracle comes last. */
export const STRATEGIES: readonly string[] = [
  "round_robin",
  "random",
  "least_connection",
  "weighted_round_robin",
  "power_of_two",
  "real_time_metrics",
  ORACLE,
];

/** Benchmark settings from the command line. */
export interface BenchSettings {
  /** The short run. */
  quick: boolean;
  /** `metrics_update_interval` in seconds. */
  interval: number;
  /** Measured trace length in seconds. */
  seconds: number;
  /** Warm-up seconds before the measured part. */
  warmup: number;
  /** Seconds after the last send at which open requests are cut. */
  drainSeconds: number;
  /** Runs at once. */
  parallel: number;
  /** Seed of traces and strategies. */
  seed: number;
  /** Report file. */
  out: string;
  /** Strategies to run (default all of {@link STRATEGIES}). */
  strategies: string[];
  /** Extra `strategy_options` of `real_time_metrics` (for tuning). */
  rtmOptions: Record<string, unknown>;
  /** Which suites run. */
  suite: "load" | "prefix" | "all";
  /** Measured seconds per run of the prefix suite. */
  prefixSeconds: number;
  /** Warm-up seconds per run of the prefix suite. */
  prefixWarmup: number;
  /** Prefix scenarios to run (substrings of their names; all when empty). */
  prefixOnly: string[];
  /** Prefix contenders to run (substrings of their labels; all when empty). */
  prefixContenders: string[];
  /** Extra prefix contenders: LLMStream strategies with options, `name{json}` or `name{json}x2`. */
  prefixVariants: Contender[];
}

/**
 * Reads the command line.
 *
 * @param args Arguments, e.g. `Deno.args`.
 * @returns The settings.
 */
export function readSettings(args: string[]): BenchSettings {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      interval: { type: "string", default: "0.1" },
      seconds: { type: "string" },
      drain: { type: "string" },
      warmup: { type: "string" },
      parallel: { type: "string", default: "3" },
      seed: { type: "string", default: "1" },
      out: { type: "string" },
      strategies: { type: "string", default: STRATEGIES.join(",") },
      "rtm-options": { type: "string", default: "{}" },
      suite: { type: "string", default: "all" },
      "prefix-seconds": { type: "string" },
      "prefix-warmup": { type: "string" },
      "prefix-only": { type: "string", default: "" },
      "prefix-contenders": { type: "string", default: "" },
      "prefix-variants": { type: "string", default: "" },
    },
  });
  const quick = values.quick;
  if (!["load", "prefix", "all"].includes(values.suite)) {
    throw new Error(`--suite "${values.suite}" is not one of load, prefix, all`);
  }
  const number = (name: string, text: string): number => {
    const value = Number(text);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} "${text}" is not > 0`);
    return value;
  };
  const folder = new URL("../results/", import.meta.url);
  return {
    quick,
    interval: number("interval", values.interval),
    seconds: number("seconds", values.seconds ?? (quick ? "6" : "15")),
    warmup: number("warmup", values.warmup ?? (quick ? "4" : "5")),
    drainSeconds: number("drain", values.drain ?? (quick ? "3" : "8")),
    parallel: Math.floor(number("parallel", values.parallel)),
    seed: Math.floor(number("seed", values.seed)),
    out: values.out ??
      decodeURIComponent(new URL(quick ? "routing-quick.md" : "routing.md", folder).pathname),
    // Commas inside a variant's options (`name{"a":1,"b":2}`) do not split.
    strategies: values.strategies.split(/,(?![^{]*})/).map((name) => name.trim()).filter(Boolean),
    rtmOptions: readObject(values["rtm-options"]),
    suite: values.suite as BenchSettings["suite"],
    prefixSeconds: number("prefix-seconds", values["prefix-seconds"] ?? (quick ? "10" : "40")),
    prefixWarmup: number("prefix-warmup", values["prefix-warmup"] ?? (quick ? "6" : "10")),
    // Scenario names hold ", " ("chat, homogeneous"): only a comma with no space after separates.
    prefixOnly: values["prefix-only"].split(/,(?! )/).filter(Boolean),
    prefixContenders: values["prefix-contenders"].split(",").filter(Boolean),
    prefixVariants: values["prefix-variants"].split(/,(?![^{]*})/).map((text) => text.trim())
      .filter(Boolean).map(readVariant),
  };
}

/**
 * The traces of a run: Poisson at 90% of capacity when quick; else Poisson at 50%, 70%, 80% and
 * 90%, on/off bursts, and shared prefixes at 80%.
 *
 * @param settings The settings.
 * @param capacity Fleet capacity, requests per second.
 * @returns The traces.
 */
export function buildTraces(settings: BenchSettings, capacity: number): Trace[] {
  const options = {
    capacity,
    seconds: settings.seconds,
    warmup: settings.warmup,
    seed: settings.seed,
  };
  const loads = settings.quick ? [0.9] : [0.5, 0.7, 0.8, 0.9];
  const traces = loads.map((load) => poissonTrace(load, options));
  if (!settings.quick) {
    traces.push(burstyTrace(options), prefixTrace(0.8, { ...options, prefixes: 4 }));
  }
  return traces;
}

function readObject(text: string): Record<string, unknown> {
  const value: unknown = JSON.parse(text);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`--rtm-options "${text}" is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** A prefix-suite variant: `cache_aware{"load_tokens":16}`, with `x2` after it for two replicas. */
function readVariant(text: string): Contender {
  const match = /^([a-z_]+)(\{.*\})?(?:\s*x(\d+))?$/.exec(text);
  if (match === null) {
    throw new Error(`--prefix-variants: "${text}" is not name{json} or name{json}x2`);
  }
  return {
    kind: "llmstream",
    strategy: match[1]!,
    replicas: match[3] === undefined ? 1 : Number(match[3]),
    ...(match[2] === undefined ? {} : { options: readObject(match[2]) }),
  };
}

async function main(): Promise<void> {
  const began = performance.now();
  const settings = readSettings(Deno.args);
  if (settings.suite !== "load") {
    const folder = new URL("../results/", import.meta.url);
    const partial = settings.prefixOnly.length + settings.prefixContenders.length > 0;
    const name = `routing-prefix${settings.quick ? "-quick" : ""}${partial ? "-partial" : ""}.md`;
    const out = decodeURIComponent(new URL(name, folder).pathname);
    console.log(
      await runPrefixSuite({
        quick: settings.quick,
        seed: settings.seed,
        interval: 0.5,
        seconds: settings.prefixSeconds,
        warmup: settings.prefixWarmup,
        out,
        only: settings.prefixOnly,
        contenders: settings.prefixContenders,
        variants: settings.prefixVariants,
      }),
    );
    console.log(`Written to ${out}`);
    if (settings.suite === "prefix") return;
  }
  const probe = await probeCapacity(settings.quick ? 2.5 : 8);
  console.error(`Capacity: ${probe.total.toFixed(1)} req/s`);
  const results: { trace: Trace; rows: RunSummary[] }[] = [];
  for (const trace of buildTraces(settings, probe.total)) {
    console.error(`Running ${trace.name} (${trace.requests.length} requests)...`);
    const rows = await runStrategies(trace, settings.strategies, settings);
    results.push({ trace, rows });
  }
  const report = renderReport({
    command: ["deno task bench:routing", ...Deno.args].join(" "),
    interval: settings.interval,
    seconds: settings.seconds,
    warmup: settings.warmup,
    drain: settings.drainSeconds,
    parallel: settings.parallel,
    seed: settings.seed,
    probe,
    results,
    wallSeconds: (performance.now() - began) / 1000,
  });
  await Deno.mkdir(new URL("../results/", import.meta.url), { recursive: true });
  await Deno.writeTextFile(settings.out, report);
  console.log(report);
  console.log(`Written to ${settings.out}`);
  console.log(ratioLine(results));
}

if (import.meta.main) await main();
