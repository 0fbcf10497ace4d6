/**
 * A scripted minute of traffic for the dashboard rendering: a real gateway with the metrics plugin
 * (and the metrics feed and health checks, as `main.ts` runs them) in front of five simulated
 * vLLM servers, an open-loop client, and events along the way: a server that answers 500s, then
 * 503s (retried, then ejected), a load surge, a server failing its health checks, and a config
 * reload. `/metrics` is scraped every second, as Prometheus would.
 *
 * @module
 */
import { loadSpecText } from "../../config/load.ts";
import { parsePrometheusText, type Sample } from "../../scrape/prometheus_text.ts";
import type { SimOptions } from "../../sim/server.ts";
import { postJson, type Stack, startStack } from "../../tests/support/stack.ts";
import type { Scrape } from "./promql.ts";

/** Options of {@link runScenario}. */
export interface ScenarioOptions {
  /** Length of the run in seconds (events scale with it; default 60). */
  seconds?: number;
  /** Called after each scrape, e.g. to print progress. */
  onScrape?(scrape: Scrape): void;
}

/** What a run produced. */
export interface ScenarioResult {
  /** Every scrape, oldest first. */
  readonly scrapes: Scrape[];
  /** Events: seconds since the start and what happened. */
  readonly events: { t: number; text: string }[];
}

const LLAMA = "llama-3.1-8b";
const QWEN = "qwen2.5-7b";
const SIM: SimOptions = { ttftMs: 30, itlMs: 15 };

/** The spec; `weights` are qwen's two servers' weighted_round_robin weights. */
function specFor(urls: string[], weights: [number, number]): Record<string, unknown> {
  const [a, b, c, d, e] = urls;
  return {
    models: {
      [LLAMA]: { servers: [a, b, c], strategy: "real_time_metrics" },
      [QWEN]: {
        servers: [{ url: d, weight: weights[0] }, { url: e, weight: weights[1] }],
        strategy: "weighted_round_robin",
      },
    },
    metrics_update_interval: 1,
    health_checks: { interval: 1, timeout: 1, unhealthy_threshold: 2 },
    outlier_detection: { consecutive_failures: 4, cooldown: 4, max_cooldown: 8 },
    retries: { max_attempts: 2, backoff: 0.01 },
    usage: { add_stream_usage: true },
    plugins: ["metrics"],
  };
}

/**
 * Runs the scripted traffic and returns the scrapes.
 *
 * @param options Length and progress callback.
 * @returns Scrapes and events.
 */
export async function runScenario(options: ScenarioOptions = {}): Promise<ScenarioResult> {
  const seconds = options.seconds ?? 60;
  const at = (fraction: number) => fraction * seconds;
  const stack = await startStack({
    sims: [SIM, SIM, { ...SIM, speed: 0.5 }, SIM, SIM],
    spec: (urls) => specFor(urls, [2, 1]),
    scrape: true,
    health: true,
  });
  const events: ScenarioResult["events"] = [];
  const start = performance.now();
  const now = () => (performance.now() - start) / 1000;
  const [, , slow, , flaky] = stack.sims;
  const script: [number, string, () => Promise<void> | void][] = [
    [at(0.13), "qwen server 2 answers 30% 500s", () => flaky!.update({ errorRate: 0.3 })],
    [
      at(0.3),
      "qwen server 2 answers 80% 503s",
      () => flaky!.update({ errorRate: 0.8, errorStatus: 503 }),
    ],
    [at(0.47), "llama server 3 fails health checks", () => slow!.update({ healthStatus: 503 })],
    [at(0.67), "qwen server 2 and llama server 3 recover", () => {
      flaky!.update({ errorRate: 0 });
      slow!.update({ healthStatus: 200 });
    }],
    [at(0.75), "config reload: qwen weights 2:1 -> 1:1", async () => {
      const text = JSON.stringify(specFor(stack.sims.map((sim) => sim.url), [1, 1]));
      stack.gateway.apply(await loadSpecText(text, { format: "json" }));
    }],
  ];
  const scrapes: Scrape[] = [];
  const pending = new Set<Promise<void>>();
  let random = 12345;
  const rand = () => (random = (random * 1103515245 + 12345) % 2147483648) / 2147483648;
  let nextScrape = 0;
  let nextSend = 0;
  while (now() < seconds) {
    const t = now();
    while (script.length > 0 && script[0]![0] <= t) {
      const [, text, action] = script.shift()!;
      await action();
      events.push({ t, text });
    }
    if (t >= nextScrape) {
      nextScrape += 1;
      const scrape = await scrapeOnce(stack.url, t);
      scrapes.push(scrape);
      options.onScrape?.(scrape);
    }
    if (t >= nextSend) {
      const surge = t > at(0.25) && t < at(0.55) ? 2.2 : 1;
      const perSecond = 10 * surge + 5 + 0.5;
      nextSend += -Math.log(1 - rand()) / perSecond;
      const pick = rand() * perSecond;
      const model = pick < 10 * surge ? LLAMA : pick < 10 * surge + 5 ? QWEN : "gpt-5-typo";
      const request = send(stack, model, rand).finally(() => pending.delete(request));
      pending.add(request);
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  await Promise.all(pending);
  await stack.close();
  return { scrapes, events };
}

async function send(stack: Stack, model: string, rand: () => number): Promise<void> {
  const stream = rand() < 0.6;
  const maxTokens = 16 + Math.floor(rand() * 80);
  const prompt = "Summarise the following text. ".repeat(1 + Math.floor(rand() * 20));
  try {
    const response = await postJson(`${stack.url}/v1/chat/completions`, {
      model,
      messages: [{ role: "user", content: prompt }],
      max_tokens: maxTokens,
      stream,
    });
    await response.arrayBuffer();
  } catch {
    // A dropped connection is part of the traffic; the gateway counts it.
  }
}

async function scrapeOnce(url: string, t: number): Promise<Scrape> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const parsed = parsePrometheusText(text);
  if (parsed.errors > 0) throw new Error(`Unparsable /metrics: ${parsed.firstError}`);
  const samples = new Map<string, Sample[]>();
  for (const sample of parsed.samples) {
    const list = samples.get(sample.name) ?? [];
    list.push(sample);
    samples.set(sample.name, list);
  }
  return { t, samples };
}
