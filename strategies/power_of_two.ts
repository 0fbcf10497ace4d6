/**
 * Power of two choices: draw two different servers at random (in proportion to weight) and send the
 * request to the less loaded one. Load is the server's scraped `running + 4 * waiting` plus what the
 * gateway sent since that scrape, or its in-flight count when metrics are not fresh; it is divided
 * by the spec weight.
 *
 * Option `seed` (number) makes the draws repeatable.
 *
 * @module
 */
import type { ServerView, Strategy, StrategyOptions } from "./types.ts";
import { seededRandom } from "./_seeded_random.ts";

/**
 * The load a server is judged by.
 *
 * @param server The server's view.
 * @returns Load per unit of weight.
 */
export function serverLoad(server: ServerView): number {
  const metrics = server.metrics;
  const load = metrics === undefined
    ? server.inFlight
    : metrics.running + 4 * metrics.waiting + server.sentSinceScrape;
  return load / server.weight;
}

/**
 * Creates a power-of-two-choices strategy.
 *
 * @param options `options.seed` (optional number) seeds a repeatable generator.
 * @returns The strategy.
 */
export default function createPowerOfTwo(options: StrategyOptions): Strategy {
  const random = seededRandom(options.options["seed"]);
  function draw(servers: readonly ServerView[], total: number, skip: number): number {
    let target = random() * total;
    for (let i = 0; i < servers.length; i++) {
      if (i === skip) continue;
      target -= servers[i]!.weight;
      if (target < 0) return i;
    }
    return skip === servers.length - 1 ? servers.length - 2 : servers.length - 1;
  }
  return {
    pick(servers: readonly ServerView[]): ServerView | undefined {
      if (servers.length <= 1) return servers[0];
      let total = 0;
      for (const server of servers) total += server.weight;
      const first = draw(servers, total, -1);
      const second = draw(servers, total - servers[first]!.weight, first);
      const a = servers[first]!;
      const b = servers[second]!;
      return serverLoad(b) < serverLoad(a) ? b : a;
    },
  };
}
