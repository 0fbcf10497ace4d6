/**
 * A helper for cache-aware strategies: the prefill this gateway sent each server that the server
 * has probably not computed yet, which a scrape every half second cannot show.
 *
 * Each request adds its miss (the prompt tokens the server must compute) when it starts; the sum
 * drains at `prefillRate * speed` tokens a second and never exceeds the misses of requests still
 * in flight (an ended request's prefill is done).
 *
 * @module
 */

/** What one server has to prefill, as of `at`. */
interface Backlog {
  tokens: number;
  at: number;
  inFlight: number;
}

/** The prefill backlogs of one model's servers. */
export class PrefillBacklog {
  #servers = new Map<string, Backlog>();
  #prefillRate: number;

  /**
   * @param prefillRate Prompt tokens a second a server of speed 1 prefills; 0 keeps no backlog.
   */
  constructor(prefillRate: number) {
    this.#prefillRate = prefillRate;
  }

  /**
   * The prefill tokens a server probably still has to compute.
   *
   * @param url The server.
   * @param at `speed`: its speed (1 for the fastest); `now`: the time in milliseconds.
   * @returns Tokens.
   */
  of(url: string, at: { speed: number; now: number }): number {
    const backlog = this.#servers.get(url);
    if (backlog === undefined || this.#prefillRate === 0) return 0;
    const drained = (at.now - backlog.at) * this.#prefillRate * at.speed / 1000;
    return Math.min(backlog.inFlight, Math.max(0, backlog.tokens - drained));
  }

  /**
   * Adds a request's miss to its server's backlog as it starts.
   *
   * @param url The server.
   * @param miss `tokens`: the prompt tokens it must compute; `speed`, `now` as for `of`.
   * @returns The tokens added, to pass to {@link PrefillBacklog.end}; 0 with no prefill rate.
   */
  start(url: string, miss: { tokens: number; speed: number; now: number }): number {
    if (this.#prefillRate === 0) return 0;
    const tokens = this.of(url, miss) + miss.tokens;
    const inFlight = (this.#servers.get(url)?.inFlight ?? 0) + miss.tokens;
    this.#servers.set(url, { tokens, at: miss.now, inFlight });
    return miss.tokens;
  }

  /**
   * Notes that a request ended: its prefill is done.
   *
   * @param url The server.
   * @param tokens What {@link PrefillBacklog.start} returned for it.
   */
  end(url: string, tokens: number): void {
    const backlog = this.#servers.get(url);
    if (backlog !== undefined) backlog.inFlight = Math.max(0, backlog.inFlight - tokens);
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
