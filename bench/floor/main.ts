/**
 * `deno task bench:floor`: what `Deno.serve` itself costs on this machine, to read the gateway's
 * figures against. Three measurements, each server pinned to CPU 1 and wrk (and the bench
 * upstream) to CPU 0, as in `deno task bench`:
 *
 * 1. A fixed answer just under and just over 512 bytes of response: `Deno.serve` writes a response
 *    whose head and body pass ~512 bytes in two `sendto` calls instead of one.
 * 2. Minimal proxies on the gateway's HTTP/1.1 pool: `Deno.serve` with no header work, with the
 *    gateway's header work, and the same done by hand on `Deno.listen`; then LLMStream itself.
 * 3. Memory of 1,000 open connections: after a JSON answer (keep-alive) and while each waits on an
 *    SSE response that sends nothing.
 *
 * Writes `bench/results/serve-floor.md`. Run: `deno task bench:floor [--seconds 8]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startUpstreamProcess } from "../common/upstream_process.ts";
import { llmstreamArgs } from "../common/peer_launch.ts";
import { runWrk } from "../common/load.ts";
import { cpuSeconds, freePort, memoryBytes, spawnPinned, waitUntil } from "../common/proc.ts";
import type { Spawned } from "../common/proc.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const SERVERS = `${REPO}/bench/floor_servers.ts`;
const PATH = "/v1/chat/completions";
const LOAD_CPUS = "0";
const SERVER_CPUS = "1";
const encoder = new TextEncoder();

interface Started {
  process: Spawned;
  url: string;
  port: number;
}

async function start(argv: string[], port: number, log: string): Promise<Started> {
  const process = spawnPinned(argv, { cpus: SERVER_CPUS, log });
  const url = `http://127.0.0.1:${port}`;
  const notReady = await waitUntil(async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  }, { timeoutMs: 20_000, process });
  if (notReady !== undefined) {
    await process.stop();
    throw new Error(`${argv.join(" ")} did not start: ${notReady}`);
  }
  return { process, url, port };
}

/** Starts one of `bench/floor/servers.ts`'s servers on a free port. */
function floorServer(args: string[], log: string): Promise<Started> {
  const port = freePort();
  return start([Deno.execPath(), "run", "-A", SERVERS, ...args, "--port", String(port)], port, log);
}

/** Loads a server once it is up, then stops it. */
async function measured(
  what: string,
  options: { server: Promise<Started>; seconds: number; dir: string },
): Promise<LoadRow> {
  const server = await options.server;
  try {
    return await loadRow(what, server, options.seconds, options.dir);
  } finally {
    await server.process.stop();
  }
}

/** `sendto` calls made by a process while `run` runs, when `perf` can count them. */
async function countSendto<T>(
  pid: number,
  options: { dir: string; run: () => Promise<T> },
): Promise<[T, number | null]> {
  let perf: Deno.ChildProcess | undefined;
  const out = `${options.dir}/perf.txt`;
  try {
    perf = new Deno.Command("perf", {
      args: ["stat", "-x,", "-e", "syscalls:sys_enter_sendto", "-p", String(pid), "-o", out],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await new Promise((resolve) => setTimeout(resolve, 300));
  } catch {
    perf = undefined;
  }
  const result = await options.run();
  if (!perf) return [result, null];
  perf.kill("SIGINT");
  await perf.status;
  let text = "";
  try {
    text = Deno.readTextFileSync(out);
  } catch {
    // perf could not attach (no permission): no count.
  }
  const line = text.split("\n").find((l) => l.includes("sendto"));
  const count = Number(line?.split(",")[0]);
  return [result, Number.isFinite(count) ? count : null];
}

interface LoadRow {
  what: string;
  rps: number;
  cpuUs: number;
  sendtoPerRequest: number | null;
}

async function loadRow(what: string, server: Started, seconds: number, dir: string) {
  const before = cpuSeconds(server.process.pid);
  const [wrk, sendto] = await countSendto(server.process.pid, {
    dir,
    run: () =>
      runWrk({ url: server.url + PATH, headers: {} }, {
        connections: 64,
        seconds,
        promptBytes: 0,
        cpus: LOAD_CPUS,
        workDir: dir,
      }),
  });
  const cpu = cpuSeconds(server.process.pid) - before;
  return {
    what,
    rps: wrk.rps,
    cpuUs: (cpu * 1e6) / wrk.requests,
    sendtoPerRequest: sendto === null ? null : sendto / wrk.requests,
  };
}

/** RSS growth of the `streams` server while 1,000 connections are held open. */
async function heldRss(dir: string, stream: boolean, connections: number): Promise<number> {
  const server = await floorServer(["streams"], `${dir}/streams.log`);
  const port = server.port;
  const held: Deno.Conn[] = [];
  try {
    const idle = memoryBytes(server.process.pid);
    const body = `{"model":"bench","messages":[],"stream":${stream}}`;
    const request = encoder.encode(
      `POST ${PATH} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
        `content-length: ${body.length}\r\n\r\n${body}`,
    );
    for (let i = 0; i < connections; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      held.push(conn);
      await conn.write(request);
      // Read the answer's head (and the JSON body): the server has answered this one.
      await conn.read(new Uint8Array(4096));
    }
    const rss = memoryBytes(server.process.pid);
    return rss - idle;
  } finally {
    for (const conn of held) conn.close();
    await server.process.stop();
  }
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { seconds: { type: "string", default: "8" } },
  });
  const seconds = Number(values.seconds);
  const dir = Deno.makeTempDirSync({ prefix: "llmstream-floor-" });
  const rows: LoadRow[] = [];
  for (const bytes of [500, 520]) {
    rows.push(
      await measured(`Deno.serve, fixed ${bytes}-byte response`, {
        server: floorServer(["answer", "--bytes", String(bytes)], `${dir}/answer.log`),
        seconds,
        dir,
      }),
    );
  }
  const upstream = await startUpstreamProcess({ cpus: LOAD_CPUS, log: `${dir}/upstream.log` });
  try {
    const proxies: [string, string[]][] = [
      ["Deno.serve proxy, no header work", ["proxy"]],
      ["Deno.serve proxy, the gateway's header work", ["proxy", "--headers"]],
      ["Deno.listen proxy by hand, the same header work", ["raw-proxy"]],
    ];
    for (const [what, mode] of proxies) {
      const args = [...mode, "--upstream", upstream.url];
      rows.push(
        await measured(what, { server: floorServer(args, `${dir}/proxy.log`), seconds, dir }),
      );
    }
    const spec = `${dir}/llmstream.json`;
    Deno.writeTextFileSync(
      spec,
      JSON.stringify({ models: { bench: { servers: [upstream.url] } } }),
    );
    const port = freePort();
    const gateway = start(llmstreamArgs(REPO, { spec, port }), port, `${dir}/llmstream.log`);
    rows.push(
      await measured("LLMStream (`--log-level warning`)", { server: gateway, seconds, dir }),
    );
  } finally {
    await upstream.process.stop();
  }
  const keepAlive = await heldRss(dir, false, 1000);
  const streams = await heldRss(dir, true, 1000);

  const lines = [
    "# What `Deno.serve` itself costs (`deno task bench:floor`)",
    "",
    `Deno ${Deno.version.deno}; ${navigator.hardwareConcurrency} CPUs; server on CPU ${SERVER_CPUS}, ` +
    `wrk (1 thread, 64 connections, ${seconds} s) and the bench upstream on CPU ${LOAD_CPUS}. ` +
    "CPU is the server process's user + system time per request; `sendto` per request is counted " +
    "with `perf` where it can (n/a otherwise).",
    "",
    "| server | req/s | CPU µs / request | sendto / request |",
    "| --- | --: | --: | --: |",
    ...rows.map((row) =>
      `| ${row.what} | ${fmt(row.rps)} | ${fmt(row.cpuUs, 1)} | ${
        row.sendtoPerRequest === null ? "n/a" : fmt(row.sendtoPerRequest, 2)
      } |`
    ),
    "",
    "Memory of 1,000 connections held open on a `Deno.serve` server (RSS growth over idle):",
    "",
    "| connections | RSS growth MB | per connection KB |",
    "| --- | --: | --: |",
    `| keep-alive, after a JSON answer | ${fmt(keepAlive / 1e6, 1)} | ${
      fmt(keepAlive / 1e3 / 1000, 1)
    } |`,
    `| each waiting on an SSE response that sends nothing | ${fmt(streams / 1e6, 1)} | ${
      fmt(streams / 1e3 / 1000, 1)
    } |`,
    "",
  ];
  const out = `${REPO}/bench/results/serve-floor.md`;
  Deno.writeTextFileSync(out, lines.join("\n"));
  console.log(lines.join("\n"));
  console.error(`Wrote ${out}`);
  Deno.removeSync(dir, { recursive: true });
}
