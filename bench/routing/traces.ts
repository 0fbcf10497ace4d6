/**
 * Seeded arrival traces for the routing benchmark: Poisson arrivals, on/off bursts, and a
 * shared-prefix workload. The same seed gives the same trace, so every strategy sees the same
 * requests at the same offsets.
 *
 * @module
 */
import { seededRandom } from "../../strategies/_seeded_random.ts";

/** One request of a trace. */
export interface TraceRequest {
  /** When to send it, in milliseconds after the trace starts. */
  at: number;
  /** The system message (a shared prefix), or `""` for none. */
  system: string;
  /** The user message. */
  user: string;
  /** `max_tokens` (the simulator generates exactly this many). */
  maxTokens: number;
}

/** A named trace. */
export interface Trace {
  /** Short name for tables, e.g. `poisson 80%`. */
  name: string;
  /** What it is, for the notes under the table. */
  description: string;
  /** Mean offered load as a share of fleet capacity. */
  load: number;
  /** Requests sent before this offset (ms) warm the fleet up and are not measured. */
  warmupMs: number;
  /** The requests, by send time. */
  requests: TraceRequest[];
}

/** Request shape shared by every trace. */
export interface RequestMix {
  /** Prompt tokens, drawn uniformly from this range (unique prompts). */
  promptTokens: readonly [number, number];
  /** Output tokens, drawn uniformly from this range. */
  outputTokens: readonly [number, number];
}

/** The request mix of the benchmark: 100..1500 prompt tokens, 32..64 output tokens. */
export const REQUEST_MIX: Readonly<RequestMix> = {
  promptTokens: [100, 1500],
  outputTokens: [32, 64],
};

/** Characters per simulated token (the simulator counts four characters as one token). */
const CHARS_PER_TOKEN = 4;
const WORDS = ["alpha", "bravo", "delta", "gamma", "kilo", "lima", "oscar", "sierra", "tango"];

/**
 * Returns a seeded generator of floats in [0, 1) (mulberry32).
 *
 * @param seed The seed.
 * @returns The generator.
 */
export function seeded(seed: number): () => number {
  return seededRandom(seed);
}

/** Options shared by the trace builders. */
export interface TraceOptions {
  /** Fleet capacity in requests per second; rates are shares of it. */
  capacity: number;
  /** Measured length in seconds. */
  seconds: number;
  /** Seconds of the same traffic before the measured part (steady state, learned speeds). */
  warmup: number;
  /** Seed of the arrival times and request sizes. */
  seed: number;
}

/**
 * Poisson arrivals at `load * capacity` requests per second, unique prompts.
 *
 * @param load Offered load as a share of capacity, e.g. 0.8.
 * @param options Capacity, length and seed.
 * @returns The trace.
 */
export function poissonTrace(load: number, options: TraceOptions): Trace {
  const random = seeded(options.seed);
  const rate = load * options.capacity;
  const times = arrivals(random, () => rate, lengthMs(options));
  return {
    name: `poisson ${Math.round(load * 100)}%`,
    description: `Poisson arrivals at ${rate.toFixed(1)} req/s (${
      Math.round(load * 100)
    }% of capacity), unique prompts`,
    load,
    warmupMs: options.warmup * 1000,
    requests: times.map((at, i) => uniqueRequest(at, i, random)),
  };
}

/**
 * On/off bursts: Poisson arrivals at 1.5 x capacity for 1.5 s, then at 0.22 x capacity for 2.5 s,
 * repeated; the mean load is 70% of capacity.
 *
 * @param options Capacity, length and seed.
 * @returns The trace.
 */
export function burstyTrace(options: TraceOptions): Trace {
  const random = seeded(options.seed + 1);
  const on = 1.5, off = 0.22, onMs = 1500, cycleMs = 4000;
  const rate = (ms: number) => (ms % cycleMs < onMs ? on : off) * options.capacity;
  const times = arrivals(random, rate, lengthMs(options), on * options.capacity);
  const load = (on * onMs + off * (cycleMs - onMs)) / cycleMs;
  return {
    name: "bursty",
    description: `on/off bursts: ${on * 100}% of capacity for ${onMs / 1000} s, ${off * 100}% for ${
      (cycleMs - onMs) / 1000
    } s (mean ${Math.round(load * 100)}%), unique prompts`,
    load,
    warmupMs: options.warmup * 1000,
    requests: times.map((at, i) => uniqueRequest(at, i, random)),
  };
}

/**
 * Shared prefixes: every request starts with one of `prefixes` long system prompts (1,200..1,600
 * tokens), followed by a short unique user message (20..120 tokens); Poisson arrivals at `load`.
 *
 * @param load Offered load as a share of capacity (measured with unique prompts).
 * @param options Capacity, length, seed and the number of shared prefixes.
 * @returns The trace.
 */
export function prefixTrace(load: number, options: TraceOptions & { prefixes: number }): Trace {
  const random = seeded(options.seed + 2);
  const systems = Array.from(
    { length: options.prefixes },
    (_, k) => text(`system prompt ${k}: you are assistant ${k}.`, between(random, 1200, 1600)),
  );
  const rate = load * options.capacity;
  const times = arrivals(random, () => rate, lengthMs(options));
  return {
    name: `prefix ${Math.round(load * 100)}%`,
    description: `${options.prefixes} shared system prompts of 1200..1600 tokens + unique ` +
      `20..120-token suffixes, Poisson at ${rate.toFixed(1)} req/s (${
        Math.round(load * 100)
      }% of the unique-prompt capacity)`,
    load,
    warmupMs: options.warmup * 1000,
    requests: times.map((at, i) => ({
      at,
      system: systems[Math.floor(random() * systems.length)] ?? "",
      user: text(`question ${i}:`, between(random, 20, 120)),
      maxTokens: between(random, ...REQUEST_MIX.outputTokens),
    })),
  };
}

function lengthMs(options: TraceOptions): number {
  return (options.warmup + options.seconds) * 1000;
}

/** Arrival times of a (possibly time-varying) Poisson process, by thinning. */
function arrivals(
  random: () => number,
  rate: (ms: number) => number,
  lengthMs: number,
  maxRate: number = rate(0),
): number[] {
  const times: number[] = [];
  let t = 0;
  for (;;) {
    t += -Math.log(1 - random()) / maxRate * 1000;
    if (t >= lengthMs) return times;
    if (random() * maxRate < rate(t)) times.push(t);
  }
}

function uniqueRequest(at: number, index: number, random: () => number): TraceRequest {
  return {
    at,
    system: "",
    user: text(`request ${index}:`, between(random, ...REQUEST_MIX.promptTokens)),
    maxTokens: between(random, ...REQUEST_MIX.outputTokens),
  };
}

/** A text of about `tokens` simulated tokens starting with `head` (which makes it unique). */
function text(head: string, tokens: number): string {
  const chars = tokens * CHARS_PER_TOKEN;
  let out = head;
  for (let i = 0; out.length < chars; i++) out += ` ${WORDS[i % WORDS.length]}`;
  return out.slice(0, chars);
}

/** A uniform integer in [low, high]. */
function between(random: () => number, low: number, high: number): number {
  return low + Math.floor(random() * (high - low + 1));
}
