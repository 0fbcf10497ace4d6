/**
 * What the admin API shows: models as the running spec has them (validated, `${VAR}` substituted,
 * defaults filled in), and servers with their live state.
 *
 * @module
 */
import type { Gateway } from "../gateway/gateway.ts";
import type { ModelSpec } from "../config/schema.ts";

/** A model as `GET /admin/models/{name}` shows it: its name and its validated spec entry. */
export type ModelView = { name: string } & ModelSpec;

/** One server as `GET /admin/servers` shows it. */
export interface ServerView {
  /** Base URL. */
  url: string;
  /** Whether the running config names it (false: removed, finishing its requests). */
  in_config: boolean;
  /** The models using it: the spec's weight and the strategy's live weight now, if it has one. */
  models: { model: string; weight: number; current_weight: number; served_model: string }[];
  /** Requests this gateway has in flight on it now. */
  in_flight: number;
  /** Requests sent in total. */
  requests: number;
  /** Requests sent since its last metrics scrape. */
  sent_since_scrape: number;
  /** Whether active health checks pass. */
  healthy: boolean;
  /** Whether it may take a new request now (healthy and not ejected). */
  available: boolean;
  /** Outlier-ejection state: `closed`, `open` or `half_open`. */
  breaker: string;
  /** Its concurrency cap, or `null`. */
  max_concurrent: number | null;
  /** Requests waiting for one of its slots. */
  queued: number;
  /** When its metrics were last scraped (ISO 8601), or `null` if never. */
  metrics_scraped_at: string | null;
  /** Age of those metrics in milliseconds, or `null`. */
  metrics_age_ms: number | null;
  /** The last scraped metrics by model name (`*`: any model), fresh or not. */
  metrics: Record<string, Record<string, number | undefined>>;
}

/**
 * Shows every server the gateway knows: those the running config names and removed ones still
 * finishing requests.
 *
 * @param gateway The running gateway.
 * @param now The current time in milliseconds (default `Date.now()`).
 * @returns Servers in URL order.
 */
export function serverViews(gateway: Gateway, now: number = Date.now()): ServerView[] {
  const uses = new Map<string, ServerView["models"]>();
  for (const route of gateway.routes.values()) {
    const live = route.endpoints.filter((endpoint) => endpoint.server.available(now));
    for (const endpoint of route.endpoints) {
      const list = uses.get(endpoint.url) ?? [];
      list.push({
        model: route.name,
        weight: endpoint.weight,
        current_weight: !endpoint.server.available(now)
          ? 0
          : route.strategy.weightOf?.(endpoint, live) ?? endpoint.weight,
        served_model: endpoint.servedModel,
      });
      uses.set(endpoint.url, list);
    }
  }
  const views: ServerView[] = [];
  for (const server of gateway.pool.all()) {
    const metrics: ServerView["metrics"] = {};
    for (const [model, value] of server.lastMetrics) {
      metrics[model] = {
        running: value.running,
        waiting: value.waiting,
        kv_usage: value.kvUsage,
        prefix_hit_rate: value.prefixHitRate,
      };
    }
    views.push({
      url: server.url,
      in_config: uses.has(server.url),
      models: uses.get(server.url) ?? [],
      in_flight: server.inFlight,
      requests: server.requests,
      sent_since_scrape: server.sentSinceScrape,
      healthy: server.healthy,
      available: server.available(now),
      breaker: server.breaker.state,
      max_concurrent: server.maxConcurrent ?? null,
      queued: server.queued,
      metrics_scraped_at: server.metricsAt > 0 ? new Date(server.metricsAt).toISOString() : null,
      metrics_age_ms: server.metricsAt > 0 ? Math.max(0, now - server.metricsAt) : null,
      metrics,
    });
  }
  return views.sort((a, b) => a.url.localeCompare(b.url));
}
