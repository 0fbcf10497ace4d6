/**
 * The strategies that ship with LLMStream, imported statically so `deno compile` embeds them.
 * Files dropped into `strategies/` are found on disk by the loader and need no entry here.
 *
 * @module
 */
import type { StrategyFactory } from "./types.ts";
import createRoundRobin from "./round_robin.ts";
import createLeastConnection from "./least_connection.ts";
import createRandom from "./random.ts";
import createRealTimeMetrics from "./real_time_metrics.ts";
import createWeightedRoundRobin from "./weighted_round_robin.ts";
import createPowerOfTwo from "./power_of_two.ts";
import createCacheAware from "./cache_aware.ts";

/** Built-in strategies by the name a spec uses. */
export const BUILTIN_STRATEGIES: ReadonlyMap<string, StrategyFactory> = new Map([
  ["round_robin", createRoundRobin],
  ["least_connection", createLeastConnection],
  ["random", createRandom],
  ["real_time_metrics", createRealTimeMetrics],
  ["weighted_round_robin", createWeightedRoundRobin],
  ["power_of_two", createPowerOfTwo],
  ["cache_aware", createCacheAware],
]);
