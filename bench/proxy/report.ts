/**
 * The proxy benchmark's markdown report: one table per scenario with LLMStream's ratio to each
 * contender, the targets LLMStream is judged on, and how each contender ran.
 *
 * @module
 */
import type { BenchConfig, PeerResult } from "./scenarios.ts";
import { busy, cell, failedRow, num, ratio, table, targets } from "./targets.ts";

/** What the report says besides the figures. */
export interface ReportMeta {
  /** Title line. */
  title: string;
  /** The command that produced it. */
  command: string;
  /** Machine description lines. */
  machine: string[];
  /** How the CPUs are shared. */
  layout: string;
  /** Start time, ISO. */
  started: string;
  /** Wall seconds. */
  seconds: number;
}

/**
 * Renders the results.
 *
 * @param results One entry per contender (`direct` and `llmstream` expected).
 * @param options The knobs and the run's description.
 * @returns Markdown.
 */
export function renderReport(
  results: readonly PeerResult[],
  options: { config: BenchConfig; meta: ReportMeta },
): string {
  const { config, meta } = options;
  const by = (name: string) => results.find((r) => r.name === name && r.status === "ok");
  const direct = by("direct");
  const ours = by("llmstream");
  const has = (s: string) => config.scenarios.includes(s);
  const out: string[] = [
    `# ${meta.title}`,
    "",
    `Command: \`${meta.command}\` — started ${meta.started}, took ${Math.round(meta.seconds)} s.`,
    "",
    ...meta.machine.map((line) => `- ${line}`),
    `- CPU layout: ${meta.layout}`,
    "- \"LLMStream ÷ this\": LLMStream's figure divided by the row's (throughput: higher is better" +
    " for LLMStream; latency, CPU and memory: lower is better).",
    '- CPU busy % is CPU0 / CPU1 over the run; "other CPU s" is CPU time used by processes' +
    " outside this benchmark (other users of the machine) during the run: large values mean noise.",
    "",
  ];

  if (has("a")) {
    out.push(
      `## (a) Small chat requests, ${config.concurrency} connections, ${config.seconds} s` +
        ` (wrk, 1 thread, after ${config.warmupSeconds} s warm-up)`,
      "",
      table(
        [
          "contender",
          "req/s",
          "p50 ms",
          "p99 ms",
          "errors",
          "CPU busy %",
          "other CPU s",
          "contender CPU s per 100k req",
          "LLMStream ÷ this",
        ],
        results.map((r) => {
          const t = r.throughput;
          if (r.status !== "ok") return failedRow(r, 9);
          const requests = t === undefined ? 0 : t.rps * config.seconds;
          return [
            r.name,
            num(t?.rps, 0),
            num(t?.p50),
            num(t?.p99),
            num(t?.errors, 0),
            busy(t?.cpuBusy),
            num(t?.foreignCpuS, 1),
            t?.cpuS === undefined || requests === 0 ? "–" : num(t.cpuS / requests * 100_000, 1),
            ratio(ours?.throughput?.rps, t?.rps),
          ];
        }),
      ),
      "",
      "Where CPU0 (load generator + upstream) is ≥ 90% busy while the contender's CPU1 is below 95%, " +
        "the row is bounded by the load side, not by the contender: its real ceiling is higher, and " +
        "LLMStream's ratio to it is flattering.",
      "",
    );
  }
  if (has("b")) {
    const base = direct?.rate?.latency;
    out.push(
      `## (b) Fixed rate ${config.rate} req/s for ${config.rateSeconds} s (Deno client, open loop): added latency over direct`,
      "",
      table(
        [
          "contender",
          "p50 ms",
          "p99 ms",
          "added p50 ms",
          "added p99 ms",
          "errors",
          "LLMStream ÷ this (added p50)",
        ],
        results.filter((r) => r.rate || r.status !== "ok").map((r) => {
          if (r.status !== "ok") return failedRow(r, 7);
          const l = r.rate!.latency;
          const added50 = base ? l.p50 - base.p50 : undefined;
          const ours50 = base && ours?.rate ? ours.rate.latency.p50 - base.p50 : undefined;
          return [
            r.name,
            num(l.p50, 3),
            num(l.p99, 3),
            r.name === "direct" ? "0" : num(added50, 3),
            r.name === "direct" ? "0" : num(base ? l.p99 - base.p99 : undefined, 3),
            num(r.rate!.errors, 0),
            r.name === "direct" ? "–" : ratio(ours50, added50),
          ];
        }),
      ),
      "",
    );
  }
  if (has("c")) {
    const base = direct?.streams;
    out.push(
      `## (c) ${config.streams} concurrent streams × ${config.chunks} chunks every ${config.intervalMs} ms` +
        ` (opened over ${config.rampMs} ms; raw-TCP Deno client)`,
      "",
      "TTFT is timed on every stream; chunk gaps on every 10th stream (read as bytes arrive). " +
        "The ideal gap is the interval; jitter is how far p99 lies above it.",
      "",
      table(
        [
          "contender",
          "ok / errors",
          "TTFT p50 ms",
          "TTFT p99 ms",
          "added TTFT p50",
          "added TTFT p99",
          "gap p50 ms",
          "gap p99 ms",
          "CPU s",
          "peak RSS MB",
          "CPU busy %",
          "LLMStream ÷ this (CPU s)",
        ],
        results.filter((r) => r.streams || r.status !== "ok").map((r) => {
          if (r.status !== "ok") return failedRow(r, 12);
          const s = r.streams!;
          const d = (a: number, b: number | undefined) =>
            r.name === "direct" ? "0" : num(b === undefined ? undefined : a - b);
          return [
            r.name,
            `${s.completed} / ${s.errors}`,
            num(s.ttft.p50),
            num(s.ttft.p99),
            d(s.ttft.p50, base?.ttft.p50),
            d(s.ttft.p99, base?.ttft.p99),
            num(s.gap.p50),
            num(s.gap.p99),
            num(s.cpuS),
            num(s.peakRssMb, 0),
            busy(s.cpuBusy),
            ratio(ours?.streams?.cpuS, s.cpuS),
          ];
        }),
      ),
      "",
    );
  }
  if (has("d")) {
    out.push(
      `## (d) ${
        Math.round(config.bigPromptBytes / 1024)
      } KB prompts, ${config.bigConcurrency} connections, ${config.seconds} s (wrk)`,
      "",
      table(
        ["contender", "req/s", "p50 ms", "p99 ms", "errors", "CPU busy %", "LLMStream ÷ this"],
        results.filter((r) => r.big || r.status !== "ok").map((r) => {
          if (r.status !== "ok") return failedRow(r, 7);
          const b = r.big!;
          return [
            r.name,
            num(b.rps, 0),
            num(b.p50),
            num(b.p99),
            num(b.errors, 0),
            busy(b.cpuBusy),
            ratio(ours?.big?.rps, b.rps),
          ];
        }),
      ),
      "",
    );
  }
  if (has("e")) {
    out.push(
      `## (e) Memory: idle, and under load early and late in a run of ${
        config.leakRequests.toLocaleString("en-US")
      } requests` +
        ` (${config.concurrency} connections, at most ${config.leakMaxSeconds} s)`,
      "",
      "After a warm-up of a tenth as many requests, RSS is sampled every 0.5 s through the run; " +
        '"early" and "late" are the medians over its first and last tenth, both under load ' +
        "(an idle reading would measure how the runtime sizes its heap when idle, not a leak).",
      "",
      table(
        [
          "contender",
          "idle RSS MB",
          "RSS early in the run MB",
          "RSS late in the run MB",
          "growth MB",
          "requests run",
          "errors",
          "LLMStream ÷ this (idle RSS)",
        ],
        results.filter((r) => r.name !== "direct").map((r) => {
          if (r.status !== "ok") return failedRow(r, 8);
          const l = r.leak;
          return [
            r.name,
            num(r.idleRssMb, 1),
            num(l?.warmRssMb, 1),
            num(l?.afterRssMb, 1),
            l ? num(l.afterRssMb - l.warmRssMb, 1) : "–",
            l ? l.requests.toLocaleString("en-US") : "–",
            num(l?.errors, 0),
            ratio(ours?.idleRssMb, r.idleRssMb),
          ];
        }),
      ),
      "",
    );
  }
  out.push(...targets(results, config), "## Contenders", "");
  out.push(
    table(
      ["contender", "version", "status", "run as"],
      results.map((
        r,
      ) => [
        r.name,
        r.version ?? "–",
        r.status === "ok" ? "ran" : `not run: ${cell(r.reason ?? "failed")}`,
        r.how ? `\`${r.how.replaceAll("|", "\\|")}\`` : "–",
      ]),
    ),
    "",
  );
  const notes = results.flatMap((r) => r.notes.map((note) => `- ${r.name} ${cell(note, 600)}`));
  if (notes.length > 0) out.push("## Scenario failures", "", ...notes, "");
  return out.join("\n");
}
