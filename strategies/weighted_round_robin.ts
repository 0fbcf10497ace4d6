/**
 * Weighted round robin: smooth weighted round robin (as nginx does it) over the spec's static
 * weights. A server of weight 3 gets three requests for each one a server of weight 1 gets,
 * interleaved rather than in bursts.
 *
 * @module
 */
import type { ServerView, Strategy, StrategyOptions } from "./types.ts";
import { SmoothWeighted } from "./_smooth_weighted.ts";

/**
 * Creates a weighted round-robin strategy.
 *
 * @param _options Unused.
 * @returns The strategy.
 */
export default function createWeightedRoundRobin(_options: StrategyOptions): Strategy {
  const smooth = new SmoothWeighted();
  return {
    pick(servers: readonly ServerView[]): ServerView | undefined {
      return smooth.pick(servers, staticWeight);
    },
  };
}

function staticWeight(server: ServerView): number {
  return server.weight;
}
