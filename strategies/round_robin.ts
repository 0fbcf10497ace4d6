/**
 * Round robin: each request goes to the next server in turn, ignoring load and weights.
 *
 * @module
 */
import type { ServerView, Strategy, StrategyOptions } from "./types.ts";

/**
 * Creates a round-robin strategy. The position survives config reloads while the strategy does.
 *
 * @param options `shared` cells hold the position when several workers run.
 * @returns The strategy.
 */
export default function createRoundRobin(options: StrategyOptions): Strategy {
  const shared = options.shared;
  if (shared !== undefined) {
    // Several workers: one turn counter for all of them.
    return {
      pick(servers: readonly ServerView[]): ServerView | undefined {
        return servers[(Atomics.add(shared, 0, 1) >>> 0) % servers.length];
      },
    };
  }
  let next = 0;
  return {
    pick(servers: readonly ServerView[]): ServerView | undefined {
      if (next >= servers.length) next = 0;
      return servers[next++];
    },
  };
}
