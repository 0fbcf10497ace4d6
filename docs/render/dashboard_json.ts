/**
 * Builds the Grafana dashboard JSON from the panel definitions: a `datasource` variable (any
 * Prometheus), a `model` variable, config reloads as annotations.
 *
 * @module
 */
import type { Panel } from "./panels.ts";

const DATASOURCE = { type: "prometheus", uid: "${datasource}" };

/**
 * Returns the dashboard as Grafana's JSON model (import it from Dashboards > New > Import).
 *
 * @param panels The panels.
 * @returns The dashboard object.
 */
export function dashboardJson(panels: readonly Panel[]): Record<string, unknown> {
  return {
    title: "LLMStream",
    uid: "llmstream-gateway",
    description: "LLMStream gateway: traffic, latency, tokens, servers and routing weights.",
    tags: ["llmstream", "llm", "gateway"],
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: "10s",
    time: { from: "now-1h", to: "now" },
    timepicker: {},
    timezone: "",
    templating: {
      list: [
        {
          name: "datasource",
          label: "Prometheus",
          type: "datasource",
          query: "prometheus",
          current: {},
          hide: 0,
          refresh: 1,
          options: [],
        },
        {
          name: "model",
          label: "Model",
          type: "query",
          datasource: DATASOURCE,
          query: { query: "label_values(llmstream_requests_total, model)", refId: "models" },
          definition: "label_values(llmstream_requests_total, model)",
          includeAll: true,
          multi: true,
          allValue: ".*",
          current: { text: ["All"], value: ["$__all"] },
          refresh: 2,
          sort: 1,
          hide: 0,
          options: [],
        },
      ],
    },
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: "grafana", uid: "-- Grafana --" },
          enable: true,
          hide: true,
          iconColor: "rgba(0, 211, 255, 1)",
          name: "Annotations & Alerts",
          type: "dashboard",
        },
        {
          name: "Config reloads",
          datasource: DATASOURCE,
          enable: true,
          iconColor: "#B877D9",
          expr: "changes(llmstream_config_reloads_total[$__rate_interval]) > 0",
          step: "",
          titleFormat: "Config reload",
        },
      ],
    },
    panels: panels.map((panel, index) => panelJson(panel, index + 1)),
  };
}

function panelJson(panel: Panel, id: number): Record<string, unknown> {
  const timeline = panel.type === "state-timeline";
  return {
    id,
    type: panel.type,
    title: panel.title,
    description: panel.description,
    datasource: DATASOURCE,
    gridPos: panel.grid,
    fieldConfig: {
      defaults: {
        unit: panel.unit,
        ...(timeline
          ? {
            color: { mode: "thresholds" },
            thresholds: {
              mode: "absolute",
              steps: [{ color: "red", value: null }, { color: "green", value: 1 }],
            },
            mappings: [{
              type: "value",
              options: { "0": { text: "down", color: "red" }, "1": { text: "up", color: "green" } },
            }],
          }
          : {
            color: { mode: "palette-classic" },
            custom: { drawStyle: "line", lineWidth: 1, fillOpacity: 10, showPoints: "never" },
            min: 0,
          }),
      },
      overrides: [],
    },
    options: timeline ? { showValue: "never", mergeValues: true, legend: { showLegend: false } } : {
      legend: { displayMode: "list", placement: "bottom", showLegend: true },
      tooltip: { mode: "multi", sort: "desc" },
    },
    targets: panel.targets.map((target, i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: DATASOURCE,
      expr: target.query.promql(),
      legendFormat: target.legend,
      range: true,
    })),
  };
}
