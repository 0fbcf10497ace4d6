/**
 * The dashboard's panels, defined once: the Grafana JSON (`docs/grafana/llmstream-dashboard.json`)
 * and the rendered picture are both made from these definitions.
 *
 * @module
 */
import {
  divide,
  histogramQuantile,
  type Matcher,
  metric,
  minus,
  type Query,
  rate,
  sumBy,
} from "./promql.ts";

/** One query of a panel and its legend (`{{label}}` placeholders, as in Grafana). */
export interface Target {
  /** The query. */
  readonly query: Query;
  /** Legend format. */
  readonly legend: string;
}

/** Units the panels use (Grafana unit ids). */
export type Unit = "reqps" | "percentunit" | "s" | "short";

/** One panel. */
export interface Panel {
  /** Title. */
  readonly title: string;
  /** Description (shown on hover in Grafana). */
  readonly description: string;
  /** Grafana panel type. */
  readonly type: "timeseries" | "state-timeline";
  /** Unit of the values. */
  readonly unit: Unit;
  /** Position on Grafana's 24-column grid. */
  readonly grid: { x: number; y: number; w: number; h: number };
  /** Queries. */
  readonly targets: readonly Target[];
}

const MODEL: Matcher = ["model", "=~", "$model"];
const requests = (extra: Matcher[] = []) => metric("llmstream_requests_total", [MODEL, ...extra]);
const quantiles = (name: string): Target[] =>
  [0.5, 0.99].map((phi) => ({
    query: histogramQuantile(
      phi,
      sumBy(["model", "le"], rate(metric(`${name}_bucket`, [MODEL]))),
    ),
    legend: `{{model}} p${phi * 100}`,
  }));

/** The panels, in grid order. */
export const PANELS: readonly Panel[] = [
  {
    title: "Request rate by model and status",
    description: "Requests that ended per second (llmstream_requests_total).",
    type: "timeseries",
    unit: "reqps",
    grid: { x: 0, y: 0, w: 10, h: 9 },
    targets: [{
      query: sumBy(["model", "status"], rate(requests())),
      legend: "{{model}} {{status}}",
    }],
  },
  {
    title: "Errors by model and status",
    description: "Non-2xx answers per second (unknown models answer 404).",
    type: "timeseries",
    unit: "reqps",
    grid: { x: 10, y: 0, w: 8, h: 9 },
    targets: [{
      query: sumBy(["model", "status"], rate(requests([["status", "!~", "2.."]]))),
      legend: "{{model}} {{status}}",
    }],
  },
  {
    title: "5xx share by model",
    description: "Share of answers with a 5xx status.",
    type: "timeseries",
    unit: "percentunit",
    grid: { x: 18, y: 0, w: 6, h: 9 },
    targets: [{
      query: minus(
        1,
        divide(
          sumBy(["model"], rate(requests([["status", "!~", "5.."]]))),
          sumBy(["model"], rate(requests())),
        ),
      ),
      legend: "{{model}}",
    }],
  },
  {
    title: "Request duration p50 / p99",
    description: "From arrival to the end of the answer, requests a server took.",
    type: "timeseries",
    unit: "s",
    grid: { x: 0, y: 9, w: 12, h: 9 },
    targets: quantiles("llmstream_request_duration_seconds"),
  },
  {
    title: "Time to first token p50 / p99",
    description: "From arrival to the first chunk of streamed answers.",
    type: "timeseries",
    unit: "s",
    grid: { x: 12, y: 9, w: 12, h: 9 },
    targets: quantiles("llmstream_time_to_first_token_seconds"),
  },
  {
    title: "Gateway overhead p50 / p99",
    description: "Time spent in the gateway itself, without waiting on servers.",
    type: "timeseries",
    unit: "s",
    grid: { x: 0, y: 18, w: 8, h: 9 },
    targets: quantiles("llmstream_gateway_overhead_seconds"),
  },
  {
    title: "Tokens per second",
    description: "Prompt and completion tokens the servers reported.",
    type: "timeseries",
    unit: "short",
    grid: { x: 8, y: 18, w: 8, h: 9 },
    targets: [
      {
        query: sumBy(["model"], rate(metric("llmstream_completion_tokens_total", [MODEL]))),
        legend: "{{model}} completion",
      },
      {
        query: sumBy(["model"], rate(metric("llmstream_prompt_tokens_total", [MODEL]))),
        legend: "{{model}} prompt",
      },
    ],
  },
  {
    title: "In flight per server",
    description: "Requests the gateway has in flight on each server.",
    type: "timeseries",
    unit: "short",
    grid: { x: 16, y: 18, w: 8, h: 9 },
    targets: [{ query: metric("llmstream_server_in_flight"), legend: "{{server}}" }],
  },
  {
    title: "Server health and breaker",
    description: "Active health checks (1 healthy) and passive ejection (1 breaker closed).",
    type: "state-timeline",
    unit: "short",
    grid: { x: 0, y: 27, w: 8, h: 9 },
    targets: [
      { query: metric("llmstream_server_healthy"), legend: "health {{server}}" },
      {
        query: metric("llmstream_server_breaker_state", [["state", "=", "closed"]]),
        legend: "breaker {{server}}",
      },
    ],
  },
  {
    title: "Route weights (share per model)",
    description: "Live weight for real_time_metrics, static weight otherwise, as a share of the " +
      "model's total; 0 while a server is unhealthy or ejected.",
    type: "timeseries",
    unit: "percentunit",
    grid: { x: 8, y: 27, w: 8, h: 9 },
    targets: [{
      query: divide(
        metric("llmstream_route_weight", [MODEL]),
        sumBy(["model"], metric("llmstream_route_weight", [MODEL])),
        { on: ["model"] },
      ),
      legend: "{{model}} {{server}}",
    }],
  },
  {
    title: "Retries and ejections",
    description: "Failed tries retried elsewhere per second; breaker ejections in the window.",
    type: "timeseries",
    unit: "short",
    grid: { x: 16, y: 27, w: 8, h: 9 },
    targets: [
      {
        query: sumBy(["server"], rate(metric("llmstream_retries_total", [MODEL]))),
        legend: "retries/s {{server}}",
      },
      {
        query: sumBy(
          ["server"],
          rate(metric("llmstream_server_ejections_total"), { increase: true }),
        ),
        legend: "ejections {{server}}",
      },
    ],
  },
];

/**
 * Fills a legend format with a series' labels.
 *
 * @param format E.g. `{{model}} {{status}}`.
 * @param labels The series' labels.
 * @returns The legend text.
 */
export function legendOf(format: string, labels: Readonly<Record<string, string>>): string {
  return format.replace(/\{\{(\w+)\}\}/g, (_, name: string) => labels[name] ?? "");
}
