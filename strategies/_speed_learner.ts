/**
 * A helper for strategies: each server's speed learned from what the gateway sees, by Little's
 * law (time per request = mean requests in flight / mean completions per second, both counting
 * only the requests this strategy instance sent), the requests that ended since a server's
 * metrics were scraped (to correct a scraped load between scrapes), and this instance's share of
 * the requests the servers report (below 1 when other replicas or workers route to them too).
 *
 * Both sides of the ratio count this instance's own requests: a server's scraped `running` also
 * holds other replicas' and workers' requests, and over this instance's completions alone it
 * would make a server this instance sends little to look slow, so it would send it less still.
 *
 * @module
 */
import type { RequestOutcome, ServerView } from "./types.ts";

/** End times kept per server between scrapes, at most. */
const MAX_ENDS = 4096;

/** Per-server observations of a {@link SpeedLearner}. */
interface Observed {
  /** End times (ms since the epoch) not yet folded into the averages. */
  ends: number[];
  /** Successful ends since the last fold. */
  successes: number;
  /** `scrapedAt` of the last scrape folded in. */
  scrapedAt: number;
  /** When the averages were last folded (ms since the epoch; 0 before the first scrape). */
  foldedAt: number;
  /** This instance's requests in flight on the server now. */
  inFlight: number;
  /** When `inFlight` last changed, or the last fold if later. */
  changedAt: number;
  /** In-flight requests times milliseconds since the last fold. */
  area: number;
  /** Moving average of this instance's requests in flight. */
  running: number;
  /** Moving average of successful completions per second. */
  rate: number;
  /** Moving average of the requests the server reports running or waiting (every router's). */
  reported: number;
  /** Successful completions folded in so far. */
  completions: number;
  /** Seconds per request (running / rate), once there is enough data. */
  timePerRequest: number | undefined;
}

/**
 * Learns each server's time per request by Little's law: mean requests running over mean
 * completions per second, both as exponential moving averages over `window` seconds, updated on
 * each new scrape. A server's estimate changes only while it completes requests, so a server that
 * gets little traffic keeps its last estimate.
 */
export class SpeedLearner {
  #window: number;
  #servers = new Map<string, Observed>();

  /**
   * Creates a learner.
   *
   * @param window Seconds the averages span; 0 turns learning off.
   */
  constructor(window: number) {
    this.#window = window;
  }

  /**
   * Records that a request to a server started.
   *
   * @param server The server.
   * @param now The time now (ms since the epoch).
   */
  started(server: ServerView, now: number = Date.now()): void {
    this.#count(this.#of(server.url), now, 1);
  }

  /**
   * Records that a request to a server ended (one that {@link SpeedLearner.started} recorded).
   *
   * @param server The server.
   * @param outcome How it ended.
   * @param now The time now (ms since the epoch).
   */
  ended(server: ServerView, outcome: RequestOutcome, now: number = Date.now()): void {
    const observed = this.#of(server.url);
    this.#count(observed, now, -1);
    observed.ends.push(now);
    if (outcome === "success") observed.successes++;
    // Without scrapes nothing prunes these; keep the newest.
    if (observed.ends.length > MAX_ENDS) observed.ends.splice(0, MAX_ENDS / 2);
  }

  #count(observed: Observed, now: number, change: number): void {
    observed.area += observed.inFlight * Math.max(0, now - observed.changedAt);
    observed.changedAt = Math.max(observed.changedAt, now);
    observed.inFlight = Math.max(0, observed.inFlight + change);
  }

  /**
   * Counts requests that ended after the server's metrics were scraped.
   *
   * @param server The server.
   * @param now The time now (ms since the epoch).
   * @returns The count.
   */
  endedSince(server: ServerView, now: number): number {
    const scrapedAt = server.metrics?.scrapedAt;
    if (scrapedAt === undefined) return 0;
    const ends = this.#of(server.url).ends;
    let count = 0;
    for (let i = ends.length - 1; i >= 0 && ends[i]! > scrapedAt; i--) if (ends[i]! <= now) count++;
    return count;
  }

  /**
   * Folds a new scrape of the server into its averages (nothing when the scrape is not new).
   *
   * @param server The server.
   * @param now The time now (ms since the epoch).
   */
  observe(server: ServerView, now: number = Date.now()): void {
    const metrics = server.metrics;
    const observed = this.#of(server.url);
    if (metrics === undefined || metrics.scrapedAt <= observed.scrapedAt) return;
    observed.scrapedAt = metrics.scrapedAt;
    observed.ends = observed.ends.filter((at) => at > metrics.scrapedAt);
    // New scrapes pace the folds; the averages cover the time between folds.
    this.#count(observed, now, 0);
    const since = observed.foldedAt;
    const completed = observed.successes;
    const area = observed.area;
    observed.foldedAt = now;
    observed.successes = 0;
    observed.area = 0;
    if (since === 0 || now <= since || this.#window <= 0) return;
    const seconds = (now - since) / 1000;
    const alpha = 1 - Math.exp(-seconds / this.#window);
    observed.running += alpha * (area / (now - since) - observed.running);
    observed.rate += alpha * (completed / seconds - observed.rate);
    observed.reported += alpha * (metrics.running + metrics.waiting - observed.reported);
    observed.completions += completed;
    // Both averages start together, so their ratio is unbiased early on; three completions
    // make it mean something.
    if (observed.completions >= 3 && observed.rate > 0 && observed.running > 0) {
      observed.timePerRequest = observed.running / observed.rate;
    }
  }

  /**
   * Speeds relative to the fastest server with an estimate; servers without one get 1.
   *
   * @param servers The servers to compare.
   * @returns Speed by URL, in (0, 1].
   */
  speeds(servers: readonly ServerView[]): Map<string, number> {
    let fastest = Infinity;
    for (const server of servers) {
      const time = this.#servers.get(server.url)?.timePerRequest;
      if (time !== undefined && time < fastest) fastest = time;
    }
    const speeds = new Map<string, number>();
    for (const server of servers) {
      const time = this.#servers.get(server.url)?.timePerRequest;
      speeds.set(server.url, time === undefined ? 1 : Math.min(1, fastest / time));
    }
    return speeds;
  }

  /**
   * This instance's share of the requests the servers report running or waiting, averaged over
   * the window: about 1 when it routes alone, about a half beside another replica or worker that
   * sends as much.
   *
   * @param servers The servers.
   * @returns The share, at most 1, or `undefined` until a server reports a request (both averages
   * start together, so their ratio is unbiased early on).
   * @example
   * ```ts
   * const learner = new SpeedLearner(10);
   * learner.share([]); // undefined
   * ```
   */
  share(servers: readonly ServerView[]): number | undefined {
    let own = 0;
    let reported = 0;
    for (const server of servers) {
      const observed = this.#servers.get(server.url);
      own += observed?.running ?? 0;
      reported += observed?.reported ?? 0;
    }
    return reported > 0 ? Math.min(1, own / reported) : undefined;
  }

  #of(url: string): Observed {
    let observed = this.#servers.get(url);
    if (!observed) {
      observed = {
        ends: [],
        successes: 0,
        scrapedAt: 0,
        foldedAt: 0,
        inFlight: 0,
        changedAt: 0,
        area: 0,
        running: 0,
        rate: 0,
        reported: 0,
        completions: 0,
        timePerRequest: undefined,
      };
      this.#servers.set(url, observed);
    }
    return observed;
  }
}
