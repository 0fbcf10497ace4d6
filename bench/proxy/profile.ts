/**
 * `deno task bench:profile`: where LLMStream spends its CPU under the proxy benchmark's load.
 *
 * Starts the bench upstream (CPU 0) and LLMStream (`main.ts`, CPU 1, `--log-level warning` unless `--log-level` says otherwise) with
 * the V8 inspector on a loopback port, samples it with the inspector's CPU profiler while `wrk`
 * (small requests) or the SSE client (streams) loads it, and lists the functions by self time.
 * Writes `bench/results/proxy-profile.md` and the raw `.cpuprofile` (for Chrome DevTools) under
 * `.cache/bench/run/`.
 *
 * With the inspector attached, Deno tees every `fetch` response body to report it, which distorts
 * streaming: profile streams with `deno task bench:profile-v8` (inspector-free) instead.
 *
 * Run: `deno task bench:profile [--scenario small|stream] [--seconds 10] [--top 30]
 * [--log-level info]`.
 *
 * @module
 */
import { startUpstreamProcess } from "../common/upstream_process.ts";
import { llmstreamArgs } from "../common/peer_launch.ts";
import { parseArgs } from "node:util";
import { runStreams, runWrk } from "../common/load.ts";
import { freePort, spawnPinned, waitUntil } from "../common/proc.ts";

interface ProfileNode {
  id: number;
  callFrame: {
    functionName: string;
    url: string;
    lineNumber: number;
    columnNumber: number;
    scriptId: string;
  };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** A minimal Chrome DevTools Protocol session over the inspector's WebSocket. */
async function inspector(url: string) {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let id = 0;
  const pending = new Map<number, (result: unknown) => void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(String(event.data));
    if (typeof message.id === "number") pending.get(message.id)?.(message.result);
  };
  return {
    send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
      const call = ++id;
      socket.send(JSON.stringify({ id: call, method, params }));
      return new Promise((resolve) => pending.set(call, resolve));
    },
    close: () => socket.close(),
  };
}

const INSPECTOR = "inspector overhead (excluded)";

/** Self time by function, in ms, sorted; the profile's categories summed too. */
function selfTimes(
  profile: Profile,
): { rows: [string, number][]; groups: [string, number][]; frames: Map<string, ProfileNode> } {
  const frames = new Map<string, ProfileNode>();
  const byNode = new Map<number, number>();
  profile.samples.forEach((node, i) => {
    byNode.set(node, (byNode.get(node) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  const rows = new Map<string, number>();
  const groups = new Map<string, number>();
  for (const node of profile.nodes) {
    const ms = byNode.get(node.id) ?? 0;
    if (ms === 0) continue;
    const frame = node.callFrame;
    const file = frame.url.replace(`file://${REPO}/`, "");
    // Costs that exist only because the inspector is attached (it reports every fetch).
    if (/^op_inspector|inspector_network_bridge/.test(frame.functionName + file)) {
      groups.set(INSPECTOR, (groups.get(INSPECTOR) ?? 0) + ms);
      continue;
    }
    // Deno's runtime files are one line each: the column tells their functions apart.
    const column = file.startsWith("ext:") ? `:${frame.columnNumber + 1}` : "";
    const where = file ? ` ${file}:${frame.lineNumber + 1}${column}` : "";
    const key = `${frame.functionName || "(anonymous)"}${where}`;
    rows.set(key, (rows.get(key) ?? 0) + ms);
    frames.set(key, node);
    const group = !file
      ? frame.functionName.startsWith("op_") ? "Deno ops (op_*, Rust)" : frame.functionName
      : file.startsWith("ext:")
      ? "Deno runtime JS (ext:)"
      : file.includes("node_modules") || file.startsWith("https:") || file.includes("/npm/")
      ? "npm dependencies"
      : "LLMStream code";
    groups.set(group, (groups.get(group) ?? 0) + ms);
  }
  const sort = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]);
  return { rows: sort(rows), groups: sort(groups), frames };
}

function fnTable(rows: [string, number][], top: number, pct: (ms: number) => string): string[] {
  return [
    "| function | self ms | share |",
    "| --- | --: | --: |",
    ...rows.slice(0, top).map(([name, ms]) =>
      `| \`${name.replaceAll("|", "/")}\` | ${ms.toFixed(0)} | ${pct(ms)} |`
    ),
  ];
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      scenario: { type: "string", default: "small" },
      seconds: { type: "string", default: "10" },
      top: { type: "string", default: "30" },
      "log-level": { type: "string", default: "warning" },
      out: { type: "string", default: `${REPO}/bench/results/proxy-profile.md` },
    },
  });
  const runDir = `${REPO}/.cache/bench/run`;
  Deno.mkdirSync(runDir, { recursive: true });
  const { url: upstreamUrl, process: upstream } = await startUpstreamProcess({
    cpus: "0",
    log: `${runDir}/profile-upstream.log`,
  });
  const spec = `${runDir}/profile-llmstream.json`;
  Deno.writeTextFileSync(spec, JSON.stringify({ models: { bench: { servers: [upstreamUrl] } } }));
  const port = freePort();
  const inspectPort = freePort();
  const gateway = spawnPinned(
    llmstreamArgs(REPO, {
      spec,
      port,
      level: values["log-level"],
      flags: [`--inspect=127.0.0.1:${inspectPort}`],
    }),
    { cpus: "1", log: `${runDir}/profile-llmstream.log` },
  );
  const url = `http://127.0.0.1:${port}/v1/chat/completions`;
  try {
    const why = await waitUntil(async () => {
      const response = await fetch(url, {
        method: "POST",
        body: '{"model":"bench","messages":[{"role":"user","content":"hi"}]}',
      });
      await response.arrayBuffer();
      return response.ok;
    }, { timeoutMs: 30_000, process: gateway });
    if (why) throw new Error(`LLMStream did not start: ${why}`);
    const targets = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json();
    const session = await inspector(targets[0].webSocketDebuggerUrl as string);
    await session.send("Profiler.enable");
    await session.send("Profiler.setSamplingInterval", { interval: 200 });
    const seconds = Number(values.seconds);
    const target = { url, headers: {} };
    // Warm up first so the profile shows optimized code.
    await runWrk(target, {
      connections: 64,
      seconds: 2,
      promptBytes: 0,
      cpus: "0",
      workDir: runDir,
    });
    await session.send("Profiler.start");
    let load: string;
    if (values.scenario === "stream") {
      const result = await runStreams(target, {
        cpus: "0",
        flags: ["--streams", "1000", "--ramp-ms", "1000", "--deadline-s", "60"],
      });
      load = `1000 streams × 200 chunks / 20 ms: ${result.completed} ok, TTFT p99 ` +
        `${result.ttft.p99.toFixed(1)} ms`;
    } else {
      const result = await runWrk(target, {
        connections: 64,
        seconds,
        promptBytes: 0,
        cpus: "0",
        workDir: runDir,
      });
      load = `wrk 64 connections ${seconds} s: ${Math.round(result.rps)} req/s under the profiler`;
    }
    const { profile } = await session.send("Profiler.stop") as { profile: Profile };
    const { rows, groups, frames } = selfTimes(profile);
    // The source of the hottest anonymous runtime functions, which have no name to go by.
    await session.send("Debugger.enable");
    const sources: string[] = [];
    for (const [key] of rows.filter(([k]) => k.startsWith("(anonymous) ext:")).slice(0, 4)) {
      const frame = frames.get(key)!.callFrame;
      const { scriptSource } = await session.send("Debugger.getScriptSource", {
        scriptId: frame.scriptId,
      }) as { scriptSource: string };
      const line = scriptSource.split("\n")[frame.lineNumber] ?? "";
      const code = line.slice(frame.columnNumber, frame.columnNumber + 160).replaceAll("`", "'");
      sources.push(`- \`${key}\`: \`${code}…\``);
    }
    session.close();
    const raw = `${runDir}/llmstream-${values.scenario}.cpuprofile`;
    Deno.writeTextFileSync(raw, JSON.stringify(profile));
    const skip = new Set(["(idle)", INSPECTOR]);
    const busy = groups.filter(([name]) => !skip.has(name)).reduce((sum, [, ms]) => sum + ms, 0);
    const ours = rows.filter(([name]) =>
      / (gateway|strategies|plugins|config|admin|scrape)\//.test(name)
    );
    const pct = (ms: number) => `${((100 * ms) / busy).toFixed(1)}%`;
    const report = [
      `# LLMStream CPU profile (${values.scenario})`,
      "",
      `Load: ${load}. Inspector sampling every 200 µs; shares are of busy samples ` +
      `(${(busy / 1000).toFixed(1)} s), leaving out idle time and what only the attached ` +
      "inspector costs (it reports every fetch). The profiler sees the JS thread: Rust work of " +
      `ops shows as the op's self time. Raw profile: \`${raw.replace(REPO + "/", "")}\`.`,
      "",
      "| group | self ms | share |",
      "| --- | --: | --: |",
      ...groups.filter(([name]) => name !== "(idle)").map(([name, ms]) =>
        `| ${name} | ${ms.toFixed(0)} | ${skip.has(name) ? "–" : pct(ms)} |`
      ),
      "",
      "Top functions by self time:",
      "",
      ...fnTable(rows.filter(([name]) => !name.startsWith("(idle)")), Number(values.top), pct),
      "",
      "Where the hottest anonymous runtime functions start:",
      "",
      ...sources,
      "",
      "LLMStream's own functions by self time:",
      "",
      ...fnTable(ours, Number(values.top), pct),
      "",
    ].join("\n");
    Deno.writeTextFileSync(values.out, report);
    console.log(report);
    return 0;
  } finally {
    await gateway.stop();
    await upstream.stop();
  }
}

if (import.meta.main) Deno.exit(await main());
