/**
 * One benchmark run: a fresh fleet, the real gateway over HTTP (in-process `startGateway` with a
 * `MetricsFeed`, as `tests/stack.ts` starts it) using one strategy, and a light open-loop client
 * that sends a trace's requests at their offsets (one streaming fetch each) and times the first
 * content chunk and the end of each stream.
 *
 * @module
 */
import { loadSpecText } from "../config/load.ts";
import { Gateway } from "../gateway/gateway.ts";
import { MetricsFeed } from "../gateway/metrics_feed.ts";
import { startGateway } from "../gateway/server.ts";
import { type FleetServer, MODEL, SPEEDS, startFleet } from "./routing_fleet.ts";
import { setOracleFleet } from "./routing_oracle.ts";
import { type RunSummary, type Sample, summarise } from "./routing_stats.ts";
import type { Trace, TraceRequest } from "./routing_traces.ts";

/** The oracle baseline's name in tables; it is a strategy file of the benchmark. */
export const ORACLE = "oracle";

/** How a run is set up. */
export interface RunConfig {
  /** A built-in strategy name, or {@link ORACLE}. */
  strategy: string;
  /** `metrics_update_interval` in seconds. */
  interval: number;
  /** Seed for the strategies that draw random numbers. */
  seed: number;
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

/** Seconds a request may take before the client gives up on it (it then counts as an error). */
const REQUEST_TIMEOUT_S = 180;

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
  const weighted = config.strategy === "weighted_round_robin";
  const strategy = config.strategy === ORACLE
    ? decodeURIComponent(new URL("./routing_oracle.ts", import.meta.url).pathname)
    : config.strategy;
  return {
    models: {
      [MODEL]: {
        servers: urls.map((url, i) => ({ url, weight: weighted ? SPEEDS[i] ?? 1 : 1 })),
        strategy,
        strategy_options: { ...(needsSeed(config.strategy) ? { seed: config.seed } : {}) },
      },
    },
    metrics_update_interval: config.interval,
  };
}

function needsSeed(strategy: string): boolean {
  return strategy === "random" || strategy === "power_of_two";
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
  let lastEnd = start;
  const pending: Promise<Sample>[] = [];
  for (const request of trace.requests) {
    await sleep(start + request.at - performance.now());
    pending.push(
      send(endpoint, request).then((sample) => {
        lastEnd = Math.max(lastEnd, performance.now());
        return sample;
      }),
    );
  }
  const samples = await Promise.all(pending);
  clearInterval(monitor);
  return summarise(samples, {
    strategy: context.config.strategy,
    trace: trace.name,
    spanSeconds: (lastEnd - start) / 1000,
    received: context.fleet.map((server) => server.sim.state().received),
    lags,
  });
}

/** Sends one streaming chat request and times it. */
async function send(endpoint: string, request: TraceRequest): Promise<Sample> {
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
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_S * 1000),
    });
    if (response.status !== 200 || response.body === null) {
      await response.body?.cancel();
      return { ttftMs, e2eMs: performance.now() - sent, ok: false };
    }
    const decoder = new TextDecoder();
    let head = "";
    let tail = "";
    for await (const chunk of response.body) {
      const text = decoder.decode(chunk, { stream: true });
      if (ttftMs === undefined) {
        head += text;
        // The first chunk of a chat stream carries only the role; content chunks start so.
        if (head.includes('"delta":{"content":')) ttftMs = performance.now() - sent;
      }
      tail = (tail + text).slice(-64);
    }
    const ok = ttftMs !== undefined && tail.includes("data: [DONE]");
    return { ttftMs, e2eMs: performance.now() - sent, ok };
  } catch {
    return { ttftMs, e2eMs: performance.now() - sent, ok: false };
  }
}

function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}
