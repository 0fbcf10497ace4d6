/**
 * A helper for strategies: smooth weighted round robin, as nginx does it. Every pick adds each
 * server's weight to its running score, picks the highest score, and subtracts the total weight
 * from the winner, so traffic follows the weights closely without bursts to one server.
 *
 * @module
 */
import type { ServerView } from "./types.ts";

/** Running scores per server URL, kept by one strategy instance. */
export class SmoothWeighted {
  #scores = new Map<string, number>();

  /**
   * Picks a server given each server's current weight.
   *
   * @param servers The candidates.
   * @param weightOf The weight of a server now (positive).
   * @returns The chosen server, or `undefined` when there is none.
   */
  pick(
    servers: readonly ServerView[],
    weightOf: (server: ServerView) => number,
  ): ServerView | undefined {
    const scores = this.#scores;
    let total = 0;
    let best: ServerView | undefined;
    let bestScore = -Infinity;
    for (const server of servers) {
      const weight = weightOf(server);
      total += weight;
      const score = (scores.get(server.url) ?? 0) + weight;
      scores.set(server.url, score);
      if (score > bestScore) {
        bestScore = score;
        best = server;
      }
    }
    if (best !== undefined) scores.set(best.url, bestScore - total);
    if (scores.size > servers.length * 2) this.#forgetGone(servers);
    return best;
  }

  #forgetGone(servers: readonly ServerView[]): void {
    const live = new Set(servers.map((server) => server.url));
    for (const url of this.#scores.keys()) if (!live.has(url)) this.#scores.delete(url);
  }
}
