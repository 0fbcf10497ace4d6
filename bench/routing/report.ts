/**
 * The routing benchmark's markdown report: how it was made, the capacity, one table per trace,
 * and the targets at 80% load and above.
 *
 * @module
 */
import { cpus } from "node:os";
import { computedCapacity, type ProbeResult, SIM_OPTIONS, SPEEDS } from "./fleet.ts";
import { ORACLE } from "./run.ts";
import { markdownTable, type RunSummary } from "./stats.ts";
import { REQUEST_MIX, type Trace } from "./traces.ts";

/** Everything the report shows. */
export interface ReportInput {
  /** The command line that made it. */
  command: string;
  /** `metrics_update_interval` in seconds. */
  interval: number;
  /** Measured trace length in seconds. */
  seconds: number;
  /** Warm-up seconds before it. */
  warmup: number;
  /** Seconds after the last send at which open requests were cut. */
  drain: number;
  /** Runs at once. */
  parallel: number;
  /** Seed of traces and strategies. */
  seed: number;
  /** The probe's measurement. */
  probe: ProbeResult;
  /** Traces with their summaries. */
  results: { trace: Trace; rows: RunSummary[] }[];
  /** Wall-clock seconds the benchmark took. */
  wallSeconds: number;
}

/** The strategy the targets are about, and its reference. */
const SUBJECT = "real_time_metrics";
const BASELINE = "round_robin";

/**
 * Builds the report.
 *
 * @param input Parameters and results.
 * @returns Markdown.
 */
export function renderReport(input: ReportInput): string {
  const lines = [
    "# Routing quality benchmark",
    "",
    `Command: \`${input.command}\``,
    "",
    `Machine: ${navigator.hardwareConcurrency} cores${cpuModel()}, Deno ${Deno.version.deno}, ` +
    `${Deno.build.os}/${Deno.build.arch}; ${new Date().toISOString().slice(0, 16)}Z; ` +
    `took ${input.wallSeconds.toFixed(0)} s.`,
    "",
    "## Setup",
    "",
    `- Fleet: four simulated vLLM servers (\`sim/\`), speeds ${SPEEDS.join(", ")}; ` +
    `${simOptionsText()}.`,
    `- Requests: streaming \`/v1/chat/completions\`, ${REQUEST_MIX.promptTokens.join("..")} ` +
    `prompt tokens, ${REQUEST_MIX.outputTokens.join("..")} output tokens (uniform).`,
    `- Capacity: measured by a closed-loop saturation probe (each server directly, ` +
    `${2 * (SIM_OPTIONS.maxNumSeqs ?? 1)} streaming clients each): ` +
    `${input.probe.total.toFixed(1)} req/s ` +
    `(per server ${input.probe.perServer.map((value) => value.toFixed(1)).join(", ")}); ` +
    `the simulator's step-time model gives ${computedCapacity().toFixed(1)} req/s. ` +
    "Loads below are shares of the measured capacity.",
    `- Gateway: in-process \`startGateway\` + \`MetricsFeed\`, \`metrics_update_interval: ` +
    `${input.interval}\` s. Every server has weight 1 except under \`weighted_round_robin\` ` +
    `(weights = speeds). \`${ORACLE}\` is a benchmark strategy: join the shortest queue ` +
    "normalised by speed, `(running + waiting + pending + 1) / speed`, from the simulators' " +
    "exact state at pick time (`pending`: sent by the gateway, not yet received).",
    `- Each trace is ${input.warmup} s of warm-up (same traffic, not measured: queues reach ` +
    `steady state and real_time_metrics learns speeds) and ${input.seconds} s measured ` +
    `(seed ${input.seed}). Every strategy gets the same trace and a fresh fleet and gateway, ` +
    `in its own worker, ${input.parallel} at a time. TTFT is measured at the client (first ` +
    `content chunk). Requests still open ${input.drain} s after the last send are cut ` +
    "(aborted; column `cut`) and count with the time they had waited, a lower bound; " +
    "throughput is measured requests per second from the warm-up's end to the last answer.",
    "",
  ];
  for (const { trace, rows } of input.results) {
    const lagMax = Math.max(...rows.map((row) => row.lagMax));
    lines.push(
      `## ${trace.name}`,
      "",
      `${trace.description}; ${trace.requests.length} requests, ` +
        `${trace.requests.filter((request) => request.at >= trace.warmupMs).length} measured. ` +
        "Largest event-loop lag of a run: " +
        `${lagMax.toFixed(0)} ms.`,
      "",
      markdownTable(rows, { baseline: BASELINE, oracle: ORACLE }),
      "",
    );
  }
  lines.push("## Targets at 80% load and above", "", ...targetLines(input.results), "");
  return lines.join("\n");
}

/**
 * The ratio of the subject's p99 TTFT to round robin's on the last Poisson trace (the highest
 * rate), as the one closing line of the benchmark.
 *
 * @param results Traces with their summaries.
 * @returns The line.
 */
export function ratioLine(results: readonly { trace: Trace; rows: RunSummary[] }[]): string {
  const poisson = results.filter(({ trace }) => trace.name.startsWith("poisson"));
  const last = poisson.reduce<typeof poisson[number] | undefined>(
    (best, entry) => (best === undefined || entry.trace.load > best.trace.load ? entry : best),
    undefined,
  );
  const value = last ? p99Ratio(last.rows, SUBJECT, BASELINE) : NaN;
  return `${SUBJECT}/${BASELINE} p99 TTFT ratio: ${value.toFixed(2)}`;
}

function targetLines(results: readonly { trace: Trace; rows: RunSummary[] }[]): string[] {
  const lines: string[] = [];
  for (const { trace, rows } of results) {
    if (trace.load < 0.8) continue;
    const vsBaseline = p99Ratio(rows, SUBJECT, BASELINE);
    const vsOracle = p99Ratio(rows, SUBJECT, ORACLE);
    lines.push(
      `- ${trace.name}: ${SUBJECT} p99 TTFT is ${vsBaseline.toFixed(2)} x ${BASELINE}'s ` +
        `(target <= 0.5: ${vsBaseline <= 0.5 ? "met" : "missed"}) and ${vsOracle.toFixed(2)} x ` +
        `the oracle's (target <= 1.3: ${vsOracle <= 1.3 ? "met" : "missed"}).`,
    );
  }
  return lines;
}

function p99Ratio(rows: readonly RunSummary[], subject: string, reference: string): number {
  const of = (name: string) => rows.find((row) => row.strategy === name)?.ttftP99 ?? NaN;
  return of(subject) / of(reference);
}

function simOptionsText(): string {
  const o = SIM_OPTIONS;
  return `\`maxNumSeqs: ${o.maxNumSeqs}\`, \`itlMs: ${o.itlMs}\`, \`ttftMs: ${o.ttftMs}\`, ` +
    `\`prefillMsPerToken: ${o.prefillMsPerToken}\`, \`batchFactor: ${o.batchFactor}\`, ` +
    "prefix caching on";
}

/** The CPU model when the process may ask (`--allow-sys`, not in the task), else nothing. */
function cpuModel(): string {
  try {
    // Query first: asking would prompt on a terminal.
    if (Deno.permissions.querySync({ name: "sys", kind: "cpus" }).state !== "granted") return "";
    const model = cpus()[0]?.model;
    return model ? `, ${model}` : "";
  } catch {
    return "";
  }
}
