/**
 * Prometheus metrics: serves `GET /metrics` (text format 0.0.4) on the gateway's port.
 *
 * Per-request series are counted in `onResponse` (a few Map lookups per request); per-server
 * gauges, breaker states and route weights are read from the gateway when scraped. Label values
 * come from the configuration only (model names, server URLs), so client input never creates a
 * series: a model that is not configured counts as `model="unknown"`.
 *
 * Series: `llmstream_requests_total{model,server,path,status,outcome}`,
 * `llmstream_request_duration_seconds`, `llmstream_time_to_first_token_seconds` and
 * `llmstream_gateway_overhead_seconds` (histograms by model), `llmstream_prompt_tokens_total` and
 * `llmstream_completion_tokens_total` (by model), `llmstream_retries_total{model,server}`,
 * `llmstream_server_in_flight`, `llmstream_server_queued`, `llmstream_server_healthy`,
 * `llmstream_server_ejections_total`, `llmstream_server_metrics_age_seconds`,
 * `llmstream_server_metrics_stale`, `llmstream_server_breaker_state{server,state}`,
 * `llmstream_route_weight{model,server}`, `llmstream_config_reloads_total` and
 * `llmstream_config_last_reload_timestamp_seconds`.
 *
 * Options:
 * - `path`: where to serve (default `/metrics`).
 * - `tokens`: count prompt and completion tokens (default true; makes the gateway read usage);
 *   `false` leaves the token series out.
 * - `token`: when set, scrapes must send `Authorization: Bearer TOKEN` (use `${VAR}`).
 *
 * @module
 */
import { z } from "zod";
import { HttpError } from "../common/errors.ts";
import type { Plugin, PluginContext, PluginOptions } from "./types.ts";
import { PROMETHEUS_CONTENT_TYPE, writeFamily, writeSample } from "./_prometheus.ts";
import { writeFleet } from "./_prometheus_fleet.ts";
import { RequestMetrics, type SeriesSnapshot } from "./_prometheus_requests.ts";

const optionsSchema = z.strictObject({
  path: z.string().regex(/^\/[\x21-\x7e]*$/, "must start with / and hold no spaces")
    .default("/metrics"),
  tokens: z.boolean().default(true),
  token: z.string().min(1).optional(),
});

const encoder = new TextEncoder();

/**
 * Creates the metrics plugin; it counts config reloads until closed.
 *
 * @param options The spec's options (see the module docs) and the plugin context.
 * @returns The plugin.
 * @throws Error when the options are invalid.
 */
export default function createMetrics(options: PluginOptions): Plugin {
  const parsed = optionsSchema.safeParse(options.options);
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
  }
  const settings = parsed.data;
  const context = options.context;
  const requests = new RequestMetrics({
    isServer: (url) => context.hasServer(url),
    tokens: settings.tokens,
  });
  const reloads = { count: 0, at: 0 };
  const unsubscribe = context.onSpecChange(() => {
    reloads.count++;
    reloads.at = Date.now();
  });
  const expected = settings.token === undefined ? undefined : `Bearer ${settings.token}`;
  const workers = context.workers;
  // With several workers, a scrape sums every worker's counts: each request is counted once.
  const unserve = workers?.serve("metrics.requests", () => requests.snapshot());
  const allRequests = async (): Promise<RequestMetrics> => {
    if (workers === undefined) return requests;
    const merged = new RequestMetrics({
      isServer: (url) => context.hasServer(url),
      tokens: settings.tokens,
    });
    for (const answer of await workers.gather("metrics.requests")) {
      merged.absorb(answer as SeriesSnapshot[]);
    }
    return merged;
  };
  return {
    wantsUsage: settings.tokens,
    onResponse(request, outcome) {
      requests.record(request, outcome);
    },
    routes(route) {
      if (route.path !== settings.path) return undefined;
      const method = route.request.method;
      if (method !== "GET" && method !== "HEAD") {
        throw new HttpError(
          405,
          "invalid_request_error",
          `Method "${method}" is not allowed on "${settings.path}": use GET`,
          {
            code: "method_not_allowed",
            headers: { allow: "GET" },
          },
        );
      }
      if (
        expected !== undefined && !sameText(route.request.headers.get("authorization"), expected)
      ) {
        throw new HttpError(401, "authentication_error", "The metrics token is missing or wrong", {
          code: "invalid_api_key",
          headers: { "www-authenticate": "Bearer" },
        });
      }
      return allRequests().then((counted) =>
        new Response(method === "HEAD" ? null : render(context, counted, reloads), {
          headers: { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" },
        })
      );
    },
    close() {
      unsubscribe();
      unserve?.();
    },
  };
}

function render(
  context: PluginContext,
  requests: RequestMetrics,
  reloads: { count: number; at: number },
): string {
  const out: string[] = [];
  requests.write(out, context.models());
  writeFleet(out, context);
  writeFamily(out, {
    name: "llmstream_config_reloads_total",
    type: "counter",
    help: "Specs put in force after start (file reloads and admin API changes).",
  });
  writeSample(out, { name: "llmstream_config_reloads_total", labels: "", value: reloads.count });
  writeFamily(out, {
    name: "llmstream_config_last_reload_timestamp_seconds",
    type: "gauge",
    help: "When the last spec was put in force, in seconds since the epoch (0: none yet).",
  });
  writeSample(out, {
    name: "llmstream_config_last_reload_timestamp_seconds",
    labels: "",
    value: reloads.at / 1000,
  });
  out.push("");
  return out.join("\n");
}

/** Compares two strings in time that depends on their lengths only. */
function sameText(given: string | null, expected: string): boolean {
  const a = encoder.encode(given ?? "");
  const b = encoder.encode(expected);
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i]!;
  return diff === 0;
}
