/**
 * Seeded workloads of the prefix-cache benchmark, each a list of conversations (a single-turn
 * request is a conversation of one turn):
 *
 * - `chat`: multi-turn chats arriving as a Poisson process. Every turn re-sends the whole history,
 *   the server's own earlier answers included, after a think time; a short system prompt is
 *   shared by the chats of one of four apps.
 * - `system prompts`: single requests, each with one of eight ~2,000-token system prompts and a
 *   short question of its own, arriving as a Poisson process.
 * - `control`: single requests with unique prompts and no shared prefix.
 *
 * The same seed gives the same trace, so every contender sees the same requests at the same times
 * (the chat's later turns depend on answers, which the simulator makes deterministic too).
 *
 * @module
 */
import { seededRandom } from "../../strategies/_seeded_random.ts";

/** One turn of a conversation. */
export interface Turn {
  /** Milliseconds to wait after the previous answer before sending (0 for the first turn). */
  thinkMs: number;
  /** The user's message. */
  user: string;
  /** `max_tokens` (the simulator generates exactly this many). */
  maxTokens: number;
}

/** A conversation: its start, its system prompt and its turns. */
export interface Conversation {
  /** When its first turn is sent, milliseconds after the trace starts. */
  startMs: number;
  /** The system message, or `""` for none. */
  system: string;
  /** Its turns, in order. */
  turns: Turn[];
}

/** A named workload. */
export interface PrefixTrace {
  /** Short name for tables. */
  name: string;
  /** What it is, for the notes under the table. */
  description: string;
  /** Requests sent before this offset (ms) warm the fleet up and are not measured. */
  warmupMs: number;
  /** No turn starts after this offset (ms). */
  endMs: number;
  /** The conversations, by start time. */
  conversations: Conversation[];
}

/** Sizes and rates shared by the workloads. */
export interface TraceOptions {
  /** Seed. */
  seed: number;
  /** Seconds measured after the warm-up. */
  seconds: number;
  /** Warm-up seconds. */
  warmup: number;
  /** Arrivals (conversations or requests) per second. */
  rate: number;
}

const CHARS_PER_TOKEN = 4;
const WORDS = [
  "alpha",
  "bravo",
  "charlie",
  "delta",
  "echo",
  "gamma",
  "kilo",
  "lima",
  "oscar",
  "sierra",
  "tango",
  "zulu",
];

/** Seeded text of about `tokens` simulated tokens (four characters each). */
function text(random: () => number, tokens: number): string {
  let out = "";
  while (out.length < tokens * CHARS_PER_TOKEN) {
    out += `${WORDS[Math.floor(random() * WORDS.length)]}${Math.floor(random() * 1000)} `;
  }
  return out.slice(0, tokens * CHARS_PER_TOKEN);
}

function between(random: () => number, range: readonly [number, number]): number {
  return range[0] + Math.floor(random() * (range[1] - range[0] + 1));
}

function poissonStarts(random: () => number, options: TraceOptions): number[] {
  const starts: number[] = [];
  const end = (options.warmup + options.seconds) * 1000;
  for (let at = 0; at < end;) {
    at += -Math.log(1 - random()) / options.rate * 1000;
    if (at < end) starts.push(at);
  }
  return starts;
}

function frame(
  name: string,
  description: string,
  options: TraceOptions,
  conversations: Conversation[],
): PrefixTrace {
  return {
    name,
    description,
    warmupMs: options.warmup * 1000,
    endMs: (options.warmup + options.seconds) * 1000,
    conversations,
  };
}

/**
 * Multi-turn chats: 3 to 6 turns each, first question 100-300 tokens, later ones 30-120, answers
 * 32-96 tokens, think time 0.5-2.5 s; each chat belongs to one of four apps whose 150-token system
 * prompt it shares.
 *
 * @param options Seed, length and chats per second.
 * @returns The trace.
 */
export function chatTrace(options: TraceOptions): PrefixTrace {
  const random = seededRandom(options.seed * 101 + 1);
  const apps = Array.from({ length: 4 }, (_, i) => `App ${i}. ${text(random, 150)}`);
  const conversations = poissonStarts(random, options).map((startMs) => ({
    startMs,
    system: apps[Math.floor(random() * apps.length)]!,
    turns: Array.from({ length: between(random, [3, 6]) }, (_, turn) => ({
      thinkMs: turn === 0 ? 0 : 500 + random() * 2000,
      user: text(random, turn === 0 ? between(random, [100, 300]) : between(random, [30, 120])),
      maxTokens: between(random, [32, 96]),
    })),
  }));
  return frame(
    "chat",
    `multi-turn chats (3-6 turns, whole history re-sent), ${options.rate}/s`,
    options,
    conversations,
  );
}

/**
 * Single requests sharing one of eight 2,000-token system prompts, with a 50-150-token question
 * and a 32-64-token answer.
 *
 * @param options Seed, length and requests per second.
 * @returns The trace.
 */
export function systemPromptTrace(options: TraceOptions): PrefixTrace {
  const random = seededRandom(options.seed * 101 + 2);
  const prompts = Array.from({ length: 8 }, (_, i) => `Agent ${i}. ${text(random, 2000)}`);
  const conversations = poissonStarts(random, options).map((startMs) => ({
    startMs,
    system: prompts[Math.floor(random() * prompts.length)]!,
    turns: [{
      thinkMs: 0,
      user: text(random, between(random, [50, 150])),
      maxTokens: between(random, [32, 64]),
    }],
  }));
  return frame(
    "system prompts",
    `8 shared 2,000-token system prompts, ${options.rate}/s`,
    options,
    conversations,
  );
}

/**
 * Single requests with unique 100-1,500-token prompts and 32-64-token answers: nothing to cache.
 *
 * @param options Seed, length and requests per second.
 * @returns The trace.
 */
export function controlTrace(options: TraceOptions): PrefixTrace {
  const random = seededRandom(options.seed * 101 + 3);
  const conversations = poissonStarts(random, options).map((startMs) => ({
    startMs,
    system: "",
    turns: [{
      thinkMs: 0,
      user: `${Math.floor(random() * 1e9)} ${text(random, between(random, [100, 1500]))}`,
      maxTokens: between(random, [32, 64]),
    }],
  }));
  return frame(
    "control",
    `unique prompts, no shared prefix, ${options.rate}/s`,
    options,
    conversations,
  );
}
