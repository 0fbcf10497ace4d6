/**
 * The {@link PluginContext} of a running gateway: read-only views of its fleet, made fresh on
 * each call (they are read when `/metrics` is scraped, not per request).
 *
 * @module
 */
import type { FleetRoute, FleetServer, PluginContext, WorkerPeers } from "../plugins/types.ts";
import { type FleetSource, STALE_INTERVALS, staleAfterMs } from "../fleet/fleet.ts";

/**
 * Makes the context plugins of a gateway receive.
 *
 * @param fleet The gateway's fleet.
 * @param workers The other workers, when several serve.
 * @returns The context.
 * @example
 * ```ts
 * const context = pluginContextOf(gateway);
 * console.log(context.servers().map((server) => server.url));
 * ```
 */
export function pluginContextOf(fleet: FleetSource, workers?: WorkerPeers): PluginContext {
  return {
    ...(workers && { workers }),
    staleIntervals: STALE_INTERVALS,
    addsStreamUsage: () => fleet.spec.usage.add_stream_usage,
    servers(): FleetServer[] {
      const now = Date.now();
      const staleMs = staleAfterMs(fleet.spec);
      return [...fleet.pool.all()].map((server) => ({
        url: server.url,
        inFlight: server.inFlight,
        queued: server.queued,
        healthy: server.healthy,
        breakerState: server.breaker.state,
        ejections: server.breaker.ejections,
        scrapeErrors: server.scrapeErrors,
        metricsAt: server.metricsAt,
        metricsStale: now - server.metricsAt > staleMs,
      }));
    },
    routes(): FleetRoute[] {
      const now = Date.now();
      return [...fleet.routes.values()].map((route) => {
        const live = route.endpoints.filter((endpoint) => endpoint.server.available(now));
        return {
          model: route.name,
          servers: route.endpoints.map((endpoint) => ({
            url: endpoint.url,
            weight: !endpoint.server.available(now)
              ? 0
              : route.strategy.weightOf?.(endpoint, live) ?? endpoint.weight,
          })),
        };
      });
    },
    models: () => [...fleet.routes.keys()],
    hasServer: (url) => fleet.pool.get(url) !== undefined,
    onSpecChange: (listener) => fleet.onApply(listener),
  };
}
