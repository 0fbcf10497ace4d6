/**
 * One run of the prefix-cache benchmark: a fresh simulated fleet, one contender in front of it,
 * and an open-loop client playing a trace's conversations (each turn a streaming chat request,
 * the next turn sent a think time after the answer, with the answer in its history). It measures
 * time to the first content token and to the end of each answer at the client, the fleet's prefix
 * cache hit rate from the servers' own counters, and each server's share of the requests.
 *
 * @module
 */
import { parsePrometheusText } from "../../scrape/prometheus_text.ts";
import { type SimOptions, type SimServer, startSimServer } from "../../sim/server.ts";
import {
  type Contender,
  type ContenderContext,
  labelOf,
  oracleMode,
  startContender,
} from "./contenders.ts";
import { UPSTREAM_HEADER } from "./plain_proxy.ts";
import type { Conversation, PrefixTrace } from "./traces.ts";
import { quantile } from "../routing/stats.ts";
import { type LoopStalls, watchLoop } from "../common/loop_stalls.ts";
import { renderChat } from "../../sim/prompts.ts";
import { blockHashes } from "../../sim/tokens.ts";
import { decodeStepMs } from "../../sim/engine/engine.ts";

/** Tokens per KV block in the simulated servers. */
const BLOCK_TOKENS = 16;

/** A fleet's make-up. */
export interface FleetShape {
  /** Name for tables. */
  name: string;
  /** Relative speed of each server. */
  speeds: readonly number[];
  /** KV-cache blocks per server (16 tokens each). */
  kvBlocks: number;
}

/** Simulator settings of every fleet (speed and KV size aside). */
export const SIM_BASE: Readonly<SimOptions> = {
  models: ["m"],
  itlMs: 10,
  ttftMs: 5,
  prefillMsPerToken: 0.05,
  batchFactor: 0.02,
  maxNumSeqs: 16,
};

/** What the client saw of one measured request. */
interface Sample {
  ttftMs: number | undefined;
  /** The server time to first token if every earlier prompt and answer were cached there. */
  floorMs: number;
  /** The same, plus one decode step of the least busy server when the request was sent. */
  loadedFloorMs: number;
  e2eMs: number;
  ok: boolean;
  /** Whether it is a conversation's first turn (its prompt new, apart from a shared system prompt). */
  first?: boolean;
}

/** A request's floors, ms. */
type Floors = Pick<Sample, "floorMs" | "loadedFloorMs">;

/** The outcome of one run. */
export interface PrefixRunResult {
  /** The contender's label. */
  contender: string;
  /** Measured requests sent. */
  requests: number;
  /** Measured requests that failed or were cut. */
  failed: number;
  /**
   * Time to first token of first turns and of later turns (chats re-sending their history):
   * p50, p99 and count each.
   */
  byTurn: { first: [number, number, number]; later: [number, number, number] };
  /** Time to first token, p50 and p99, ms. */
  ttft: [number, number];
  /**
   * Mean time to first token, ms: at the client, and at the servers (their own
   * `vllm:time_to_first_token_seconds`, from admission to the engine to the first token, over the
   * measured part). The difference is what HTTP, the contender and the servers' request handling add.
   */
  ttftMean: { client: number; server: number };
  /**
   * The floor of the measured requests' time to first token, p50 and p99, ms: each on an idle
   * server of the fleet's top speed holding every earlier prompt and answer of the run.
   */
  floor: [number, number];
  /**
   * The same plus one decode step of the server that was least busy when the request was sent
   * (a step that prefills also decodes the server's running requests; on a loaded fleet few
   * servers are ever empty), p50 and p99, ms. Still a lower bound: it leaves out the wait for
   * the step in progress and any other prefill in the same step.
   */
  loadedFloor: [number, number];
  /** The hit rate of the measured requests if every earlier prompt and answer were cached. */
  idealHitRate: number;
  /** End to end, p50 and p99, ms. */
  e2e: [number, number];
  /** Successful measured requests per second. */
  throughput: number;
  /** Prefix-cache hits over queries, in tokens, over the measured part. */
  hitRate: number;
  /** Each server's share of the measured requests. */
  shares: number[];
  /** Event-loop stalls of the benchmark's process (simulators and client) while measuring. */
  stalls: LoopStalls;
}

/**
 * Runs a trace through one contender in front of a fresh fleet.
 *
 * @param trace The workload.
 * @param options The fleet, the contender, where to run and how long to wait at the end.
 * @returns The measurements.
 */
export async function runPrefix(
  trace: PrefixTrace,
  options: {
    fleet: FleetShape;
    contender: Contender;
    context: ContenderContext;
    drainMs: number;
    tag: string;
  },
): Promise<PrefixRunResult> {
  const sims = await Promise.all(
    options.fleet.speeds.map((speed) =>
      startSimServer({ ...SIM_BASE, port: 0, speed, numGpuBlocks: options.fleet.kvBlocks })
    ),
  );
  let running;
  try {
    running = await startContender(options.contender, {
      servers: sims.map((sim) => sim.url),
      context: options.context,
      tag: options.tag,
    });
  } catch (error) {
    await Promise.all(sims.map((sim) => sim.close()));
    throw error;
  }
  try {
    return await play(trace, {
      sims,
      urls: running.urls,
      oracle: oracleMode(options.contender),
      drainMs: options.drainMs,
      label: labelOf(options.contender),
      topSpeed: Math.max(...options.fleet.speeds),
    });
  } finally {
    await running.stop();
    await Promise.all(sims.map((sim) => sim.close()));
  }
}

async function play(
  trace: PrefixTrace,
  run: {
    sims: SimServer[];
    urls: string[];
    /** The oracle picks the server; it sends there directly or through the plain proxy. */
    oracle: "direct" | "proxied" | undefined;
    drainMs: number;
    label: string;
    topSpeed: number;
  },
): Promise<PrefixRunResult> {
  const samples: Sample[] = [];
  // Every block any server computed so far, for the floor.
  const computed = new Set<string>();
  const ideal = { hits: 0, queries: 0 };
  const floorOf = (prompt: Prompt, measured: boolean): number => {
    const { ids, hashes } = prompt;
    let cached = 0;
    // At least one token is computed, as the simulator and vLLM do.
    const most = Math.floor((ids.length - 1) / BLOCK_TOKENS);
    while (cached < most && computed.has(hashes[cached]!)) cached++;
    for (const hash of hashes) computed.add(hash);
    const miss = ids.length - cached * BLOCK_TOKENS;
    if (measured) {
      ideal.hits += cached * BLOCK_TOKENS;
      ideal.queries += ids.length;
    }
    return (SIM_BASE.ttftMs! + miss * SIM_BASE.prefillMsPerToken!) / run.topSpeed;
  };
  const timing = { itlMs: SIM_BASE.itlMs!, batchFactor: SIM_BASE.batchFactor! };
  const leastDecodeMs = (): number =>
    Math.min(...run.sims.map((sim) => decodeStepMs(timing, sim.state().running))) / run.topSpeed;
  const answered = (messages: unknown[]): void => {
    for (const hash of promptOf(messages, { answered: true }).hashes) computed.add(hash);
  };
  const cut = new AbortController();
  let next = 0;
  const start = performance.now();
  const measureFrom = start + trace.warmupMs;
  let before: { counters: FleetCounters; received: number[] } | undefined;
  const loop = watchLoop();
  const snapshot = setTimeout(async () => {
    loop.reset();
    before = { counters: await fleetCounters(run.sims), received: received(run.sims) };
  }, trace.warmupMs);
  let lastEnd = measureFrom;
  async function converse(conversation: Conversation): Promise<void> {
    await sleep(start + conversation.startMs - performance.now());
    const messages: { role: string; content: string }[] = conversation.system === ""
      ? []
      : [{ role: "system", content: conversation.system }];
    for (const turn of conversation.turns) {
      await sleep(turn.thinkMs);
      const sentAt = performance.now();
      if (sentAt - start > trace.endMs || cut.signal.aborted) return;
      messages.push({ role: "user", content: turn.user });
      const prompt = promptOf(messages);
      const chosen = run.oracle === undefined ? undefined : closest(run.sims, prompt).url;
      const url = run.oracle === "direct" ? chosen! : run.urls[next++ % run.urls.length]!;
      const upstream = run.oracle === "proxied" ? chosen : undefined;
      const floorMs = floorOf(prompt, sentAt >= measureFrom);
      const floors = { floorMs, loadedFloorMs: floorMs + leastDecodeMs() };
      const { sample, answer } = await send(
        url,
        { messages, maxTokens: turn.maxTokens, floors, upstream },
        cut.signal,
      );
      if (sentAt >= measureFrom) {
        sample.first = messages.length <= 2;
        samples.push(sample);
        lastEnd = Math.max(lastEnd, performance.now());
      }
      if (!sample.ok) return;
      messages.push({ role: "assistant", content: answer });
      answered(messages);
    }
  }
  const all = Promise.all(trace.conversations.map(converse));
  await sleep(trace.endMs - (performance.now() - start));
  const deadline = setTimeout(() => cut.abort(), run.drainMs);
  await all;
  clearTimeout(deadline);
  clearTimeout(snapshot);
  const stalls = loop.stop();
  const after = await fleetCounters(run.sims);
  const base = before ?? { counters: NO_COUNTS, received: run.sims.map(() => 0) };
  const counts = received(run.sims).map((count, i) => count - base.received[i]!);
  const total = counts.reduce((sum, count) => sum + count, 0);
  const ok = samples.filter((sample) => sample.ok);
  const queries = after.queries - base.counters.queries;
  const firstTokens = after.ttftCount - base.counters.ttftCount;
  const [ttft50, ttft99] = ttftOf(ok);
  return {
    contender: run.label,
    requests: samples.length,
    failed: samples.length - ok.length,
    ttft: [ttft50, ttft99],
    byTurn: { first: ttftOf(ok.filter((s) => s.first)), later: ttftOf(ok.filter((s) => !s.first)) },
    ttftMean: {
      client: ok.reduce((sum, s) => sum + s.ttftMs!, 0) / ok.length,
      server: firstTokens > 0
        ? (after.ttftSeconds - base.counters.ttftSeconds) / firstTokens * 1000
        : NaN,
    },
    floor: [quantile(ok.map((s) => s.floorMs), 0.5), quantile(ok.map((s) => s.floorMs), 0.99)],
    loadedFloor: [
      quantile(ok.map((s) => s.loadedFloorMs), 0.5),
      quantile(ok.map((s) => s.loadedFloorMs), 0.99),
    ],
    idealHitRate: ideal.queries > 0 ? ideal.hits / ideal.queries : NaN,
    e2e: [quantile(ok.map((s) => s.e2eMs), 0.5), quantile(ok.map((s) => s.e2eMs), 0.99)],
    throughput: ok.length / Math.max(0.001, (lastEnd - measureFrom) / 1000),
    hitRate: queries > 0 ? (after.hits - base.counters.hits) / queries : NaN,
    shares: counts.map((count) => total > 0 ? count / total : 0),
    stalls,
  };
}

/** TTFT p50 and p99 of samples, and their count. */
function ttftOf(samples: readonly Sample[]): [number, number, number] {
  const ttft = samples.map((sample) => sample.ttftMs!);
  return [quantile(ttft, 0.5), quantile(ttft, 0.99), ttft.length];
}

function received(sims: readonly SimServer[]): number[] {
  return sims.map((sim) => sim.state().received);
}

/** Counters summed over the fleet. */
interface FleetCounters {
  /** Prefix-cache queries and hits, tokens. */
  queries: number;
  hits: number;
  /** Sum and count of the time-to-first-token histogram. */
  ttftSeconds: number;
  ttftCount: number;
}

const NO_COUNTS: FleetCounters = { queries: 0, hits: 0, ttftSeconds: 0, ttftCount: 0 };

const COUNTED: Record<string, keyof FleetCounters> = {
  "vllm:prefix_cache_queries_total": "queries",
  "vllm:prefix_cache_hits_total": "hits",
  "vllm:time_to_first_token_seconds_sum": "ttftSeconds",
  "vllm:time_to_first_token_seconds_count": "ttftCount",
};

/** The prefix cache's and the first token's counters summed over the fleet, from each `/metrics`. */
async function fleetCounters(sims: readonly SimServer[]): Promise<FleetCounters> {
  const counts = { ...NO_COUNTS };
  for (const sim of sims) {
    const text = await (await fetch(`${sim.url}/metrics`)).text();
    for (const sample of parsePrometheusText(text).samples) {
      const field = COUNTED[sample.name];
      if (field !== undefined) counts[field] += sample.value;
    }
  }
  return counts;
}

/** A chat prompt as the simulator tokenizes it. */
interface Prompt {
  ids: number[];
  hashes: string[];
}

/**
 * Tokenizes a chat as the simulator does: ready for the next answer, or (`answered`) ending with
 * the last answer, whose blocks the server cached as it generated them.
 */
function promptOf(messages: unknown[], options: { answered?: boolean } = {}): Prompt {
  const ids = renderChat(messages, {
    addGenerationPrompt: !options.answered,
    continueFinalMessage: false,
    tools: undefined,
  });
  return { ids, hashes: blockHashes(ids, BLOCK_TOKENS) };
}

/**
 * The oracle's choice: the server whose engine forecasts the earliest first token for the
 * prompt, knowing its cache, its queue and where its step in progress stands (greedy: it does
 * not weigh what the choice costs later requests).
 */
function closest(sims: readonly SimServer[], prompt: Prompt): SimServer {
  const job = { promptTokens: prompt.ids.length, blockHashes: prompt.hashes };
  let best = sims[0]!;
  let bestMs = Infinity;
  for (const sim of sims) {
    const ms = sim.forecast(job);
    if (ms < bestMs) [best, bestMs] = [sim, ms];
  }
  return best;
}

/** Sends one streaming chat request; times it and gathers the answer's text. */
async function send(
  base: string,
  request: { messages: unknown[]; maxTokens: number; floors: Floors; upstream: string | undefined },
  signal: AbortSignal,
): Promise<{ sample: Sample; answer: string }> {
  const { floors } = request;
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (request.upstream !== undefined) headers[UPSTREAM_HEADER] = request.upstream;
  const sent = performance.now();
  let ttftMs: number | undefined;
  let text = "";
  try {
    const response = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        model: "m",
        messages: request.messages,
        max_tokens: request.maxTokens,
        stream: true,
      }),
      signal,
    });
    if (response.status !== 200 || response.body === null) {
      await response.body?.cancel();
      return {
        sample: { ttftMs, ...floors, e2eMs: performance.now() - sent, ok: false },
        answer: "",
      };
    }
    const decoder = new TextDecoder();
    for await (const chunk of response.body) {
      const part = decoder.decode(chunk, { stream: true });
      // The first event carries only the role; content events start so.
      if (ttftMs === undefined && part.includes('"delta":{"content":')) {
        ttftMs = performance.now() - sent;
      }
      text += part;
    }
  } catch {
    return {
      sample: { ttftMs, ...floors, e2eMs: performance.now() - sent, ok: false },
      answer: "",
    };
  }
  return {
    sample: {
      ttftMs,
      ...floors,
      e2eMs: performance.now() - sent,
      ok: ttftMs !== undefined && text.includes("[DONE]"),
    },
    answer: answerOf(text),
  };
}

/** The content of an SSE chat stream's deltas, joined. */
function answerOf(stream: string): string {
  let answer = "";
  for (const line of stream.split("\n")) {
    if (!line.startsWith("data: {")) continue;
    const event = JSON.parse(line.slice(6)) as { choices?: { delta?: { content?: string } }[] };
    answer += event.choices?.[0]?.delta?.content ?? "";
  }
  return answer;
}

function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}
