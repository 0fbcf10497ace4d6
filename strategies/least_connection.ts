/**
 * Least connection: the server with the fewest requests in flight from this gateway wins; ties go
 * to the server after the last one chosen, so equal servers share traffic evenly.
 *
 * In-flight counts are the gateway's own (all models on that server), released when a request
 * completes, fails or is aborted by the client, streams included.
 *
 * @module
 */
import type { ServerView, Strategy, StrategyOptions } from "./types.ts";

/**
 * Creates a least-connection strategy.
 *
 * @param options `shared` cells hold the tie-break position when several workers run.
 * @returns The strategy.
 */
export default function createLeastConnection(options: StrategyOptions): Strategy {
  // With several workers the tie-break position is shared (picks run under the route's lock).
  const shared = options.shared;
  let start = 0;
  return {
    pick(servers: readonly ServerView[]): ServerView | undefined {
      const count = servers.length;
      if (count === 0) return undefined;
      if (shared !== undefined) start = Atomics.load(shared, 0);
      if (start >= count) start = 0;
      let best = start;
      let bestLoad = Infinity;
      for (let step = 0; step < count; step++) {
        const position = (start + step) % count;
        const server = servers[position]!;
        const load = server.inFlight / server.weight;
        if (load < bestLoad) {
          best = position;
          bestLoad = load;
        }
      }
      start = best + 1;
      if (shared !== undefined) Atomics.store(shared, 0, start);
      return servers[best];
    },
  };
}
