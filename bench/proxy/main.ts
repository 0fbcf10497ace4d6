/**
 * `deno task bench`: LLMStream side by side with what users would pick instead (direct, nginx,
 * the vLLM router, Portkey's gateway, LiteLLM's proxy), on the same fast upstream in the same run.
 * Writes a markdown table to `bench/results/proxy.md` (`proxy-quick.md` with `--quick`) and prints
 * it. Run `deno task bench --help` for the flags.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { llmstream, type Peer, type PeerContext, PEERS } from "./peers.ts";
import { cpuSnapshot, foreignCpuSeconds } from "../common/proc.ts";
import { renderReport } from "./report.ts";
import { startUpstreamProcess, type UpstreamProcess } from "../common/upstream_process.ts";
import { type BenchConfig, type PeerResult, runScenarios } from "./scenarios.ts";

const HELP = `Usage: deno task bench [options]

  --quick               Scenario (a) only, against direct, llmstream and nginx (< 2 minutes).
  --scenarios LIST      Scenarios to run, e.g. a,c (default: all; a with --quick).
  --peers LIST          Comma-separated contenders (default: all): ${
  PEERS.map((p) => p.name).join(",")
}
  --out PATH            Report file (default bench/results/proxy.md or proxy-quick.md).
  --seconds N           Seconds measured in (a) and (d) (default 10; quick 8).
  --concurrency N       Connections in (a) and (e) (default 64).
  --rate N              Requests per second in (b) (default 500), for --rate-seconds (default 10).
  --streams N           Concurrent streams in (c) (default 1000); --chunks (200), --interval-ms (20).
  --leak-requests N     Requests in the leak check (e) (default 200000), at most --leak-max-s (60).
  --no-info             Skip the extra LLMStream runs (at --log-level info; and with auth,
                        rate_limit, metrics and logging enabled).
  --no-install          Do not install missing peers (they are reported as not run).
  --cache DIR           Peer install folder (default .cache/bench).
`;

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const LOAD_CPUS = "0";
const PEER_CPUS = "1";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function text(argv: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(argv[0]!, { args: argv.slice(1), stderr: "piped" }).output();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return "";
  }
}

async function machine(): Promise<string[]> {
  const cpu = /model name\s*:\s*(.+)/.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1] ?? "?";
  const memKb = Number(/MemTotal:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/meminfo"))?.[1] ?? 0);
  const os = /PRETTY_NAME="([^"]+)"/.exec(Deno.readTextFileSync("/etc/os-release"))?.[1] ?? "?";
  return [
    `Machine: ${navigator.hardwareConcurrency} CPUs (${cpu}), ${
      (memKb / 1048576).toFixed(0)
    } GiB, ` +
    `${os}, Linux ${await text(["uname", "-r"])}`,
    `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}); wrk ${
      (await text(["dpkg-query", "-W", "-f", "${Version}", "wrk"])) || "?"
    }`,
  ];
}

/** Waits (at most `maxS`) until other processes use under 15% of a CPU; returns their load. */
async function waitQuiet(own: number[], maxS: number): Promise<number> {
  const deadline = performance.now() + maxS * 1000;
  let load = 0;
  do {
    const before = cpuSnapshot();
    await sleep(1000);
    load = foreignCpuSeconds(before, own);
    if (load < 0.15) return load;
  } while (performance.now() < deadline);
  return load;
}

async function install(cache: string, peers: readonly string[], log: string): Promise<void> {
  const wanted = peers.filter((p) => ["nginx", "vllm-router", "portkey", "litellm"].includes(p));
  if (wanted.length === 0) return;
  console.error(`Installing missing peers into ${cache} (log ${log}) ...`);
  const out = await new Deno.Command("bash", {
    args: [`${REPO}/bench/peers/install.sh`, cache, ...wanted],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  Deno.writeTextFileSync(log, decoder.decode(out.stdout) + decoder.decode(out.stderr));
}

async function main(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      scenarios: { type: "string" },
      peers: { type: "string" },
      out: { type: "string" },
      seconds: { type: "string" },
      concurrency: { type: "string", default: "64" },
      rate: { type: "string", default: "500" },
      "rate-seconds": { type: "string", default: "10" },
      streams: { type: "string", default: "1000" },
      chunks: { type: "string", default: "200" },
      "interval-ms": { type: "string", default: "20" },
      "leak-requests": { type: "string", default: "200000" },
      "leak-max-s": { type: "string", default: "60" },
      "no-info": { type: "boolean", default: false },
      "no-install": { type: "boolean", default: false },
      cache: { type: "string", default: `${REPO}/.cache/bench` },
      help: { type: "boolean", default: false },
    },
  });
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const started = performance.now();
  const names = v.peers?.split(",") ??
    (v.quick ? ["direct", "llmstream", "nginx"] : PEERS.map((p) => p.name));
  const peers: Peer[] = names.map((name) => {
    const peer = PEERS.find((p) => p.name === name);
    if (!peer) {
      throw new Error(`Unknown peer "${name}"; known: ${PEERS.map((p) => p.name).join(", ")}`);
    }
    return peer;
  });
  const cache = v.cache;
  // One folder per run: two runs at once (other sessions share the machine) must not share files.
  const runDir = `${cache}/run/${Deno.pid}`;
  Deno.mkdirSync(runDir, { recursive: true });
  // The orchestrator shares the load CPU; the contender gets the other one to itself.
  await new Deno.Command("taskset", {
    args: ["-a", "-cp", LOAD_CPUS, String(Deno.pid)],
    stdout: "null",
  }).output();
  if (!v["no-install"]) await install(cache, names, `${runDir}/install.log`);

  const config: BenchConfig = {
    scenarios: v.scenarios?.split(",") ?? (v.quick ? ["a"] : ["a", "b", "c", "d", "e"]),
    concurrency: Number(v.concurrency),
    seconds: Number(v.seconds ?? (v.quick ? 8 : 10)),
    warmupSeconds: 2,
    rate: Number(v.rate),
    rateSeconds: Number(v["rate-seconds"]),
    streams: Number(v.streams),
    chunks: Number(v.chunks),
    intervalMs: Number(v["interval-ms"]),
    rampMs: 1000,
    bigPromptBytes: 100 * 1024,
    bigConcurrency: 16,
    leakRequests: Number(v["leak-requests"]),
    leakMaxSeconds: Number(v["leak-max-s"]),
    loadCpus: LOAD_CPUS,
    workDir: runDir,
    ownPids: [Deno.pid],
  };

  let running: UpstreamProcess;
  try {
    running = await startUpstreamProcess({
      cpus: LOAD_CPUS,
      log: `${runDir}/upstream.log`,
      chunks: config.chunks,
      intervalMs: config.intervalMs,
    });
  } catch (error) {
    console.error((error as Error).message);
    return 1;
  }
  const { url: upstreamUrl, process: upstream } = running;
  config.ownPids.push(upstream.pid);

  const context: PeerContext = {
    upstreamUrl,
    cacheDir: cache,
    runDir,
    repoDir: REPO,
    cpus: PEER_CPUS,
  };
  const results: PeerResult[] = [];
  const runs: [Peer, BenchConfig][] = peers.map((p) => [p, config]);
  if (!v.quick && !v["no-info"] && names.includes("llmstream")) {
    const at = runs.findIndex(([p]) => p.name === "llmstream") + 1;
    runs.splice(
      at,
      0,
      [llmstream("info"), { ...config, scenarios: ["a", "b", "c"] }],
      [llmstream("plugins"), { ...config, scenarios: ["a", "b"] }],
    );
  }
  for (const [peer, peerConfig] of runs) {
    const foreign = await waitQuiet(config.ownPids, 30);
    console.error(`== ${peer.name} (other processes: ${(foreign * 100).toFixed(0)}% of a CPU)`);
    let result: PeerResult;
    try {
      const running = await peer.start(context);
      try {
        result = await runScenarios(peerConfig, running);
      } finally {
        await running.stop();
      }
    } catch (error) {
      const reason = (error instanceof Error ? error.message : String(error)).replaceAll("\n", " ");
      result = { name: peer.name, status: "failed", reason: reason.slice(0, 300), notes: [] };
    }
    result.name = peer.name;
    console.error(JSON.stringify(result));
    results.push(result);
  }
  await upstream.stop();

  const report = renderReport(results, {
    config,
    meta: {
      title: v.quick ? "Proxy overhead (quick)" : "Proxy overhead: LLMStream and the alternatives",
      command: `deno task bench ${args.join(" ")}`.trim(),
      machine: await machine(),
      layout:
        `contender pinned to CPU ${PEER_CPUS}; load generator (wrk / Deno client), upstream ` +
        `(bench/common/upstream.ts) and this orchestrator pinned to CPU ${LOAD_CPUS} (taskset), the same ` +
        "for every contender, except llmstream-w1 and llmstream-w2 (`--workers 1` and `2`), " +
        "which may use both CPUs and so share CPU 0 with the load generator and the upstream. " +
        "Everything on 127.0.0.1.",
      started: new Date(Date.now() - (performance.now() - started)).toISOString(),
      seconds: (performance.now() - started) / 1000,
    },
  });
  const out = v.out ?? `${REPO}/bench/results/${v.quick ? "proxy-quick" : "proxy"}.md`;
  Deno.mkdirSync(new URL(".", `file://${out}`).pathname, { recursive: true });
  Deno.writeTextFileSync(out, report);
  console.log(report);
  console.error(`Wrote ${out}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
