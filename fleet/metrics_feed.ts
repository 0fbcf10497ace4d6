/**
 * Feeds scraped `/metrics` into the server pool: one scraper over every server of the running
 * config, re-targeted on each config change and restarted when the interval changes. Requests never
 * wait on a scrape; strategies read whatever the pool last received.
 *
 * A server whose scrapes start failing is logged once ("falls back to in-flight counts"), and once
 * again when they succeed; never per request.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { Scraper, type ScrapeResult } from "../scrape/scraper.ts";
import type { FleetSource } from "./fleet.ts";

const logger = getLogger(["llmstream", "metrics"]);

/** Keeps the pool's metrics fresh for as long as it runs. */
export class MetricsFeed {
  #gateway: FleetSource;
  #scraper: Scraper | undefined;
  #interval = 0;
  #failing = new Set<string>();
  #unsubscribe: () => void;
  #scrapes = 0;
  readonly #onRecord: (() => void) | undefined;

  /**
   * Starts scraping the gateway's servers at the spec's `metrics_update_interval`.
   *
   * @param gateway The running gateway; config changes re-target the scraper.
   * @param options `onRecord` runs after each scrape result is recorded (workers get them).
   */
  constructor(gateway: FleetSource, options: { onRecord?: () => void } = {}) {
    this.#gateway = gateway;
    this.#onRecord = options.onRecord;
    this.#configure();
    this.#unsubscribe = gateway.onApply(() => this.#configure());
  }

  /** Successful scrapes so far, across all servers. */
  get scrapes(): number {
    return this.#scrapes;
  }

  /** Servers whose last scrape failed. */
  get failing(): ReadonlySet<string> {
    return this.#failing;
  }

  /**
   * Scrapes every server once now and waits for the results.
   *
   * @returns Resolves when every result is recorded.
   */
  async scrapeNow(): Promise<void> {
    await this.#scraper?.scrapeNow();
  }

  /** Stops scraping and waits for running scrapes to end. */
  async stop(): Promise<void> {
    this.#unsubscribe();
    await this.#scraper?.stop();
    this.#scraper = undefined;
  }

  #configure(): void {
    const interval = this.#gateway.spec.metrics_update_interval;
    if (this.#scraper && interval !== this.#interval) {
      void this.#scraper.stop();
      this.#scraper = undefined;
    }
    if (!this.#scraper) {
      this.#interval = interval;
      this.#scraper = new Scraper({
        intervalSeconds: interval,
        onResult: (result) => this.#record(result),
      });
      this.#scraper.start();
    }
    const urls = new Set<string>();
    for (const route of this.#gateway.routes.values()) {
      for (const endpoint of route.endpoints) urls.add(endpoint.url);
    }
    for (const url of this.#failing) if (!urls.has(url)) this.#failing.delete(url);
    this.#scraper.setTargets([...urls]);
  }

  #record(result: ScrapeResult): void {
    const server = this.#gateway.pool.get(result.url);
    if (!server) return;
    this.#onRecord?.();
    if (result.ok) {
      server.setMetrics(result.metrics);
      this.#scrapes++;
      if (this.#failing.delete(result.url)) {
        logger.info("Metrics of {url} are back; routing on them again", { url: result.url });
      }
      return;
    }
    server.scrapeErrors++;
    if (!this.#failing.has(result.url)) {
      this.#failing.add(result.url);
      logger.warn(
        "Scraping {url} failed: {error}. Its metrics go stale after three intervals; until they " +
          "return, strategies use the gateway's in-flight count for it",
        { url: result.url, error: result.error },
      );
    }
  }
}
