/**
 * Scrape-time series of the metrics plugin: read from the gateway's pool and routing table when
 * `/metrics` is asked for, never kept per request. Servers are the pool's (configured URLs);
 * weights are per model and server of the routing table in force.
 *
 * @module
 */
import type { FleetServer, PluginContext } from "./types.ts";
import { type FamilyType, labelList, writeFamily, writeSample } from "./_prometheus.ts";

const BREAKER_STATES = ["closed", "open", "half_open"] as const;

/** One per-server family: its name, type, help and how to read a server's value. */
interface ServerFamily {
  readonly name: string;
  readonly type: FamilyType;
  readonly help: string;
  value(server: FleetServer, now: number): number | undefined;
}

const SERVER_FAMILIES: readonly ServerFamily[] = [
  {
    name: "llmstream_server_in_flight",
    type: "gauge",
    help: "Requests the gateway has in flight on the server.",
    value: (server) => server.inFlight,
  },
  {
    name: "llmstream_server_queued",
    type: "gauge",
    help: "Requests waiting for a slot on the server (max_concurrent reached).",
    value: (server) => server.queued,
  },
  {
    name: "llmstream_server_healthy",
    type: "gauge",
    help: "1 when the server passes active health checks, else 0.",
    value: (server) => server.healthy ? 1 : 0,
  },
  {
    name: "llmstream_server_scrape_errors_total",
    type: "counter",
    help: "Failed scrapes of the server's /metrics.",
    value: (server) => server.scrapeErrors,
  },
  {
    name: "llmstream_server_ejections_total",
    type: "counter",
    help: "Times the circuit breaker ejected the server.",
    value: (server) => server.ejections,
  },
  {
    name: "llmstream_server_metrics_age_seconds",
    type: "gauge",
    help: "Age of the server's last successful metrics scrape (absent until one succeeds).",
    value: (server, now) => server.metricsAt === 0 ? undefined : (now - server.metricsAt) / 1000,
  },
  {
    name: "llmstream_server_metrics_stale",
    type: "gauge",
    help: "1 when the server's scraped metrics are missing or older than " +
      "3 scrape intervals (strategies then use in-flight counts), else 0.",
    value: (server) => server.metricsStale ? 1 : 0,
  },
];

/**
 * Appends the per-server and per-route families, read from the gateway now.
 *
 * @param out The lines being written.
 * @param context What the plugin may read of the gateway.
 */
export function writeFleet(out: string[], context: PluginContext): void {
  const now = Date.now();
  const servers = context.servers().map((server) => ({
    server,
    labels: labelList([["server", server.url]]),
  }));
  for (const family of SERVER_FAMILIES) {
    const samples: string[] = [];
    for (const { server, labels } of servers) {
      const value = family.value(server, now);
      if (value !== undefined) writeSample(samples, { name: family.name, labels, value });
    }
    writeFamily(out, family);
    out.push(...samples);
  }
  writeFamily(out, {
    name: "llmstream_server_breaker_state",
    type: "gauge",
    help: "Circuit breaker state of the server: 1 for the current state, 0 for the others.",
  });
  for (const { server, labels } of servers) {
    for (const state of BREAKER_STATES) {
      writeSample(out, {
        name: "llmstream_server_breaker_state",
        labels: `${labels},state="${state}"`,
        value: server.breakerState === state ? 1 : 0,
      });
    }
  }
  writeFamily(out, {
    name: "llmstream_route_weight",
    type: "gauge",
    help: "Weight of the server in the model's route now: the strategy's live weight when it " +
      "reports one (real_time_metrics), else the spec's weight; 0 while unhealthy or ejected.",
  });
  for (const route of context.routes()) {
    for (const server of route.servers) {
      writeSample(out, {
        name: "llmstream_route_weight",
        labels: labelList([["model", route.model], ["server", server.url]]),
        value: server.weight,
      });
    }
  }
}
