/**
 * The proxy benchmark's scenarios, run against one started contender:
 * (a) small requests at fixed concurrency, (e) RSS before and after many requests, (b) a fixed
 * rate, (d) 100 KB prompts, (c) concurrent SSE streams. Each scenario's failure is recorded and the
 * next one runs.
 *
 * @module
 */
import type { RateResult } from "../common/client.ts";
import { type LoadTarget, runRate, runStreams, runWrk, type WrkResult } from "../common/load.ts";
import type { RunningPeer } from "./peers.ts";
import {
  busyPercent,
  cpuSeconds,
  cpuSnapshot,
  cpuTicks,
  foreignCpuSeconds,
  memoryBytes,
  sampleRss,
} from "../common/proc.ts";
import type { StreamResult } from "../common/sse_client.ts";

/** The benchmark's knobs. */
export interface BenchConfig {
  /** Scenarios to run, from `a` to `e`. */
  scenarios: readonly string[];
  /** Connections for (a). */
  concurrency: number;
  /** Seconds measured in (a) and (d). */
  seconds: number;
  /** Seconds of warm-up before (a) and (d). */
  warmupSeconds: number;
  /** Requests per second in (b). */
  rate: number;
  /** Seconds of (b). */
  rateSeconds: number;
  /** Concurrent streams in (c). */
  streams: number;
  /** SSE chunks per stream. */
  chunks: number;
  /** Milliseconds between chunks. */
  intervalMs: number;
  /** Milliseconds over which the streams open. */
  rampMs: number;
  /** Prompt bytes in (d). */
  bigPromptBytes: number;
  /** Connections in (d). */
  bigConcurrency: number;
  /** Requests in the leak check (e). */
  leakRequests: number;
  /** Upper bound in seconds for the leak check's main run. */
  leakMaxSeconds: number;
  /** CPUs of the load generator and the upstream. */
  loadCpus: string;
  /** Folder for scripts and bodies. */
  workDir: string;
  /** Process ids that are ours (the orchestrator, the upstream) for the foreign-load figure. */
  ownPids: number[];
}

/** (a) and (d): a `wrk` run with the CPUs' load around it. */
export interface ThroughputResult extends WrkResult {
  /** Busy percent of each CPU during the run. */
  cpuBusy: number[];
  /** CPU seconds other processes of the machine used during the run. */
  foreignCpuS: number;
  /** CPU seconds the contender (all its threads and children) used during the run. */
  cpuS?: number;
}

/** (c) with the contender's costs. */
export interface StreamsResult extends StreamResult {
  /** CPU seconds the contender used. */
  cpuS?: number;
  /** Peak RSS of the contender, sampled every 100 ms, MB. */
  peakRssMb?: number;
  /** Busy percent of each CPU during the run. */
  cpuBusy: number[];
  /** CPU seconds other processes used. */
  foreignCpuS: number;
}

/** (e): memory after warm-up and after the long run. */
export interface LeakResult {
  /** Median RSS over the first tenth of the run (after warm-up, under load), MB. */
  warmRssMb: number;
  /** Median RSS over the last tenth of the run (under load), MB. */
  afterRssMb: number;
  /** Requests completed in the main run. */
  requests: number;
  /** Requests that failed. */
  errors: number;
  /** Seconds the main run took. */
  seconds: number;
}

/** Everything measured for one contender. */
export interface PeerResult {
  /** Contender name. */
  name: string;
  /** `ok`, or `failed` with `reason`. */
  status: "ok" | "failed";
  /** Why it failed to start. */
  reason?: string;
  /** Version. */
  version?: string;
  /** Command line. */
  how?: string;
  /** RSS after start-up and one request, MB. */
  idleRssMb?: number;
  /** (a) */
  throughput?: ThroughputResult;
  /** (b) */
  rate?: RateResult;
  /** (c) */
  streams?: StreamsResult;
  /** (d) */
  big?: ThroughputResult;
  /** (e) */
  leak?: LeakResult;
  /** Scenario failures. */
  notes: string[];
}

const MB = 1024 * 1024;
/** Milliseconds between RSS samples in the leak check. */
const LEAK_SAMPLE_MS = 500;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until the contender is idle (under 10% of a CPU for 1 s), at most `maxMs`. */
async function settle(pid: number | undefined, maxMs = 60_000): Promise<boolean> {
  if (pid === undefined) return true;
  const deadline = performance.now() + maxMs;
  let before = cpuSeconds(pid);
  while (performance.now() < deadline) {
    await sleep(1000);
    const now = cpuSeconds(pid);
    if (now - before < 0.1) return true;
    before = now;
  }
  return false;
}

function roots(config: BenchConfig, peer: RunningPeer): number[] {
  return [...config.ownPids, ...(peer.process ? [peer.process.pid] : [])];
}

async function measured(
  config: BenchConfig,
  peer: RunningPeer,
  run: () => Promise<WrkResult>,
): Promise<ThroughputResult> {
  const ticks = cpuTicks();
  const snapshot = cpuSnapshot();
  const pid = peer.process?.pid;
  const cpuBefore = pid === undefined ? 0 : cpuSeconds(pid);
  const result = await run();
  return {
    ...result,
    cpuBusy: busyPercent(ticks, cpuTicks()),
    foreignCpuS: foreignCpuSeconds(snapshot, roots(config, peer)),
    ...(pid !== undefined && { cpuS: cpuSeconds(pid) - cpuBefore }),
  };
}

function wrkOptions(config: BenchConfig, connections: number, seconds: number, bytes: number) {
  return {
    connections,
    seconds,
    promptBytes: bytes,
    cpus: config.loadCpus,
    workDir: config.workDir,
  };
}

async function throughput(config: BenchConfig, peer: RunningPeer, target: LoadTarget) {
  await runWrk(target, wrkOptions(config, config.concurrency, config.warmupSeconds, 0));
  return measured(
    config,
    peer,
    () => runWrk(target, wrkOptions(config, config.concurrency, config.seconds, 0)),
  );
}

async function big(config: BenchConfig, peer: RunningPeer, target: LoadTarget) {
  const options = wrkOptions(config, config.bigConcurrency, config.warmupSeconds, 0);
  await runWrk(target, { ...options, promptBytes: config.bigPromptBytes });
  return measured(config, peer, () =>
    runWrk(target, {
      ...options,
      seconds: config.seconds,
      promptBytes: config.bigPromptBytes,
    }));
}

/**
 * The leak check: after a warm-up, RSS is sampled through a long run and compared between its
 * first and last tenth, both under load. (Comparing an idle reading before the run with one after
 * it measured the runtime's heap sizing, not a leak: V8 shrinks its young generation when idle and
 * grows it again under load.)
 */
async function leak(config: BenchConfig, pid: number, target: LoadTarget): Promise<LeakResult> {
  const warmup = Math.max(1000, Math.round(config.leakRequests / 10));
  const options = wrkOptions(config, config.concurrency, config.leakMaxSeconds, 0);
  await runWrk(target, {
    ...options,
    limit: warmup,
    seconds: Math.ceil(config.leakMaxSeconds / 4),
  });
  const samples: [number, number][] = [];
  const started = performance.now();
  const timer = setInterval(() => {
    samples.push([performance.now() - started, memoryBytes(pid) / MB]);
  }, LEAK_SAMPLE_MS);
  const run = await runWrk(target, { ...options, limit: config.leakRequests });
  clearInterval(timer);
  const duration = performance.now() - started;
  const early = samples.filter(([at]) => at <= duration * 0.1).map(([, mb]) => mb);
  const late = samples.filter(([at]) => at >= duration * 0.9).map(([, mb]) => mb);
  const first = samples[0]?.[1] ?? memoryBytes(pid) / MB;
  const last = samples.at(-1)?.[1] ?? memoryBytes(pid) / MB;
  return {
    warmRssMb: early.length > 0 ? median(early) : first,
    afterRssMb: late.length > 0 ? median(late) : last,
    requests: run.requests,
    errors: run.errors,
    seconds: run.seconds,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function streams(config: BenchConfig, peer: RunningPeer, target: LoadTarget) {
  const pid = peer.process?.pid;
  const cpuBefore = pid === undefined ? 0 : cpuSeconds(pid);
  const sampler = pid === undefined ? undefined : sampleRss(pid);
  const ticks = cpuTicks();
  const snapshot = cpuSnapshot();
  const deadlineS = Math.ceil((config.rampMs + config.chunks * config.intervalMs) / 1000) + 60;
  const result = await runStreams(target, {
    cpus: config.loadCpus,
    flags: [
      "--streams",
      String(config.streams),
      "--ramp-ms",
      String(config.rampMs),
      "--deadline-s",
      String(deadlineS),
    ],
  });
  const out: StreamsResult = {
    ...result,
    cpuBusy: busyPercent(ticks, cpuTicks()),
    foreignCpuS: foreignCpuSeconds(snapshot, roots(config, peer)),
  };
  if (pid !== undefined) {
    out.cpuS = cpuSeconds(pid) - cpuBefore;
    out.peakRssMb = sampler!.stop() / MB;
  }
  return out;
}

/**
 * Runs the scenarios against one started contender.
 *
 * @param config The knobs.
 * @param peer The started contender.
 * @returns What was measured, with notes for scenarios that failed.
 */
export async function runScenarios(config: BenchConfig, peer: RunningPeer): Promise<PeerResult> {
  const result: PeerResult = {
    name: "",
    status: "ok",
    version: peer.version,
    how: peer.how,
    notes: [],
  };
  const target: LoadTarget = { url: peer.url, headers: peer.headers };
  const pid = peer.process?.pid;
  const step = async (name: string, run: () => Promise<void>): Promise<void> => {
    // A slow contender may still be working off the previous scenario's backlog.
    if (!(await settle(pid))) result.notes.push(`${name}: started while still busy after 60 s`);
    try {
      await run();
    } catch (error) {
      result.notes.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  await sleep(1000);
  if (pid !== undefined) result.idleRssMb = memoryBytes(pid) / MB;
  const has = (name: string): boolean => config.scenarios.includes(name);
  if (has("a")) {
    await step("(a) throughput", async () => {
      result.throughput = await throughput(config, peer, target);
    });
  }
  if (pid !== undefined && has("e")) {
    await step("(e) leak check", async () => {
      result.leak = await leak(config, pid, target);
    });
  }
  if (has("b")) {
    await step("(b) fixed rate", async () => {
      result.rate = await runRate(target, {
        cpus: config.loadCpus,
        flags: ["--rate", String(config.rate), "--duration-s", String(config.rateSeconds)],
      });
    });
  }
  if (has("d")) {
    await step("(d) 100 KB prompts", async () => {
      result.big = await big(config, peer, target);
    });
  }
  if (has("c")) {
    await step("(c) streams", async () => {
      result.streams = await streams(config, peer, target);
      const fewest = result.streams.fewestEvents;
      if (fewest !== null && fewest < config.chunks + 1) {
        result.notes.push(
          `(c) streams: some arrived re-chunked (fewest events: ${fewest} of ${config.chunks + 1})`,
        );
      }
      if (result.streams.errors > 0) {
        result.notes.push(
          `(c) streams: ${result.streams.errors} of ${result.streams.started} failed; first: ` +
            (result.streams.firstError ?? "?"),
        );
      }
    });
  }
  return result;
}
