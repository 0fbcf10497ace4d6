/**
 * Load generators for the proxy benchmark: `wrk` (Debian's package) for fixed-concurrency runs, and
 * the Deno client (`bench/common/client.ts`) for fixed-rate and streaming runs. Both run pinned to
 * the load CPU.
 *
 * @module
 */
import { chatBody, type RateResult } from "./client.ts";
import type { StreamResult } from "./sse_client.ts";

/** Where and what to send. */
export interface LoadTarget {
  /** Full URL of the chat completions endpoint. */
  url: string;
  /** Extra headers the contender needs. */
  headers: Record<string, string>;
}

/** What a `wrk` run measured. */
export interface WrkResult {
  /** Requests completed. */
  requests: number;
  /** Requests per second. */
  rps: number;
  /** Median latency, ms. */
  p50: number;
  /** 99th percentile latency, ms. */
  p99: number;
  /** Socket errors plus non-2xx answers. */
  errors: number;
  /** Seconds the run took. */
  seconds: number;
}

/** Options for {@link runWrk}. */
export interface WrkOptions {
  /** Open connections. */
  connections: number;
  /** Seconds to run (an upper bound when `limit` is set). */
  seconds: number;
  /** Prompt size in bytes. */
  promptBytes: number;
  /** Stop after this many responses (optional). */
  limit?: number;
  /** CPU list for the load generator. */
  cpus: string;
  /** Folder for the script and body files. */
  workDir: string;
}

function luaString(text: string): string {
  return `"${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/**
 * Runs `wrk` with one thread against a target.
 *
 * @param target URL and headers.
 * @param options Connections, duration, body size, optional request limit.
 * @returns Throughput and latency.
 */
export async function runWrk(target: LoadTarget, options: WrkOptions): Promise<WrkResult> {
  const bodyFile = `${options.workDir}/body_${options.promptBytes}.json`;
  Deno.writeTextFileSync(bodyFile, chatBody(options.promptBytes, false));
  const lines = [
    `local f = io.open(${luaString(bodyFile)}, "rb")`,
    'wrk.body = f:read("*a")',
    "f:close()",
    'wrk.method = "POST"',
    'wrk.headers["Content-Type"] = "application/json"',
    ...Object.entries(target.headers).map(([k, v]) =>
      `wrk.headers[${luaString(k)}] = ${luaString(v)}`
    ),
  ];
  if (options.limit !== undefined) {
    lines.push(
      "local count = 0",
      "function response(status, headers, body)",
      "  count = count + 1",
      `  if count >= ${options.limit} then wrk.thread:stop() end`,
      "end",
    );
  }
  const script = `${options.workDir}/wrk_${crypto.randomUUID().slice(0, 8)}.lua`;
  Deno.writeTextFileSync(script, lines.join("\n") + "\n");
  const output = await new Deno.Command("taskset", {
    args: [
      "-c",
      options.cpus,
      "wrk",
      "-t1",
      `-c${options.connections}`,
      `-d${options.seconds}s`,
      "--timeout",
      "10s",
      "--latency",
      "-s",
      script,
      target.url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  Deno.removeSync(script);
  const text = new TextDecoder().decode(output.stdout);
  return parseWrk(text + new TextDecoder().decode(output.stderr));
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === "us" ? n / 1000 : unit === "s" ? n * 1000 : unit === "m" ? n * 60_000 : n;
}

/**
 * Reads `wrk --latency` output.
 *
 * @param text What wrk printed.
 * @returns The figures; NaN where wrk printed none.
 */
export function parseWrk(text: string): WrkResult {
  const latency = (p: string): number => {
    const match = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(text);
    return match ? toMs(match[1]!, match[2]!) : NaN;
  };
  const done = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(text);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const socketErrors = socket ? socket.slice(1).reduce((sum, value) => sum + Number(value), 0) : 0;
  return {
    requests: done ? Number(done[1]) : 0,
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN),
    p50: latency("50"),
    p99: latency("99"),
    errors: non2xx + socketErrors,
    seconds: done ? toMs(done[2]!, done[3]!) / 1000 : NaN,
  };
}

/** Options for the Deno client runs. */
export interface ClientOptions {
  /** CPU list for the client. */
  cpus: string;
  /** Extra client flags, e.g. `["--rate", "500"]`. */
  flags: string[];
}

async function runClient<T>(mode: string, target: LoadTarget, options: ClientOptions): Promise<T> {
  const output = await new Deno.Command("taskset", {
    args: [
      "-c",
      options.cpus,
      Deno.execPath(),
      "run",
      "--allow-net",
      "--allow-read",
      new URL("./client.ts", import.meta.url).pathname,
      mode,
      "--url",
      target.url,
      "--headers",
      JSON.stringify(target.headers),
      ...options.flags,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout).trim();
  if (!output.success || !text) {
    throw new Error(`proxy_client ${mode} failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return JSON.parse(text) as T;
}

/**
 * Open-loop requests at a fixed rate.
 *
 * @param target URL and headers.
 * @param options CPUs and flags (`--rate`, `--duration-s`).
 * @returns Latency figures.
 */
export function runRate(target: LoadTarget, options: ClientOptions): Promise<RateResult> {
  return runClient<RateResult>("rate", target, options);
}

/**
 * Concurrent SSE streams.
 *
 * @param target URL and headers.
 * @param options CPUs and flags (`--streams`, `--ramp-ms`, `--deadline-s`, `--chunks`).
 * @returns TTFT and gap figures.
 */
export function runStreams(target: LoadTarget, options: ClientOptions): Promise<StreamResult> {
  return runClient<StreamResult>("stream", target, options);
}
