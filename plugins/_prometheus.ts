/**
 * Writing the Prometheus text exposition format 0.0.4: escaping, number formatting, family
 * headers and a fixed-bucket histogram. Output goes into a `string[]` of lines, joined once per
 * scrape.
 *
 * @module
 */

/** The `Content-Type` of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A family's type as written on its `# TYPE` line. */
export type FamilyType = "counter" | "gauge" | "histogram";

/**
 * Escapes a label value: backslash, double quote and line feed.
 *
 * @param value The raw value.
 * @returns The value to put between double quotes.
 */
export function escapeLabelValue(value: string): string {
  if (!/[\\"\n]/.test(value)) return value;
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/**
 * Renders label pairs as `a="x",b="y"` with escaped values (names are the caller's constants).
 *
 * @param pairs Label names and raw values, in output order.
 * @returns The label list without braces.
 */
export function labelList(pairs: readonly (readonly [string, string])[]): string {
  return pairs.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",");
}

/**
 * Formats a sample value: integers plainly, `NaN`, `+Inf` and `-Inf` by name.
 *
 * @param value The value.
 * @returns Its text.
 */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/**
 * Appends a family's `# HELP` and `# TYPE` lines.
 *
 * @param out The lines being written.
 * @param family Name, type and help text (backslashes and line feeds get escaped).
 */
export function writeFamily(
  out: string[],
  family: { name: string; type: FamilyType; help: string },
): void {
  const help = family.help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
  out.push(`# HELP ${family.name} ${help}`, `# TYPE ${family.name} ${family.type}`);
}

/**
 * Appends one sample line.
 *
 * @param out The lines being written.
 * @param sample The series name, its rendered labels (empty for none) and the value.
 */
export function writeSample(
  out: string[],
  sample: { name: string; labels: string; value: number },
): void {
  out.push(
    sample.labels === ""
      ? `${sample.name} ${formatValue(sample.value)}`
      : `${sample.name}{${sample.labels}} ${formatValue(sample.value)}`,
  );
}

/** A histogram's observations, as passed between workers. */
export interface HistogramState {
  /** Per-bucket (not cumulative) counts, `+Inf` last. */
  readonly counts: readonly number[];
  /** Sum of the observations. */
  readonly sum: number;
  /** Observations. */
  readonly count: number;
}

/**
 * A histogram with fixed upper bounds. `observe` is a short scan and two additions; buckets are
 * made cumulative only when rendered.
 */
export class Histogram {
  /** Upper bounds, ascending, without `+Inf`. */
  readonly bounds: readonly number[];
  #counts: Float64Array;
  #sum = 0;
  #count = 0;

  /**
   * Creates an empty histogram.
   *
   * @param bounds Ascending finite upper bounds.
   * @throws RangeError when the bounds are not ascending and finite.
   */
  constructor(bounds: readonly number[]) {
    for (const [i, bound] of bounds.entries()) {
      if (!Number.isFinite(bound) || (i > 0 && bound <= bounds[i - 1]!)) {
        throw new RangeError(`Histogram bounds must be finite and ascending, not ${bounds}`);
      }
    }
    this.bounds = bounds;
    this.#counts = new Float64Array(bounds.length + 1);
  }

  /** Observations so far. */
  get count(): number {
    return this.#count;
  }

  /** Sum of the observations. */
  get sum(): number {
    return this.#sum;
  }

  /**
   * Records one observation.
   *
   * @param value The value (seconds for the gateway's histograms).
   */
  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.#counts[i]!++;
    this.#sum += value;
    this.#count++;
  }

  /** The counts, sum and count, to add into another worker's histogram. */
  state(): HistogramState {
    return { counts: [...this.#counts], sum: this.#sum, count: this.#count };
  }

  /**
   * Adds another histogram's observations (of the same bounds) to this one.
   *
   * @param state What {@link Histogram.state} returned.
   */
  add(state: HistogramState): void {
    state.counts.forEach((count, i) => {
      if (i < this.#counts.length) this.#counts[i]! += count;
    });
    this.#sum += state.sum;
    this.#count += state.count;
  }

  /**
   * Appends the `_bucket` (cumulative, `+Inf` last), `_sum` and `_count` lines.
   *
   * @param out The lines being written.
   * @param series The family name and the rendered labels of this histogram (may be empty).
   */
  write(out: string[], series: { name: string; labels: string }): void {
    const prefix = series.labels === "" ? "{" : `{${series.labels},`;
    let cumulative = 0;
    for (const [i, bound] of this.bounds.entries()) {
      cumulative += this.#counts[i]!;
      out.push(`${series.name}_bucket${prefix}le="${formatValue(bound)}"} ${cumulative}`);
    }
    out.push(`${series.name}_bucket${prefix}le="+Inf"} ${this.#count}`);
    writeSample(out, { name: `${series.name}_sum`, labels: series.labels, value: this.#sum });
    writeSample(out, { name: `${series.name}_count`, labels: series.labels, value: this.#count });
  }
}
