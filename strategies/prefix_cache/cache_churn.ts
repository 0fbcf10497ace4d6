/**
 * A helper for cache-aware strategies: how fast each server's prefix cache takes in new blocks,
 * from the server's own counters, so it counts every gateway's traffic (other replicas, other
 * clients) and not only this one's.
 *
 * A prefix-cache query that misses is prompt tokens the server computes and then caches, pushing
 * out its least recently used blocks. From two scrapes, the new tokens a second are the queries
 * counter's growth times the share that missed (`1 - prefixHitRate`, over the same interval),
 * averaged over about two seconds (a burst of new prompts shows at once, and its end soon after).
 * Generated tokens are cached too and are not counted (the counters do not show them), so the
 * figure is a floor. A counter that goes back means the server restarted with an empty cache.
 *
 * @module
 */
import type { ServerMetrics } from "../types.ts";

/** Seconds over which the rate is averaged. */
const AVERAGE_SECONDS = 2;

/** What is known of one server's counters. */
interface Counters {
  queries: number;
  at: number;
  tokensPerSecond: number | undefined;
}

/** New prompt tokens a second each server's cache takes in. */
export class CacheChurn {
  #servers = new Map<string, Counters>();

  /**
   * Notes a server's scraped metrics (the same scrape again changes nothing).
   *
   * @param url The server.
   * @param metrics Its latest metrics.
   * @returns Whether its queries counter went back: it restarted with an empty cache.
   */
  observe(url: string, metrics: ServerMetrics): boolean {
    const queries = metrics.prefixQueries;
    if (queries === undefined) return false;
    const before = this.#servers.get(url);
    if (before === undefined || queries < before.queries) {
      this.#servers.set(url, { queries, at: metrics.scrapedAt, tokensPerSecond: undefined });
      return before !== undefined;
    }
    const seconds = (metrics.scrapedAt - before.at) / 1000;
    if (seconds <= 0) return false;
    const missed = (queries - before.queries) * (1 - (metrics.prefixHitRate ?? 0));
    const sample = missed / seconds;
    const previous = before.tokensPerSecond;
    before.tokensPerSecond = previous === undefined
      ? sample
      : previous + (sample - previous) * Math.min(1, seconds / AVERAGE_SECONDS);
    before.queries = queries;
    before.at = metrics.scrapedAt;
    return false;
  }

  /**
   * How long a server's cache keeps what it gets: its size over the new tokens a second it takes
   * in.
   *
   * @param url The server.
   * @param cacheTokens Its cache's size in tokens.
   * @returns Seconds; `undefined` for a server that reports no counters, and 0 for one that does
   * until two scrapes have shown the rate (nothing is known to stay).
   */
  turnover(url: string, cacheTokens: number): number | undefined {
    const server = this.#servers.get(url);
    if (server === undefined) return undefined;
    const rate = server.tokensPerSecond;
    return rate === undefined ? 0 : cacheTokens / rate;
  }

  /**
   * Forgets every server not in a list.
   *
   * @param urls The servers that stay.
   */
  retain(urls: ReadonlySet<string>): void {
    for (const url of this.#servers.keys()) if (!urls.has(url)) this.#servers.delete(url);
  }
}
