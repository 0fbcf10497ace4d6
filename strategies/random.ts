/**
 * Random: each request goes to a server drawn at random, in proportion to the spec's weights.
 *
 * Option `seed` (number) makes the draws repeatable, for tests and benchmarks.
 *
 * @module
 */
import type { ServerView, Strategy, StrategyOptions } from "./types.ts";
import { seededRandom } from "./_seeded_random.ts";

/**
 * Creates a weighted random strategy.
 *
 * @param options `options.seed` (optional number) seeds a repeatable generator.
 * @returns The strategy.
 */
export default function createRandom(options: StrategyOptions): Strategy {
  const random = seededRandom(options.options["seed"]);
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
