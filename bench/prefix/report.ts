/**
 * The prefix-cache benchmark's tables: one per scenario, a row per contender, and a table of the
 * targets LLMStream's `cache_aware` is held to against the vLLM router's `cache_aware` and
 * LLMStream's `real_time_metrics`, each marked met or missed from the same run's figures.
 *
 * @module
 */
import { ORACLE_STRATEGY, PROXIED_ORACLE } from "./contenders.ts";
import type { PrefixRunResult } from "./run.ts";

/** One scenario's results. */
export interface ScenarioResult {
  /** Scenario name, e.g. `chat, homogeneous`. */
  name: string;
  /** What it is. */
  description: string;
  /** A row per contender. */
  rows: PrefixRunResult[];
}

const OURS = "llmstream cache_aware";
const PEER = "vllm-router cache_aware";
const RTM = "llmstream real_time_metrics";
/** The oracles' rows, by label, and how a target's line names them. */
const REFERENCES = [
  [`oracle ${ORACLE_STRATEGY}`, "oracle"],
  [`oracle ${PROXIED_ORACLE}`, "through a plain proxy"],
] as const;

function ms(value: number): string {
  return Number.isNaN(value) ? "-" : value.toFixed(value < 100 ? 1 : 0);
}

function table(scenario: ScenarioResult): string[] {
  const lines = [
    `### ${scenario.name}`,
    "",
    scenario.description,
    "",
    "| contender | TTFT p50 ms | TTFT p99 ms | TTFT mean ms, client / servers | e2e p50 ms | e2e p99 ms | req/s | prefix hit | failed | shares per server | bench stalls |",
    "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --- | --: |",
  ];
  const first = scenario.rows[0];
  for (const row of scenario.rows) {
    lines.push(
      `| ${row.contender} | ${ms(row.ttft[0])} | ${ms(row.ttft[1])} | ` +
        `${ms(row.ttftMean.client)} / ${ms(row.ttftMean.server)} | ${ms(row.e2e[0])} | ` +
        `${ms(row.e2e[1])} | ${row.throughput.toFixed(1)} | ` +
        `${Number.isNaN(row.hitRate) ? "-" : (row.hitRate * 100).toFixed(1) + "%"} | ` +
        `${row.failed}/${row.requests} | ${
          row.shares.map((s) => (s * 100).toFixed(0)).join(" / ")
        } | ${row.stalls.count}, ${ms(row.stalls.longestMs)} |`,
    );
  }
  if (scenario.rows.some((row) => row.byTurn.later[2] > 0)) lines.push("", ...byTurn(scenario));
  if (first !== undefined) {
    lines.push(
      "",
      `Floor (each measured request on an idle server of the fleet's top speed that holds every ` +
        `earlier prompt and answer of the run): TTFT p50 ${ms(first.floor[0])} ms, p99 ${
          ms(first.floor[1])
        } ms, prefix hit ${(first.idealHitRate * 100).toFixed(1)}%. Loaded floor (the same plus ` +
        `one decode step of the least busy server when the request was sent): TTFT p50 ${
          ms(first.loadedFloor[0])
        } ms, p99 ${ms(first.loadedFloor[1])} ms.`,
    );
  }
  lines.push("");
  return lines;
}

/** TTFT of first turns (new prompts) and later turns (re-sent histories), per contender. */
function byTurn(scenario: ScenarioResult): string[] {
  const lines = [
    "TTFT by turn: a conversation's first turn prefills its prompt wherever it goes; a later turn " +
    "finds its history cached only where the previous turns went.",
    "",
    "| contender | first turns: TTFT p50 ms | p99 ms | count | later turns: TTFT p50 ms | p99 ms | count |",
    "| --- | --: | --: | --: | --: | --: | --: |",
  ];
  for (const row of scenario.rows) {
    const { first, later } = row.byTurn;
    lines.push(
      `| ${row.contender} | ${ms(first[0])} | ${ms(first[1])} | ${first[2]} | ${ms(later[0])} | ` +
        `${ms(later[1])} | ${later[2]} |`,
    );
  }
  return lines;
}

interface Target {
  scenario: string;
  what: string;
  check(rows: Map<string, PrefixRunResult>): [string, boolean] | undefined;
}

function ratio(
  metric: (row: PrefixRunResult) => number,
  bound: number,
  versus: string,
  floor?: (row: PrefixRunResult) => string,
): Target["check"] {
  return (rows) => {
    const ours = rows.get(OURS);
    const other = rows.get(versus);
    if (!ours || !other) return undefined;
    const value = metric(ours) / metric(other);
    // What full information reached against the same row, with no proxy hop and with the
    // plainest one.
    let reach = "";
    for (const [label, name] of REFERENCES) {
      const reference = rows.get(label);
      if (reference === undefined) continue;
      reach += `; ${name} ${(metric(reference) / metric(other)).toFixed(2)}x`;
    }
    const least = floor === undefined ? "" : `; floor ${floor(ours)}`;
    return [
      `${value.toFixed(2)}x (${ms(metric(ours))} vs ${ms(metric(other))}${reach}${least})`,
      value <= bound,
    ];
  };
}

/**
 * How close to the trace's best hit rate counts as at it: the tables' precision (0.1 point).
 * Where the peer is there, the issue asks to match it, not to beat a hit rate no router can pass.
 */
const AT_BEST_POINTS = 0.1;

function hitAtLeast(versus: string): Target["check"] {
  return (rows) => {
    const ours = rows.get(OURS);
    const other = rows.get(versus);
    if (!ours || !other) return undefined;
    const points = (row: PrefixRunResult) => row.hitRate * 100;
    const atBest = (row: PrefixRunResult) => points(row) >= row.idealHitRate * 100 - AT_BEST_POINTS;
    const text = `${points(ours).toFixed(1)}% vs ${points(other).toFixed(1)}%`;
    if (points(ours) >= points(other)) return [text, true];
    if (!atBest(other)) return [text, false];
    const best = `${(other.idealHitRate * 100).toFixed(1)}%`;
    return atBest(ours)
      ? [`${text}, both at the trace's best (${best}): a match`, true]
      : [`${text}, the trace's best ${best}`, false];
  };
}

const p50 = (row: PrefixRunResult) => row.ttft[0];
const p99 = (row: PrefixRunResult) => row.ttft[1];
const floor50 = (row: PrefixRunResult) => `${ms(row.floor[0])}, loaded ${ms(row.loadedFloor[0])}`;
const floor99 = (row: PrefixRunResult) => `${ms(row.floor[1])}, loaded ${ms(row.loadedFloor[1])}`;

/** The targets, per scenario. */
const TARGETS: readonly Target[] = [
  { scenario: "chat, homogeneous", what: "hit rate ≥ vllm-router's", check: hitAtLeast(PEER) },
  {
    scenario: "chat, homogeneous",
    what: "TTFT p50 ≤ 0.9x vllm-router's",
    check: ratio(p50, 0.9, PEER, floor50),
  },
  {
    scenario: "chat, homogeneous",
    what: "TTFT p99 ≤ 0.8x vllm-router's",
    check: ratio(p99, 0.8, PEER, floor99),
  },
  {
    scenario: "system prompts, homogeneous, KV pressure",
    what: "hit rate ≥ vllm-router's",
    check: hitAtLeast(PEER),
  },
  {
    scenario: "system prompts, homogeneous, KV pressure",
    what: "TTFT p50 ≤ vllm-router's",
    check: ratio(p50, 1, PEER, floor50),
  },
  {
    scenario: "system prompts, homogeneous, KV pressure",
    what: "TTFT p99 ≤ vllm-router's",
    check: ratio(p99, 1, PEER, floor99),
  },
  ...["chat, heterogeneous", "system prompts, heterogeneous, KV pressure"].flatMap((scenario) => [
    { scenario, what: "TTFT p50 ≤ 0.8x vllm-router's", check: ratio(p50, 0.8, PEER, floor50) },
    { scenario, what: "TTFT p99 ≤ 0.8x vllm-router's", check: ratio(p99, 0.8, PEER, floor99) },
    { scenario, what: "TTFT p50 ≤ real_time_metrics'", check: ratio(p50, 1, RTM) },
    { scenario, what: "TTFT p99 ≤ real_time_metrics'", check: ratio(p99, 1, RTM) },
  ]),
  ...["system prompts, homogeneous, fits every cache", "control, homogeneous"].flatMap((
    scenario,
  ) => [
    { scenario, what: "TTFT p50 within 5% of real_time_metrics'", check: ratio(p50, 1.05, RTM) },
    { scenario, what: "TTFT p99 within 5% of real_time_metrics'", check: ratio(p99, 1.05, RTM) },
  ]),
  {
    scenario: "chat, homogeneous",
    what: "two replicas: hit rate within 5 points of one",
    check: (rows) => {
      const one = rows.get(OURS);
      const two = rows.get(`${OURS} x2`);
      if (!one || !two) return undefined;
      const gap = (one.hitRate - two.hitRate) * 100;
      return [`${(two.hitRate * 100).toFixed(1)}% vs ${(one.hitRate * 100).toFixed(1)}%`, gap <= 5];
    },
  },
];

/**
 * Renders the report.
 *
 * @param scenarios Every scenario's results.
 * @param notes How the run was made (command, machine sharing), one paragraph each.
 * @returns Markdown.
 */
export function renderPrefixReport(scenarios: readonly ScenarioResult[], notes: string[]): string {
  const lines = ["## Prefix-cache routing: LLMStream and the vLLM router", "", ...notes, ""];
  const targets = ["| scenario | target | measured | verdict |", "| --- | --- | --- | --- |"];
  for (const target of TARGETS) {
    const scenario = scenarios.find((s) => s.name === target.scenario);
    if (!scenario) continue;
    const result = target.check(new Map(scenario.rows.map((row) => [row.contender, row])));
    if (!result) continue;
    targets.push(
      `| ${target.scenario} | ${target.what} | ${result[0]} | ${result[1] ? "met" : "missed"} |`,
    );
  }
  lines.push("### Targets", "", ...targets, "");
  for (const scenario of scenarios) lines.push(...table(scenario));
  return lines.join("\n");
}
