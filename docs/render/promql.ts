/**
 * The few PromQL forms the dashboard uses, as values that both print their PromQL (for the
 * dashboard JSON) and evaluate it over scraped samples (for the rendering), so the picture shows
 * exactly the queries Grafana would run.
 *
 * Evaluation follows Prometheus closely: `rate` is the counter increase (resets handled) over the
 * samples in the window divided by their time span (without Prometheus' edge extrapolation);
 * `histogram_quantile` interpolates linearly inside the bucket as Prometheus does.
 *
 * @module
 */
import type { Sample } from "../../scrape/prometheus_text.ts";

/** One scrape of `/metrics`: its time (seconds since the run began) and samples by name. */
export interface Scrape {
  /** Seconds since the run began. */
  readonly t: number;
  /** Samples by series name. */
  readonly samples: ReadonlyMap<string, readonly Sample[]>;
}

/** One element of an instant vector. */
export interface Point {
  /** Labels, without the name. */
  readonly labels: Readonly<Record<string, string>>;
  /** The value. */
  readonly value: number;
}

/** Where a query is evaluated: the scrapes, the index of "now" and the rate window. */
export interface EvalContext {
  /** Every scrape, oldest first. */
  readonly scrapes: readonly Scrape[];
  /** The scrape that is "now". */
  readonly index: number;
  /** `$__rate_interval` in seconds. */
  readonly windowS: number;
}

/** A query: its PromQL text and its evaluation. */
export interface Query {
  /** The PromQL text. */
  promql(): string;
  /** The instant vector at the context's time. */
  evaluate(context: EvalContext): Point[];
}

/** A label matcher: `=`, `!=`, `=~` or `!~` with a value (`$model` matches everything). */
export type Matcher = readonly [label: string, op: "=" | "!=" | "=~" | "!~", value: string];

/**
 * Selects a metric's series.
 *
 * @param name The series name.
 * @param matchers Label matchers.
 * @returns The selector.
 */
export function metric(name: string, matchers: readonly Matcher[] = []): Query {
  const text = matchers.length === 0
    ? name
    : `${name}{${matchers.map(([l, op, v]) => `${l}${op}"${v}"`).join(", ")}}`;
  const tests = matchers.map(([label, op, value]) => {
    const regex = new RegExp(`^(?:${value.startsWith("$") ? ".*" : value})$`);
    return (labels: Readonly<Record<string, string>>) => {
      const actual = labels[label] ?? "";
      if (op === "=") return actual === value;
      if (op === "!=") return actual !== value;
      return regex.test(actual) === (op === "=~");
    };
  });
  return {
    promql: () => text,
    evaluate: ({ scrapes, index }) =>
      (scrapes[index]?.samples.get(name) ?? []).filter((s) => tests.every((t) => t(s.labels)))
        .map((s) => ({ labels: s.labels, value: s.value })),
  };
}

/**
 * `rate(selector[$__rate_interval])` (per second) or `increase(...)` over the window.
 *
 * @param selector A {@link metric} query.
 * @param options `increase: true` for the increase instead of the per-second rate.
 * @returns The query.
 */
export function rate(selector: Query, options: { increase?: boolean } = {}): Query {
  const fn = options.increase ? "increase" : "rate";
  return {
    promql: () => `${fn}(${selector.promql()}[$__rate_interval])`,
    evaluate(context) {
      const now = context.scrapes[context.index];
      if (!now) return [];
      const series = new Map<string, { labels: Point["labels"]; points: [number, number][] }>();
      for (let i = context.index; i >= 0; i--) {
        const scrape = context.scrapes[i]!;
        if (scrape.t <= now.t - context.windowS) break;
        for (const point of selector.evaluate({ ...context, index: i })) {
          const key = JSON.stringify(point.labels);
          const entry = series.get(key) ?? { labels: point.labels, points: [] };
          entry.points.unshift([scrape.t, point.value]);
          series.set(key, entry);
        }
      }
      const out: Point[] = [];
      for (const { labels, points } of series.values()) {
        if (points.length < 2) continue;
        let increase = 0;
        for (let i = 1; i < points.length; i++) {
          const delta = points[i]![1] - points[i - 1]![1];
          increase += delta >= 0 ? delta : points[i]![1];
        }
        const span = points.at(-1)![0] - points[0]![0];
        out.push({ labels, value: options.increase ? increase : increase / span });
      }
      return out;
    },
  };
}

/**
 * `sum by (labels) (query)`.
 *
 * @param labels The labels kept.
 * @param query The summed query.
 * @returns The query.
 */
export function sumBy(labels: readonly string[], query: Query): Query {
  return {
    promql: () => `sum by (${labels.join(", ")}) (${query.promql()})`,
    evaluate(context) {
      const groups = new Map<string, { labels: Record<string, string>; value: number }>();
      for (const point of query.evaluate(context)) {
        const kept = Object.fromEntries(labels.flatMap((l) => {
          const v = point.labels[l];
          return v === undefined ? [] : [[l, v]];
        }));
        const key = JSON.stringify(kept);
        const group = groups.get(key) ?? { labels: kept, value: 0 };
        group.value += point.value;
        groups.set(key, group);
      }
      return [...groups.values()];
    },
  };
}

/**
 * `histogram_quantile(phi, query)`; the query must keep `le`.
 *
 * @param phi The quantile, 0..1.
 * @param query Bucket rates with an `le` label.
 * @returns The query.
 */
export function histogramQuantile(phi: number, query: Query): Query {
  return {
    promql: () => `histogram_quantile(${phi}, ${query.promql()})`,
    evaluate(context) {
      const groups = new Map<string, { labels: Record<string, string>; buckets: number[][] }>();
      for (const point of query.evaluate(context)) {
        const { le, ...rest } = point.labels;
        if (le === undefined) continue;
        const key = JSON.stringify(rest);
        const group = groups.get(key) ?? { labels: rest, buckets: [] };
        group.buckets.push([le === "+Inf" ? Infinity : Number(le), point.value]);
        groups.set(key, group);
      }
      return [...groups.values()].flatMap(({ labels, buckets }) => {
        const value = quantile(phi, buckets.sort((a, b) => a[0]! - b[0]!));
        return Number.isNaN(value) ? [] : [{ labels, value }];
      });
    },
  };
}

/** Prometheus' bucket interpolation over `[le, cumulative count]` pairs sorted by `le`. */
function quantile(phi: number, buckets: number[][]): number {
  const top = buckets.at(-1);
  if (buckets.length < 2 || !top || top[0] !== Infinity || !(top[1]! > 0)) return NaN;
  const rank = phi * top[1]!;
  const index = buckets.findIndex((bucket) => bucket[1]! >= rank);
  if (index === buckets.length - 1) return buckets[index - 1]![0]!;
  const [end, count] = buckets[index]! as [number, number];
  const [start, below] = index === 0 ? [0, 0] : buckets[index - 1]! as [number, number];
  return count === below ? end : start + (end - start) * (rank - below) / (count - below);
}

/**
 * `left / right`, matched on all labels, or on `on` labels with `group_left`.
 *
 * @param left The dividend.
 * @param right The divisor.
 * @param options `on`: match only these labels, many left elements to one right (`group_left`).
 * @returns The query.
 */
export function divide(left: Query, right: Query, options: { on?: string[] } = {}): Query {
  const on = options.on;
  const keyOf = (labels: Point["labels"]) =>
    JSON.stringify(on ? on.map((l) => labels[l] ?? "") : Object.entries(labels).sort());
  return {
    promql: () =>
      `${left.promql()} / ${on ? `on (${on.join(", ")}) group_left ` : ""}${right.promql()}`,
    evaluate(context) {
      const divisors = new Map(right.evaluate(context).map((p) => [keyOf(p.labels), p.value]));
      return left.evaluate(context).flatMap((point) => {
        const divisor = divisors.get(keyOf(point.labels));
        return divisor === undefined
          ? []
          : [{ labels: point.labels, value: point.value / divisor }];
      });
    },
  };
}

/**
 * `scalar - query`, element by element.
 *
 * @param scalar The number.
 * @param query The query.
 * @returns The query.
 */
export function minus(scalar: number, query: Query): Query {
  return {
    promql: () => `${scalar} - (${query.promql()})`,
    evaluate: (context) =>
      query.evaluate(context).map((p) => ({ labels: p.labels, value: scalar - p.value })),
  };
}
