/**
 * The prefix-cache suite of `deno task bench:routing`: LLMStream's strategies and the vLLM router's
 * policies, each on a fresh simulated fleet with the same seeded trace, on workloads whose time to
 * first token depends on where cached prefixes are: multi-turn chat, shared system prompts under KV
 * pressure and without it, and a control with no shared prefix; on a homogeneous fleet and on a
 * heterogeneous one (speeds 1, 1, 0.6, 0.3). Also LLMStream as two replicas that alternate
 * requests. Runs one contender at a time; writes `bench/results/routing-prefix.md`
 * (`routing-prefix-quick.md` with `--quick`).
 *
 * @module
 */
import {
  type Contender,
  labelOf,
  ORACLE_STRATEGY,
  PROXIED_ORACLE,
  vllmRouterPath,
} from "./contenders.ts";
import { renderPrefixReport, type ScenarioResult } from "./report.ts";
import { type FleetShape, runPrefix, SIM_BASE } from "./run.ts";
import {
  chatTrace,
  controlTrace,
  type PrefixTrace,
  systemPromptTrace,
  type TraceOptions,
} from "./traces.ts";

/** Settings of the suite. */
export interface PrefixSettings {
  /** The short run: three contenders, three scenarios. */
  quick: boolean;
  /** Seed of the traces. */
  seed: number;
  /** `metrics_update_interval` of LLMStream, seconds. */
  interval: number;
  /** Measured seconds per run. */
  seconds: number;
  /** Warm-up seconds per run. */
  warmup: number;
  /** Report file. */
  out: string;
  /** Run only scenarios whose name contains one of these (all when empty). */
  only: string[];
  /** Run only contenders whose label contains one of these (all when empty). */
  contenders: string[];
  /** Extra LLMStream contenders with `strategy_options`, for tuning. */
  variants: Contender[];
}

const HOMOGENEOUS = [1, 1, 1, 1];
const HETEROGENEOUS = [1, 1, 0.6, 0.3];

interface Scenario {
  name: string;
  fleet: FleetShape;
  trace(options: TraceOptions): PrefixTrace;
  /** Arrivals per second on the homogeneous fleet (scaled by total speed on others). */
  rate: number;
  /** Every LLMStream strategy runs here, not just the main contenders. */
  everyStrategy: boolean;
}

function scenarios(quick: boolean): Scenario[] {
  const all: Scenario[] = [
    {
      name: "chat, homogeneous",
      fleet: { name: "homogeneous", speeds: HOMOGENEOUS, kvBlocks: 4096 },
      trace: chatTrace,
      rate: 3,
      everyStrategy: true,
    },
    {
      name: "system prompts, homogeneous, KV pressure",
      fleet: { name: "homogeneous", speeds: HOMOGENEOUS, kvBlocks: 800 },
      trace: systemPromptTrace,
      rate: 24,
      everyStrategy: true,
    },
    {
      name: "chat, heterogeneous",
      fleet: { name: "heterogeneous", speeds: HETEROGENEOUS, kvBlocks: 4096 },
      trace: chatTrace,
      rate: 3,
      everyStrategy: false,
    },
    {
      name: "system prompts, heterogeneous, KV pressure",
      fleet: { name: "heterogeneous", speeds: HETEROGENEOUS, kvBlocks: 800 },
      trace: systemPromptTrace,
      rate: 24,
      everyStrategy: false,
    },
    {
      name: "system prompts, homogeneous, fits every cache",
      fleet: { name: "homogeneous", speeds: HOMOGENEOUS, kvBlocks: 8192 },
      trace: systemPromptTrace,
      rate: 24,
      everyStrategy: false,
    },
    {
      name: "control, homogeneous",
      fleet: { name: "homogeneous", speeds: HOMOGENEOUS, kvBlocks: 2048 },
      trace: controlTrace,
      rate: 24,
      everyStrategy: true,
    },
  ];
  return quick
    ? all.filter((s) => s.name.startsWith("chat, homo") || s.name.includes("homogeneous, KV"))
    : all;
}

const MAIN: Contender[] = [
  { kind: "llmstream", strategy: "cache_aware", replicas: 1 },
  { kind: "llmstream", strategy: "real_time_metrics", replicas: 1 },
  { kind: "vllm-router", strategy: "cache_aware", replicas: 1 },
  { kind: "llmstream", strategy: "cache_aware", replicas: 2 },
  { kind: "vllm-router", strategy: "power_of_two", replicas: 1 },
  { kind: "vllm-router", strategy: "round_robin", replicas: 1 },
  { kind: "oracle", strategy: ORACLE_STRATEGY, replicas: 1 },
  { kind: "oracle", strategy: PROXIED_ORACLE, replicas: 1 },
];
const OTHERS: Contender[] = [
  "round_robin",
  "random",
  "least_connection",
  "weighted_round_robin",
  "power_of_two",
]
  .map((strategy) => ({ kind: "llmstream" as const, strategy, replicas: 1 }));

/**
 * Runs the suite and writes its report.
 *
 * @param settings Seed, lengths and where to write.
 * @returns The report's markdown.
 */
export async function runPrefixSuite(settings: PrefixSettings): Promise<string> {
  const repoDir = decodeURIComponent(new URL("../..", import.meta.url).pathname).replace(/\/$/, "");
  const runDir = await Deno.makeTempDir({ prefix: "llmstream-prefix-" });
  const haveRouter = await Deno.stat(vllmRouterPath(repoDir)).then(() => true, () => false);
  const notes = [
    `Command: \`deno task bench:routing ${settings.quick ? "--quick " : ""}--suite prefix ` +
    `--prefix-seconds ${settings.seconds} --prefix-warmup ${settings.warmup}\`, ` +
    `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, Deno ${Deno.version.deno}; ` +
    `seed ${settings.seed}, ${settings.warmup} s warm-up then ${settings.seconds} s measured per run.`,
    "Each row is a fresh fleet of four simulated vLLM servers (`sim/`: " +
    `${SIM_BASE.maxNumSeqs} running slots, ${SIM_BASE.prefillMsPerToken} ms per uncached prompt ` +
    `token, ${SIM_BASE.itlMs} ms decode steps, 16-token KV blocks; KV blocks per server as named), ` +
    "one contender in its own process, and the same seeded trace. LLMStream runs `main.ts` with " +
    `\`metrics_update_interval: ${settings.interval}\` and every other setting at its default; the ` +
    "vLLM router (PyPI `vllm-router`, installed by `bench/peers/install.sh`) runs each policy at " +
    "its defaults (its `cache_aware` tokenizes every request on every server through the " +
    "simulator's `/v1/chat/completions/render`). Nothing is pinned: the benchmark process " +
    "(simulators and client) and the contender share the machine's 2 cores.",
    "TTFT is measured at the client to the first content token; its mean is also given as the " +
    "servers saw it (`vllm:time_to_first_token_seconds`, from a request's admission to the " +
    "engine): that part is where routing acts (queueing, batch, prefill), the rest is HTTP, the " +
    "contender and the servers' request handling. The prefix hit rate is the servers' own " +
    "`vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total` over the measured part; " +
    "shares are each server's share of the measured requests. Bench stalls: the times the " +
    "benchmark process's own event loop ran 5 ms or more late while measuring, and the longest, " +
    "ms; a stall delays every simulator and the client at once, whichever contender routes.",
    "The `oracle earliest_first_token` row is no router: the client sends each request straight " +
    "to the server whose simulated engine forecasts the earliest first token for it, knowing " +
    "every server's cache, queue and where its step in progress stands (`Engine.forecast`; " +
    "greedy, it does not weigh what a choice costs later requests). It shows what full " +
    "information and no proxy hop would give; no gateway can see a server's steps. The " +
    "`oracle earliest_first_token via plain proxy` row makes the same choices but sends through " +
    "`bench/prefix/plain_proxy.ts` (`Deno.serve` in front of `fetch`, nothing else): what one " +
    "proxy hop on this runtime costs them.",
  ];
  if (!haveRouter) {
    notes.push(
      "The vLLM router is not installed (`bench/peers/install.sh`): its rows are missing.",
    );
  }
  const results: ScenarioResult[] = [];
  try {
    const picked = (name: string, filters: string[]) =>
      filters.length === 0 || filters.some((filter) => name.includes(filter));
    for (const scenario of scenarios(settings.quick).filter((s) => picked(s.name, settings.only))) {
      const speed = scenario.fleet.speeds.reduce((sum, s) => sum + s, 0) / 4;
      const rate = Math.round(scenario.rate * speed * 10) / 10;
      const trace = scenario.trace({
        seed: settings.seed,
        seconds: settings.seconds,
        warmup: settings.warmup,
        rate,
      });
      const contenders = [
        ...MAIN,
        ...(scenario.everyStrategy && !settings.quick ? OTHERS : []),
        ...settings.variants,
      ]
        .filter((c) => haveRouter || c.kind !== "vllm-router")
        .filter((c) =>
          !settings.quick || (c.replicas === 1 && c.strategy === "cache_aware") ||
          c.strategy === "real_time_metrics"
        )
        .filter((c) => picked(labelOf(c), settings.contenders));
      const rows = [];
      for (const [index, contender] of contenders.entries()) {
        console.error(`${scenario.name}: ${labelOf(contender)}...`);
        const row = await runPrefix(trace, {
          fleet: scenario.fleet,
          contender,
          context: { repoDir, runDir, interval: settings.interval },
          drainMs: 8000,
          tag: `${results.length}-${index}`,
        });
        console.error(
          `  TTFT p50 ${row.ttft[0].toFixed(1)} p99 ${row.ttft[1].toFixed(1)} hit ${
            (row.hitRate * 100).toFixed(1)
          }%`,
        );
        rows.push(row);
      }
      results.push({
        name: scenario.name,
        description:
          `${trace.description}; fleet ${scenario.fleet.name} (speeds ${
            scenario.fleet.speeds.join(", ")
          }), ` +
          `${scenario.fleet.kvBlocks} KV blocks per server.`,
        rows,
      });
    }
  } finally {
    await Deno.remove(runDir, { recursive: true }).catch(() => {});
  }
  const report = renderPrefixReport(results, notes);
  await Deno.writeTextFile(settings.out, report);
  return report;
}
