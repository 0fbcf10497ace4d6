/**
 * Round robin: each request goes to the next server in turn, ignoring load and weights.
 *
 * @module
 */
import type { ServerView, Strategy, StrategyOptions } from "./types.ts";

/**
 * Creates a round-robin strategy. The position survives config reloads while the strategy does.
 *
 * @param _options Unused.
 * @returns The strategy.
 */
export default function createRoundRobin(_options: StrategyOptions): Strategy {
  let next = 0;
  return {
    pick(servers: readonly ServerView[]): ServerView | undefined {
      if (next >= servers.length) next = 0;
      return servers[next++];
    },
  };
}
