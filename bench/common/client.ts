/**
 * The proxy benchmark's Deno load client, run as its own process (pinned beside the upstream):
 *
 * - `rate`: open-loop requests at a fixed rate; latency from send to last body byte.
 * - `stream`: many concurrent SSE streams (started over a ramp); time to first event (TTFT) and the
 *   gaps between events.
 *
 * Prints one JSON object ({@link RateResult} or {@link StreamResult}) on stdout.
 *
 * Run: `deno run --allow-net --allow-read bench/common/client.ts rate --url URL --rate 500
 * --duration-s 10 [--headers JSON] [--body-file PATH]`, or `stream --streams 1000 --ramp-ms 1000
 * --deadline-s 60 ...`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { streamRun } from "./sse_client.ts";
import { summarize, type Summary } from "./stats.ts";

/**
 * Builds the chat request body used everywhere in the benchmark.
 *
 * @param promptBytes Approximate size of the user message.
 * @param stream Whether to ask for SSE.
 * @returns The JSON text.
 */
export function chatBody(promptBytes: number, stream: boolean): string {
  const base = "Hello, how are you? ";
  const content = promptBytes <= base.length
    ? base.trim()
    : base.repeat(Math.ceil(promptBytes / base.length)).slice(0, promptBytes);
  return JSON.stringify({
    model: "bench",
    messages: [{ role: "user", content }],
    max_tokens: 16,
    ...(stream ? { stream: true } : {}),
  });
}

/** What a fixed-rate run measured (milliseconds). */
export interface RateResult {
  /** Requests sent. */
  sent: number;
  /** Requests that failed or answered other than 200. */
  errors: number;
  /** Requests per second actually sent. */
  achievedRate: number;
  /** Latency of successful requests, send to last byte. */
  latency: Summary;
}

interface Target {
  url: string;
  headers: Record<string, string>;
  body: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

async function rateRun(target: Target, rate: number, durationS: number): Promise<RateResult> {
  const total = Math.round(rate * durationS);
  const latencies: number[] = [];
  let errors = 0;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const now = performance.now();
    if (due > now) await sleep(due - now);
    pending.push((async () => {
      const sent = performance.now();
      try {
        const response = await fetch(target.url, {
          method: "POST",
          headers: target.headers,
          body: target.body,
          signal: AbortSignal.timeout(30_000),
        });
        await response.arrayBuffer();
        if (response.status === 200) latencies.push(performance.now() - sent);
        else errors++;
      } catch {
        errors++;
      }
    })());
  }
  const sentAll = performance.now();
  await Promise.all(pending);
  return {
    sent: total,
    errors,
    achievedRate: total / ((sentAll - start) / 1000),
    latency: summarize(latencies),
  };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      url: { type: "string" },
      headers: { type: "string", default: "{}" },
      "prompt-bytes": { type: "string", default: "0" },
      rate: { type: "string", default: "500" },
      "duration-s": { type: "string", default: "10" },
      streams: { type: "string", default: "1000" },
      "ramp-ms": { type: "string", default: "1000" },
      "deadline-s": { type: "string", default: "60" },
      "gap-sample": { type: "string", default: "10" },
      "drain-ms": { type: "string", default: "100" },
    },
  });
  const mode = positionals[0];
  if (!values.url || (mode !== "rate" && mode !== "stream")) {
    console.error("Usage: proxy_client.ts rate|stream --url URL [options]");
    Deno.exit(2);
  }
  const target: Target = {
    url: values.url,
    headers: { "content-type": "application/json", ...JSON.parse(values.headers) },
    body: chatBody(Number(values["prompt-bytes"]), mode === "stream"),
  };
  const result = mode === "rate"
    ? await rateRun(target, Number(values.rate), Number(values["duration-s"]))
    : await streamRun({
      ...target,
      streams: Number(values.streams),
      rampMs: Number(values["ramp-ms"]),
      deadlineS: Number(values["deadline-s"]),
      gapSample: Number(values["gap-sample"]),
      drainMs: Number(values["drain-ms"]),
    });
  console.log(JSON.stringify(result));
}
