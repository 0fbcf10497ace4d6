/**
 * `deno task bench:profile-v8`: LLMStream's CPU profile without the inspector, for the streaming
 * case, where an attached inspector tees every fetch body and distorts the picture.
 *
 * Runs LLMStream (CPU 1) with `--v8-flags=--prof` behind the bench upstream, loads it like
 * `bench/proxy/main.ts` does (small requests with wrk, or 1,000 SSE streams), stops it, and summarises
 * V8's tick log with Node's tick processor (`node --prof-process`; Node's V8 is older than Deno's,
 * so a few frames may stay unnamed). Writes `bench/results/proxy-profile-v8-<scenario>.md`.
 *
 * Run: `deno task bench:profile-v8 [--scenario small|stream] [--seconds 10] [--top 30]`.
 *
 * @module
 */
import { startUpstreamProcess } from "../common/upstream_process.ts";
import { llmstreamArgs } from "../common/peer_launch.ts";
import { parseArgs } from "node:util";
import { runStreams, runWrk } from "../common/load.ts";
import { freePort, spawnPinned, waitUntil } from "../common/proc.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** The lines of one `[Section]` of the tick processor's output, up to `top` entries. */
function section(text: string, name: string, top: number): string[] {
  const lines = text.split("\n");
  const start = lines.findIndex((line) => line.trim() === `[${name}]:`);
  if (start < 0) return [];
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim().startsWith("[") && out.length > 0) break;
    if (line.trim() === "" && out.length > 1) break;
    out.push(line);
    if (out.length >= top + 1) break;
  }
  return out;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      scenario: { type: "string", default: "stream" },
      seconds: { type: "string", default: "10" },
      top: { type: "string", default: "30" },
    },
  });
  const runDir = `${REPO}/.cache/bench/run`;
  Deno.mkdirSync(runDir, { recursive: true });
  const log = `${runDir}/llmstream-${values.scenario}-v8.log`;
  try {
    Deno.removeSync(log);
  } catch {
    // none yet
  }
  const { url: upstreamUrl, process: upstream } = await startUpstreamProcess({
    cpus: "0",
    log: `${runDir}/profile-upstream.log`,
  });
  const spec = `${runDir}/profile-llmstream.json`;
  Deno.writeTextFileSync(
    spec,
    JSON.stringify({ models: { bench: { servers: [upstreamUrl] } } }),
  );
  const port = freePort();
  const gateway = spawnPinned(
    llmstreamArgs(REPO, {
      spec,
      port,
      flags: [`--v8-flags=--prof,--no-logfile-per-isolate,--logfile=${log}`],
    }),
    { cpus: "1", log: `${runDir}/profile-llmstream.log` },
  );
  const url = `http://127.0.0.1:${port}/v1/chat/completions`;
  let load = "";
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
    const target = { url, headers: {} };
    if (values.scenario === "stream") {
      const result = await runStreams(target, {
        cpus: "0",
        flags: ["--streams", "1000", "--ramp-ms", "1000", "--deadline-s", "60"],
      });
      load = `1000 streams × 200 chunks / 20 ms (TTFT p99 ${result.ttft.p99.toFixed(0)} ms)`;
    } else {
      const result = await runWrk(target, {
        connections: 64,
        seconds: Number(values.seconds),
        promptBytes: 0,
        cpus: "0",
        workDir: runDir,
      });
      load = `wrk, 64 connections, ${values.seconds} s (${Math.round(result.rps)} req/s)`;
    }
  } finally {
    await gateway.stop(10_000);
    await upstream.stop();
  }
  const out = await new Deno.Command("node", {
    args: ["--prof-process", log],
    stdout: "piped",
    stderr: "null",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  const top = Number(values.top);
  const report = [
    `# LLMStream CPU profile without the inspector (${values.scenario})`,
    "",
    `Load: ${load}. V8 \`--prof\` ticks (1 ms), processed by \`node --prof-process\`. ` +
    '"deno" in the shared libraries is Rust (HTTP server, fetch client, ops); JavaScript ' +
    "entries are self ticks. Log: `" + log.replace(REPO + "/", "") + "`.",
    "",
    "```",
    text.split("\n")[0] ?? "",
    ...section(text, "Shared libraries", 6),
    "",
    ...section(text, "JavaScript", top),
    "",
    ...section(text, "Summary", 10),
    "```",
    "",
  ].join("\n");
  const file = `${REPO}/bench/results/proxy-profile-v8-${values.scenario}.md`;
  Deno.writeTextFileSync(file, report);
  console.log(report);
  return 0;
}

if (import.meta.main) Deno.exit(await main());
