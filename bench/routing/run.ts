/**
 * One benchmark run: a fresh fleet, the real gateway over HTTP (in-process `startGateway` with a
 * `MetricsFeed`, as `tests/stack.ts` starts it) using one strategy, and a light open-loop client
 * that sends a trace's requests at their offsets (one streaming fetch each) and times the first
 * content chunk and the end of each stream.
 *
 * @module
 */
import { loadSpecText } from "../../config/load.ts";
import { Gateway } from "../../gateway/gateway.ts";
import { MetricsFeed } from "../../fleet/metrics_feed.ts";
import { startGateway } from "../../gateway/server.ts";
import { type FleetServer, MODEL, SPEEDS, startFleet } from "./fleet.ts";
import { setOracleFleet } from "./oracle.ts";
import { type RunSummary, type Sample, summarise } from "./stats.ts";
import type { Trace, TraceRequest } from "./traces.ts";

/** The oracle baseline's name in tables; it is a strategy file of the benchmark. */
export const ORACLE = "oracle";

/** How a run is set up. */
export interface RunConfig {
  /** A built-in strategy name, {@link ORACLE}, or `name{json}` (a variant with extra options). */
  strategy: string;
  /** `metrics_update_interval` in seconds. */
  interval: number;
  /** Seed for the strategies that draw random numbers. */
  seed: number;
  /** Extra `strategy_options` of `real_time_metrics`. */
  rtmOptions: Record<string, unknown>;
  /** Seconds after the last send at which requests still open are cut (aborted). */
  drainSeconds: number;
}

/** A fleet and gateway ready to run a trace. */
export interface PreparedRun {
  /**
   * Sends the trace's requests and waits for every answer.
   *
   * @param trace The requests.
   * @param startAt When to send the first one, in milliseconds since the epoch.
   * @returns The run's summary.
   */
  run(trace: Trace, startAt: number): Promise<RunSummary>;
  /** Stops the gateway, the feed and the fleet. */
  close(): Promise<void>;
}

/**
 * Starts a fresh fleet and a gateway in front of it, and waits for the first scrape.
 *
 * @param config Strategy, scrape interval and seed.
 * @returns The prepared run.
 */
export async function prepareRun(config: RunConfig): Promise<PreparedRun> {
  const fleet = await startFleet();
  if (config.strategy === ORACLE) setOracleFleet(fleet);
  const spec = specFor(config, fleet.map((server) => server.sim.url));
  const loaded = await loadSpecText(JSON.stringify(spec), { format: "json" });
  const gateway = new Gateway(loaded);
  const feed = new MetricsFeed(gateway);
  const running = startGateway(gateway, { hostname: "127.0.0.1", port: 0 });
  await feed.scrapeNow();
  return {
    run: (trace, startAt) => runTrace(trace, { url: running.url, fleet, config, startAt }),
    async close() {
      await feed.stop();
      await Promise.all(fleet.map((server) => server.sim.close()));
      await running.close();
    },
  };
}

/**
 * The gateway spec of a run: every server has weight 1 (strategies are told nothing of speeds),
 * except under `weighted_round_robin`, whose weights are the speeds.
 */
function specFor(config: RunConfig, urls: string[]): Record<string, unknown> {
  const { name, options } = strategyOf(config);
  const weighted = name === "weighted_round_robin";
  return {
    models: {
      [MODEL]: {
        servers: urls.map((url, i) => ({ url, weight: weighted ? SPEEDS[i] ?? 1 : 1 })),
        strategy: name,
        strategy_options: options,
      },
    },
    metrics_update_interval: config.interval,
  };
}

/**
 * A run's strategy name (or file path) and options from its label: a built-in name,
 * {@link ORACLE}, or `name{json}` for a variant with extra options.
 */
function strategyOf(config: RunConfig): { name: string; options: Record<string, unknown> } {
  const label = config.strategy;
  // The oracle is a strategy file given by path; the loader imports it by the same URL as this
  // module's import, so it reads the fleet registered with setOracleFleet.
  const oracle = decodeURIComponent(new URL("./oracle.ts", import.meta.url).pathname);
  if (label === ORACLE) return { name: oracle, options: {} };
  const brace = label.indexOf("{");
  const name = brace < 0 ? label : label.slice(0, brace);
  const extra: unknown = brace < 0 ? {} : JSON.parse(label.slice(brace));
  return {
    name,
    options: {
      ...(name === "random" || name === "power_of_two" ? { seed: config.seed } : {}),
      ...(name === "real_time_metrics" ? config.rtmOptions : {}),
      ...(extra !== null && typeof extra === "object" ? extra : {}),
    },
  };
}

async function runTrace(
  trace: Trace,
  context: { url: string; fleet: FleetServer[]; config: RunConfig; startAt: number },
): Promise<RunSummary> {
  const endpoint = `${context.url}/v1/chat/completions`;
  await sleep(context.startAt - Date.now());
  const lags: number[] = [];
  let tick = performance.now();
  const monitor = setInterval(() => {
    const now = performance.now();
    lags.push(Math.max(0, now - tick - 20));
    tick = now;
  }, 20);
  const start = performance.now();
  const measureFrom = start + trace.warmupMs;
  let lastEnd = measureFrom;
  let receivedBefore: number[] | undefined;
  const pending: Promise<Sample | undefined>[] = [];
  const cut = new AbortController();
  for (const request of trace.requests) {
    await sleep(start + request.at - performance.now());
    const measured = request.at >= trace.warmupMs;
    if (measured && receivedBefore === undefined) {
      receivedBefore = context.fleet.map((server) => server.sim.state().received);
    }
    pending.push(
      send(endpoint, request, cut.signal).then((sample) => {
        if (!measured) return undefined;
        lastEnd = Math.max(lastEnd, performance.now());
        return sample;
      }),
    );
  }
  const deadline = setTimeout(() => cut.abort(), context.config.drainSeconds * 1000);
  const samples = (await Promise.all(pending)).filter((sample) => sample !== undefined);
  clearTimeout(deadline);
  clearInterval(monitor);
  const before = receivedBefore ?? context.fleet.map(() => 0);
  return summarise(samples, {
    strategy: context.config.strategy,
    trace: trace.name,
    spanSeconds: (lastEnd - measureFrom) / 1000,
    received: context.fleet.map((server, i) => server.sim.state().received - before[i]!),
    lags,
  });
}

/** Sends one streaming chat request and times it. */
async function send(
  endpoint: string,
  request: TraceRequest,
  signal: AbortSignal,
): Promise<Sample> {
  const messages = request.system === ""
    ? [{ role: "user", content: request.user }]
    : [{ role: "system", content: request.system }, { role: "user", content: request.user }];
  const body = JSON.stringify({
    model: MODEL,
    messages,
    max_tokens: request.maxTokens,
    stream: true,
  });
  const sent = performance.now();
  let ttftMs: number | undefined;
  try {
    const response = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal,
    });
    if (response.status !== 200 || response.body === null) {
      await response.body?.cancel();
      return { ttftMs, e2eMs: performance.now() - sent, ok: false, cut: false };
    }
    const decoder = new TextDecoder();
    let head = "";
    let tail = "";
    // Aborting the fetch alone left some streaming bodies open here; cancel the reader as well.
    const reader = response.body.getReader();
    const cancel = () => void reader.cancel().catch(() => {});
    signal.addEventListener("abort", cancel, { once: true });
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      const text = decoder.decode(chunk, { stream: true });
      if (ttftMs === undefined) {
        head += text;
        // The first chunk of a chat stream carries only the role; content chunks start so.
        if (head.includes('"delta":{"content":')) ttftMs = performance.now() - sent;
      }
      tail = (tail + text).slice(-64);
    }
    signal.removeEventListener("abort", cancel);
    const ok = ttftMs !== undefined && tail.includes("data: [DONE]");
    return { ttftMs, e2eMs: performance.now() - sent, ok, cut: !ok && signal.aborted };
  } catch {
    return { ttftMs, e2eMs: performance.now() - sent, ok: false, cut: signal.aborted };
  }
}

function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}
