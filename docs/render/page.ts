/**
 * The HTML page of the rendering: every panel's queries evaluated at every scrape and drawn at its
 * grid position, Grafana's dark theme imitated, no external resources.
 *
 * @module
 */
import { type Line, timelineSvg, timeSeriesSvg } from "./chart.ts";
import { legendOf, type Panel } from "./panels.ts";
import { metric, rate, type Scrape } from "./promql.ts";

/** What {@link dashboardHtml} draws. */
export interface PageOptions {
  /** The panels. */
  readonly panels: readonly Panel[];
  /** The scrapes, oldest first. */
  readonly scrapes: readonly Scrape[];
  /** `$__rate_interval` in seconds. */
  readonly windowS: number;
  /** The run's start in milliseconds since the epoch. */
  readonly startMs: number;
  /** A line under the title describing the traffic. */
  readonly caption: string;
  /** Page width in pixels. */
  readonly width: number;
}

const PALETTE = [
  "#73BF69",
  "#F2CC0C",
  "#8AB8FF",
  "#FF780A",
  "#F2495C",
  "#5794F2",
  "#B877D9",
  "#96D98D",
  "#FADE2A",
  "#C0D8FF",
  "#FFB357",
  "#FF7383",
];
const ROW = 34;
const HEADER = 64;

/**
 * Renders the page.
 *
 * @param options Panels, scrapes, window, start, caption and width.
 * @returns The HTML text.
 */
export function dashboardHtml(options: PageOptions): string {
  const { panels, scrapes, width } = options;
  const column = (width - 16) / 24;
  const times = scrapes.map((scrape) => scrape.t);
  const marks = reloadTimes(scrapes);
  const bottom = Math.max(...panels.map((p) => p.grid.y + p.grid.h));
  const boxes = panels.map((panel) => {
    const lines = evaluate(panel, options);
    const box = {
      left: 8 + panel.grid.x * column,
      top: HEADER + panel.grid.y * ROW,
      w: panel.grid.w * column - 8,
      h: panel.grid.h * ROW - 8,
    };
    const legend = panel.type === "state-timeline" ? "" : legendHtml(lines);
    const legendRows = Math.ceil(lines.length / Math.max(1, Math.floor(box.w / 230)));
    const chartHeight = box.h - 34 - (legend ? Math.min(legendRows, 4) * 15 + 6 : 0);
    const chart = {
      times,
      lines,
      unit: panel.unit,
      width: Math.floor(box.w - 12),
      height: Math.floor(chartHeight),
      startMs: options.startMs,
      marks,
    };
    return `<div class="panel" style="left:${box.left}px;top:${box.top}px;width:${box.w}px;` +
      `height:${box.h}px"><div class="title">${escapeHtml(panel.title)}</div>` +
      (panel.type === "state-timeline" ? timelineSvg(chart) : timeSeriesSvg(chart)) +
      `${legend}</div>`;
  });
  return `<!doctype html><html><head><meta charset="utf-8"><title>LLMStream</title><style>
body{margin:0;background:#111217;color:#ccccdc;font-family:"DejaVu Sans",sans-serif;
width:${width}px;height:${HEADER + bottom * ROW + 8}px;position:relative;overflow:hidden}
.head{position:absolute;left:12px;top:8px;right:12px}
.head b{font-size:17px;color:#e6e6ef}.head span{font-size:11px;color:#8e8e8e;margin-left:10px}
.panel{position:absolute;background:#181b1f;border:1px solid #2a2d33;border-radius:3px;
box-sizing:border-box;padding:4px 6px;overflow:hidden}
.title{font-size:12.5px;font-weight:bold;color:#d8d9da;margin:2px 0 6px 2px}
.legend{font-size:10.5px;line-height:15px;max-height:60px;overflow:hidden;display:flex;
flex-wrap:wrap;gap:0 14px;margin-top:4px}
.legend i{display:inline-block;width:12px;height:3px;margin:0 5px 3px 0;vertical-align:middle}
</style></head><body><div class="head"><b>LLMStream</b><span>Prometheus: $datasource</span>` +
    `<span>Model: All</span><span>${escapeHtml(options.caption)}</span></div>` +
    `${boxes.join("\n")}</body></html>`;
}

/** Evaluates a panel's targets at every scrape; one line per legend text. */
function evaluate(panel: Panel, options: PageOptions): Line[] {
  const byName = new Map<string, (number | null)[]>();
  const count = options.scrapes.length;
  for (let index = 0; index < count; index++) {
    for (const target of panel.targets) {
      const context = { scrapes: options.scrapes, index, windowS: options.windowS };
      for (const point of target.query.evaluate(context)) {
        const name = legendOf(target.legend, point.labels);
        let values = byName.get(name);
        if (!values) {
          values = new Array<number | null>(count).fill(null);
          byName.set(name, values);
        }
        values[index] = point.value;
      }
    }
  }
  return [...byName.entries()].map(([name, values], i) => ({
    name,
    values,
    color: PALETTE[i % PALETTE.length]!,
  }));
}

/** Times where the dashboard's annotation query (`changes(reloads) > 0`) first fires. */
function reloadTimes(scrapes: readonly Scrape[]): number[] {
  const query = rate(metric("llmstream_config_reloads_total"), { increase: true });
  const marks: number[] = [];
  let firing = false;
  scrapes.forEach((scrape, index) => {
    const now = query.evaluate({ scrapes, index, windowS: 1.5 }).some((p) => p.value > 0);
    if (now && !firing) marks.push(scrape.t);
    firing = now;
  });
  return marks;
}

function legendHtml(lines: readonly Line[]): string {
  const items = lines.map((line) =>
    `<span><i style="background:${line.color}"></i>${escapeHtml(line.name)}</span>`
  );
  return `<div class="legend">${items.join("")}</div>`;
}

function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}
