/**
 * Table helpers of the proxy benchmark's report, and the targets LLMStream is judged on.
 *
 * @module
 */
import type { BenchConfig, PeerResult } from "./scenarios.ts";

/** A figure for a table: `–` when missing, thousands separated from 1,000 up. */
export function num(value: number | undefined, digits = 2): string {
  if (value === undefined || !Number.isFinite(value)) return "–";
  return value >= 1000 ? Math.round(value).toLocaleString("en-US") : value.toFixed(digits);
}

/** `ours / theirs` as `1.23×`, or `–`. */
export function ratio(ours: number | undefined, theirs: number | undefined): string {
  if (ours === undefined || theirs === undefined || !(theirs > 0) || !Number.isFinite(ours)) {
    return "–";
  }
  return `${(ours / theirs).toFixed(2)}×`;
}

/** A markdown table, first column left-aligned. */
export function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `| ${head.map((_, i) => (i === 0 ? "---" : "--:")).join(" | ")} |`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");
}

/** CPU busy percentages as `a / b`. */
export function busy(values: number[] | undefined): string {
  return values ? values.map((v) => v.toFixed(0)).join(" / ") : "–";
}

/** A table cell from free text: no pipes or line breaks, at most `max` characters. */
export function cell(text: string, max = 400): string {
  const flat = text.replace(/\s+/g, " ").replaceAll("|", "/").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** A row for a contender that did not run. */
export function failedRow(result: PeerResult, columns: number): string[] {
  return [result.name, "not run (see Contenders)", ...Array(columns - 2).fill("")];
}

/**
 * The targets LLMStream is judged on, with where it stands.
 *
 * @param results Every contender's figures.
 * @param config The knobs (which scenarios ran).
 * @returns Markdown lines.
 */
export function targets(results: readonly PeerResult[], config: BenchConfig): string[] {
  const by = (name: string) => results.find((r) => r.name === name && r.status === "ok");
  const ours = by("llmstream");
  const direct = by("direct");
  const rows: string[][] = [];
  const verdict = (ok: boolean | undefined) =>
    ok === undefined ? "not measured" : ok ? "met" : "**missed**";
  const rps = ours?.throughput?.rps;
  for (
    const [peer, factor] of [["nginx", 0.5], ["portkey", 1.5], ["litellm", 10], [
      "vllm-router",
      1,
    ]] as const
  ) {
    const theirs = by(peer)?.throughput?.rps;
    const value = rps !== undefined && theirs ? rps / theirs : undefined;
    rows.push([
      `throughput ≥ ${factor} × ${peer}`,
      value === undefined ? "–" : `${value.toFixed(2)} ×`,
      verdict(value === undefined ? undefined : value >= factor),
    ]);
  }
  if (config.scenarios.includes("b")) {
    const added = ours?.rate && direct?.rate
      ? ours.rate.latency.p50 - direct.rate.latency.p50
      : undefined;
    rows.push([
      `added p50 ≤ 0.5 ms at ${config.rate} req/s`,
      added === undefined ? "–" : `${added.toFixed(3)} ms`,
      verdict(added === undefined ? undefined : added <= 0.5),
    ]);
  }
  if (config.scenarios.includes("c")) {
    const s = ours?.streams;
    const added = s && direct?.streams ? s.ttft.p99 - direct.streams.ttft.p99 : undefined;
    rows.push([
      `${config.streams} streams: added TTFT p99 ≤ 5 ms`,
      added === undefined
        ? "–"
        : `${added.toFixed(2)} ms (${s?.completed} ok, ${s?.errors} errors)`,
      verdict(added === undefined ? undefined : added <= 5 && s?.errors === 0),
    ]);
    rows.push([
      `${config.streams} streams: peak RSS ≤ 200 MB`,
      s?.peakRssMb === undefined ? "–" : `${s.peakRssMb.toFixed(0)} MB`,
      verdict(s?.peakRssMb === undefined ? undefined : s.peakRssMb <= 200),
    ]);
  }
  if (config.scenarios.includes("e")) {
    const l = ours?.leak;
    const growth = l ? l.afterRssMb - l.warmRssMb : undefined;
    rows.push([
      `no RSS growth after warm-up (≤ 5 MB over the run)`,
      growth === undefined
        ? "–"
        : `${growth.toFixed(1)} MB over ${l!.requests.toLocaleString("en-US")} requests`,
      verdict(growth === undefined ? undefined : growth <= 5),
    ]);
  }
  return ["## Targets (LLMStream)", "", table(["target", "LLMStream", "verdict"], rows), ""];
}
