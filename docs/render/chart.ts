/**
 * Inline SVG for the rendering: a Grafana-like time series chart and state timeline, dark theme.
 *
 * @module
 */
import type { Unit } from "./panels.ts";

/** One line: its legend, colour and a value (or a gap) per time. */
export interface Line {
  /** Legend text. */
  readonly name: string;
  /** CSS colour. */
  readonly color: string;
  /** Values aligned with the chart's times; `null` is a gap. */
  readonly values: readonly (number | null)[];
}

/** What {@link timeSeriesSvg} and {@link timelineSvg} draw. */
export interface ChartOptions {
  /** Seconds since the run began, one per value. */
  readonly times: readonly number[];
  /** The lines. */
  readonly lines: readonly Line[];
  /** Unit of the values. */
  readonly unit: Unit;
  /** Size in pixels. */
  readonly width: number;
  /** Size in pixels. */
  readonly height: number;
  /** The run's start, for clock labels (milliseconds since the epoch). */
  readonly startMs: number;
  /** Annotation times (seconds since the run began). */
  readonly marks: readonly number[];
}

const AXIS = "#8e8e8e";
const GRID = "#2a2d33";
const LEFT = 58;
const BOTTOM = 20;

/**
 * Formats a value in a Grafana unit.
 *
 * @param value The value.
 * @param unit The unit.
 * @returns Short text.
 */
export function formatUnit(value: number, unit: Unit): string {
  if (unit === "percentunit") return `${trim(value * 100)}%`;
  if (unit === "s") {
    if (value === 0) return "0";
    if (value < 0.001) return `${trim(value * 1e6)} µs`;
    if (value < 1) return `${trim(value * 1000)} ms`;
    return `${trim(value)} s`;
  }
  const text = value >= 1000 ? `${trim(value / 1000)}K` : trim(value);
  return unit === "reqps" ? `${text} req/s` : text;
}

function trim(value: number): string {
  return String(Number(value.toPrecision(3)));
}

function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  return ([1, 2, 2.5, 5, 10].find((f) => f * power >= raw) ?? 10) * power;
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

function clock(startMs: number, t: number): string {
  return new Date(startMs + t * 1000).toISOString().slice(11, 19);
}

/** The x scale and the time axis (ticks every 10 s) with annotation marks. */
function timeAxis(
  options: ChartOptions,
  area: { top: number; left: number },
): { x(t: number): number; svg: string } {
  const { times, width, height } = options;
  const { top, left } = area;
  const t0 = times[0] ?? 0;
  const t1 = Math.max(times.at(-1) ?? 1, t0 + 1);
  const x = (t: number) => left + (t - t0) / (t1 - t0) * (width - left - 8);
  const parts: string[] = [];
  for (let t = Math.ceil(t0 / 10) * 10; t <= t1; t += 10) {
    parts.push(
      `<text x="${x(t)}" y="${height - 5}" fill="${AXIS}" font-size="10" ` +
        `text-anchor="middle">${clock(options.startMs, t)}</text>`,
    );
  }
  for (const mark of options.marks) {
    parts.push(
      `<line x1="${x(mark)}" x2="${x(mark)}" y1="${top}" y2="${height - BOTTOM}" ` +
        `stroke="#B877D9" stroke-dasharray="4 3"/>`,
    );
  }
  return { x, svg: parts.join("") };
}

/**
 * Draws lines over time with a y axis from zero.
 *
 * @param options Times, lines, unit, size, start and marks.
 * @returns The `<svg>` element.
 */
export function timeSeriesSvg(options: ChartOptions): string {
  const { width, height, lines, times, unit } = options;
  const top = 6;
  let max = 0;
  for (const line of lines) for (const v of line.values) if (v !== null && v > max) max = v;
  if (unit === "percentunit" && max > 0.5) max = 1;
  const step = niceStep(max > 0 ? max : 1, 4);
  const yMax = Math.ceil((max > 0 ? max : 1) / step) * step;
  const y = (v: number) => top + (1 - v / yMax) * (height - BOTTOM - top);
  const axis = timeAxis(options, { top, left: LEFT });
  const parts = [axis.svg];
  for (let v = 0; v <= yMax + step / 2; v += step) {
    parts.push(
      `<line x1="${LEFT}" x2="${width - 8}" y1="${y(v)}" y2="${y(v)}" stroke="${GRID}"/>`,
      `<text x="${LEFT - 6}" y="${y(v) + 3}" fill="${AXIS}" font-size="10" text-anchor="end">` +
        `${escapeXml(formatUnit(v, unit))}</text>`,
    );
  }
  for (const line of lines) {
    let path = "";
    let pen = false;
    line.values.forEach((value, i) => {
      if (value === null || !Number.isFinite(value)) {
        pen = false;
        return;
      }
      path += `${pen ? "L" : "M"}${axis.x(times[i]!).toFixed(1)},${y(value).toFixed(1)}`;
      pen = true;
    });
    parts.push(
      `<path d="${path}" fill="none" stroke="${line.color}" stroke-width="1.5" ` +
        `stroke-linejoin="round"/>`,
    );
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `${parts.join("")}</svg>`;
}

/**
 * Draws one band per line: green where the value is 1, red where 0, grey where missing.
 *
 * @param options Times, lines, size, start and marks.
 * @returns The `<svg>` element.
 */
export function timelineSvg(options: ChartOptions): string {
  const { width, height, lines, times } = options;
  const label = 190;
  const band = (height - BOTTOM - 4) / Math.max(lines.length, 1);
  const axis = timeAxis(options, { top: 0, left: label });
  const x = axis.x;
  const parts: string[] = [];
  lines.forEach((line, row) => {
    const y = 2 + row * band;
    parts.push(
      `<text x="${label - 6}" y="${y + band / 2 + 3}" fill="#ccccdc" font-size="10" ` +
        `text-anchor="end">${escapeXml(line.name)}</text>`,
    );
    line.values.forEach((value, i) => {
      const start = x(times[i]!);
      const end = Math.min(x(times[i + 1] ?? times[i]! + 1), width - 8);
      const color = value === null ? "#3a3d44" : value >= 1 ? "#73BF69" : "#F2495C";
      parts.push(
        `<rect x="${start.toFixed(1)}" y="${y.toFixed(1)}" width="${
          (end - start + 0.6).toFixed(1)
        }" ` +
          `height="${(band - 2).toFixed(1)}" fill="${color}" fill-opacity="0.85"/>`,
      );
    });
  });
  parts.push(axis.svg);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `${parts.join("")}</svg>`;
}
