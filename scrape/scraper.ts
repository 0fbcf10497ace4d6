/**
 * A scraper loop: fetches `/metrics` of every target each interval, concurrently, and reports one
 * {@link ScrapeResult} per target and tick. It knows nothing of the gateway: the caller maps results
 * onto its pool (and applies {@link isStale}).
 *
 * Each fetch has its own abort timeout, shorter than the interval; a target whose previous scrape
 * is still running is skipped for that tick, so a slow server never delays the others or the next
 * tick. Nothing throws into the caller: failures become `ok: false` results.
 *
 * @example
 * ```ts
 * const scraper = new Scraper({
 *   intervalSeconds: 0.25,
 *   onResult: (r) => r.ok ? pool.update(r.url, r.metrics) : pool.fail(r.url, r.error),
 * });
 * scraper.setTargets(["http://10.0.0.5:8000", "http://10.0.0.6:8000"]);
 * scraper.start();
 * // ...
 * await scraper.stop();
 * ```
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { ServerMetrics } from "../strategies/types.ts";
import { parsePrometheusText } from "./prometheus_text.ts";
import { ENGINE_METRIC_NAMES, type Reading, toReadings, toServerMetrics } from "./engines.ts";

const logger = getLogger(["llmstream", "scrape"]);

/** A scrape that got a usable `/metrics` body. */
export interface ScrapeSuccess {
  /** The target as given to {@link Scraper.setTargets}. */
  readonly url: string;
  /** Always `true`. */
  readonly ok: true;
  /** Model name (or `"*"`, see `ANY_MODEL`) to its raw reading. */
  readonly readings: Map<string, Reading>;
  /** The same models' normalised metrics; the hit rate spans the previous successful scrape. */
  readonly metrics: Map<string, ServerMetrics>;
  /** Malformed lines skipped (0 for a clean body). */
  readonly errors: number;
  /** The first malformed line, when `errors > 0`. */
  readonly error?: string;
  /** When the scrape finished, in milliseconds since the epoch. */
  readonly at: number;
}

/** A scrape that failed: unreachable, timed out, non-2xx, or nothing parseable. */
export interface ScrapeFailure {
  /** The target as given to {@link Scraper.setTargets}. */
  readonly url: string;
  /** Always `false`. */
  readonly ok: false;
  /** What went wrong, in a sentence naming the URL. */
  readonly error: string;
  /** When the scrape ended, in milliseconds since the epoch. */
  readonly at: number;
}

/** The outcome of scraping one target once. */
export type ScrapeResult = ScrapeSuccess | ScrapeFailure;

/** Options of {@link Scraper}. */
export interface ScraperOptions {
  /** Seconds between ticks; fractions allowed (e.g. 0.25). */
  readonly intervalSeconds: number;
  /** Abort a fetch after this long; default `min(interval * 0.8, 5000)`; must be below the interval. */
  readonly timeoutMs?: number;
  /** Path appended to each target URL (default `/metrics`). */
  readonly path?: string;
  /** Receives every result; exceptions it throws are logged and dropped. */
  onResult(result: ScrapeResult): void;
}

/** Options of {@link isStale}. */
export interface IsStaleOptions {
  /** The scrape interval in seconds. */
  readonly intervalSeconds: number;
  /** Intervals after which metrics count as stale (default 3). */
  readonly intervals?: number;
}

/**
 * Tells whether metrics scraped at `scrapedAt` are too old to route on at `now`.
 *
 * @param scrapedAt When the scrape finished (ms since the epoch).
 * @param now The current time (ms since the epoch).
 * @param options `intervalSeconds`, and `intervals` (default 3).
 * @returns `true` when older than `intervals` scrape intervals.
 * @example
 * ```ts
 * isStale(1_000, 1_800, { intervalSeconds: 0.25 }); // true: 800 ms > 3 x 250 ms
 * ```
 */
export function isStale(scrapedAt: number, now: number, options: IsStaleOptions): boolean {
  return now - scrapedAt > (options.intervals ?? 3) * options.intervalSeconds * 1000;
}

/** One running fetch. `quiet` drops its result (target removed, or scraper stopped). */
interface InFlight {
  readonly controller: AbortController;
  quiet: boolean;
  done: Promise<void>;
}

class TimeoutError extends Error {
  override name = "TimeoutError";
}

/** Scrapes the `/metrics` of a set of servers on an interval. */
export class Scraper {
  readonly #onResult: (result: ScrapeResult) => void;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #path: string;
  /** Target URL to its metrics URL. */
  #targets = new Map<string, string>();
  readonly #inFlight = new Map<string, InFlight>();
  /** Target URL to its last successful readings, for counter deltas. */
  readonly #previous = new Map<string, Map<string, Reading>>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * Creates a stopped scraper with no targets.
   *
   * @param options Interval, timeout, path and the result callback.
   * @throws {RangeError} When the interval is not positive or the timeout not below it.
   */
  constructor(options: ScraperOptions) {
    const intervalMs = options.intervalSeconds * 1000;
    if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) {
      throw new RangeError(`Scrape interval "${options.intervalSeconds}" is not a positive number`);
    }
    const timeoutMs = options.timeoutMs ?? Math.min(intervalMs * 0.8, 5000);
    if (!(timeoutMs > 0) || timeoutMs >= intervalMs) {
      throw new RangeError(
        `Scrape timeout "${timeoutMs}" ms must be positive and below the interval (${intervalMs} ms)`,
      );
    }
    this.#onResult = options.onResult;
    this.#intervalMs = intervalMs;
    this.#timeoutMs = timeoutMs;
    this.#path = options.path ?? "/metrics";
  }

  /**
   * Replaces the set of targets. Scrapes of removed targets are aborted and not reported; their
   * previous readings are forgotten. Duplicates are ignored.
   *
   * @param urls Base URLs, e.g. `http://10.0.0.5:8000` (a trailing `/` is ignored).
   */
  setTargets(urls: readonly string[]): void {
    const next = new Map<string, string>();
    for (const url of urls) next.set(url, url.replace(/\/+$/, "") + this.#path);
    for (const url of this.#targets.keys()) {
      if (next.has(url)) continue;
      this.#previous.delete(url);
      this.#silence(url);
    }
    this.#targets = next;
  }

  /** Starts ticking: scrapes all targets now, then every interval. Does nothing if started. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
    this.#tick();
  }

  /**
   * Stops ticking, aborts in-flight fetches (their results are not reported) and resolves once
   * they have settled. The scraper may be started again.
   */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    const pending = [...this.#inFlight.values()].map((f) => f.done);
    for (const url of [...this.#inFlight.keys()]) this.#silence(url);
    await Promise.all(pending);
  }

  /**
   * Scrapes every target once, now, whether started or not; a target already being scraped is
   * not fetched twice (its running scrape is awaited).
   *
   * @returns Resolves when every target's scrape has been reported.
   */
  async scrapeNow(): Promise<void> {
    const runs: Promise<void>[] = [];
    for (const [url, metricsUrl] of this.#targets) {
      runs.push(this.#inFlight.get(url)?.done ?? this.#scrape(url, metricsUrl));
    }
    await Promise.all(runs);
  }

  #tick(): void {
    for (const [url, metricsUrl] of this.#targets) {
      if (!this.#inFlight.has(url)) void this.#scrape(url, metricsUrl);
    }
  }

  #silence(url: string): void {
    const flight = this.#inFlight.get(url);
    if (flight === undefined) return;
    flight.quiet = true;
    flight.controller.abort();
    this.#inFlight.delete(url);
  }

  #scrape(url: string, metricsUrl: string): Promise<void> {
    const controller = new AbortController();
    const flight: InFlight = { controller, quiet: false, done: Promise.resolve() };
    const timer = setTimeout(() => controller.abort(new TimeoutError()), this.#timeoutMs);
    flight.done = this.#fetch(url, metricsUrl, controller.signal).then((result) => {
      clearTimeout(timer);
      if (this.#inFlight.get(url) === flight) this.#inFlight.delete(url);
      if (!flight.quiet) this.#report(url, result);
    });
    this.#inFlight.set(url, flight);
    return flight.done;
  }

  #report(url: string, result: ScrapeResult): void {
    if (result.ok) this.#previous.set(url, result.readings);
    try {
      this.#onResult(result);
    } catch (error) {
      logger.error("The scrape result callback threw for {url}: {error}", { url, error });
    }
  }

  async #fetch(url: string, metricsUrl: string, signal: AbortSignal): Promise<ScrapeResult> {
    let text: string;
    try {
      const response = await fetch(metricsUrl, {
        signal,
        headers: { "accept": "text/plain;version=0.0.4", "accept-encoding": "identity" },
      });
      if (!response.ok) {
        await response.body?.cancel();
        const status = `${response.status} ${response.statusText}`.trim();
        return failure(url, `Server "${metricsUrl}" answered HTTP ${status}`);
      }
      text = await response.text();
    } catch (error) {
      if (signal.reason instanceof TimeoutError) {
        return failure(url, `Server "${metricsUrl}" did not answer within ${this.#timeoutMs} ms`);
      }
      return failure(url, `Fetching "${metricsUrl}" failed: ${describe(error)}`);
    }
    try {
      return this.#parse(url, metricsUrl, text);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return failure(url, `Reading the metrics of "${metricsUrl}" failed: ${message}`);
    }
  }

  #parse(url: string, metricsUrl: string, text: string): ScrapeResult {
    const at = Date.now();
    const parsed = parsePrometheusText(text, { names: ENGINE_METRIC_NAMES });
    if (parsed.samples.length === 0 && parsed.errors > 0) {
      return failure(
        url,
        `Server "${metricsUrl}" returned no usable engine metrics (${parsed.errors} malformed lines; first at ${parsed.firstError})`,
      );
    }
    const readings = toReadings(parsed.samples);
    const before = this.#previous.get(url);
    const metrics = new Map<string, ServerMetrics>();
    for (const [model, reading] of readings) {
      metrics.set(model, toServerMetrics(reading, at, { previous: before?.get(model) }));
    }
    const base = { url, ok: true as const, readings, metrics, errors: parsed.errors, at };
    return parsed.firstError === undefined ? base : { ...base, error: parsed.firstError };
  }
}

function failure(url: string, error: string): ScrapeFailure {
  return { url, ok: false, error, at: Date.now() };
}

/** The most specific message of a fetch error: Deno puts the reason in `cause`. */
function describe(error: unknown): string {
  const inner = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const message = inner instanceof Error ? inner.message : String(inner);
  return message.replace(/^error sending request for url \([^)]*\): /, "");
}
