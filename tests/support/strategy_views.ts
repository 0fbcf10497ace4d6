/**
 * What a strategy is handed, built by hand for tests of selection alone (selection is free of
 * HTTP): a server's view, a request's facts, scraped metrics.
 *
 * @module
 */
import type { RequestFacts, ServerMetrics, ServerView } from "../../strategies/types.ts";

/**
 * A server's view: idle, weight 1, no fresh metrics, unless `extra` says otherwise.
 *
 * @example
 * ```ts
 * const busy = view("http://a", { inFlight: 3 });
 * ```
 */
export function view(url: string, extra: Partial<ServerView> = {}): ServerView {
  return {
    url,
    weight: 1,
    index: 0,
    inFlight: 0,
    sentSinceScrape: 0,
    metrics: undefined,
    ...extra,
  };
}

/** A chat request's facts with this body (and headers). */
export function facts(body: Record<string, unknown>, headers: HeadersInit = {}): RequestFacts {
  return {
    model: "m",
    path: "/v1/chat/completions",
    headers: new Headers(headers),
    body,
    prompt: () => "",
  };
}

/** Scraped metrics, scraped now, with nothing running or waiting unless `values` says so. */
export function metrics(values: Partial<ServerMetrics>): ServerMetrics {
  return { running: 0, waiting: 0, scrapedAt: Date.now(), ...values };
}
