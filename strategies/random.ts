/**
 * Random: each request goes to a server drawn at random, in proportion to the spec's weights.
 *
 * Option `seed` (number) makes the draws repeatable, for tests and benchmarks.
 *
 * @module
 */
import type { ServerView, Strategy, StrategyOptions } from "./types.ts";

/**
 * Creates a weighted random strategy.
 *
 * @param options `options.seed` (optional number) seeds a repeatable generator.
 * @returns The strategy.
 */
export default function createRandom(options: StrategyOptions): Strategy {
  const seed = options.options["seed"];
  const random = typeof seed === "number" ? mulberry32(seed) : Math.random;
  return {
    pick(servers: readonly ServerView[]): ServerView | undefined {
      let total = 0;
      for (const server of servers) total += server.weight;
      let draw = random() * total;
      for (const server of servers) {
        draw -= server.weight;
        if (draw < 0) return server;
      }
      return servers[servers.length - 1];
    },
  };
}

/** A small seeded generator (mulberry32) returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return function next(): number {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
