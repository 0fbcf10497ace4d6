/**
 * Statistics of one benchmark run and the markdown table of many.
 *
 * @module
 */

/** What the client saw of one request. */
export interface Sample {
  /** Milliseconds from sending to the first content chunk (undefined when none came). */
  ttftMs: number | undefined;
  /** Milliseconds from sending to the end of the stream. */
  e2eMs: number;
  /** Status 200, a content chunk and `[DONE]`. */
  ok: boolean;
  /** Still open at the drain deadline and aborted by the client. */
  cut: boolean;
}

/** The summary of one strategy on one trace. */
export interface RunSummary {
  /** Strategy name. */
  strategy: string;
  /** Trace name. */
  trace: string;
  /** Requests sent. */
  requests: number;
  /** Requests that failed (not counting cut ones). */
  errors: number;
  /** Requests still open at the drain deadline, aborted by the client. */
  cut: number;
  /** Time to first token, milliseconds. */
  ttftP50: number;
  /** Time to first token, milliseconds. */
  ttftP99: number;
  /** End-to-end latency, milliseconds. */
  e2eP50: number;
  /** End-to-end latency, milliseconds. */
  e2eP99: number;
  /** Successful requests per second, from the first send to the last response's end. */
  throughput: number;
  /** Share of requests each server received, in fleet order. */
  shares: number[];
  /** Event-loop lag of the thread running the run, p99 and max, milliseconds. */
  lagP99: number;
  /** See {@link RunSummary.lagP99}. */
  lagMax: number;
}

/**
 * The `q` quantile of values by the nearest-rank method (NaN for none).
 *
 * @param values Numbers, any order.
 * @param q From 0 to 1.
 * @returns The quantile.
 */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

/** Inputs of {@link summarise} besides the samples. */
export interface SummaryContext {
  /** Strategy name. */
  strategy: string;
  /** Trace name. */
  trace: string;
  /** Seconds from the first send to the last response's end. */
  spanSeconds: number;
  /** Requests each server received. */
  received: number[];
  /** Event-loop lag samples, milliseconds. */
  lags: number[];
}

/**
 * Summarises one run. Failed and cut requests count in the latency percentiles with the time
 * they took (TTFT: until they failed or were cut, a lower bound), so errors never make a strategy
 * look faster.
 *
 * @param samples One per request sent.
 * @param context Names, span, per-server counts and lag samples.
 * @returns The summary.
 */
export function summarise(samples: readonly Sample[], context: SummaryContext): RunSummary {
  const ok = samples.filter((sample) => sample.ok).length;
  const cut = samples.filter((sample) => sample.cut).length;
  const total = context.received.reduce((sum, value) => sum + value, 0);
  return {
    strategy: context.strategy,
    trace: context.trace,
    requests: samples.length,
    errors: samples.length - ok - cut,
    cut,
    ttftP50: quantile(samples.map(ttftOf), 0.5),
    ttftP99: quantile(samples.map(ttftOf), 0.99),
    e2eP50: quantile(samples.map((sample) => sample.e2eMs), 0.5),
    e2eP99: quantile(samples.map((sample) => sample.e2eMs), 0.99),
    throughput: context.spanSeconds > 0 ? ok / context.spanSeconds : 0,
    shares: context.received.map((count) => (total > 0 ? count / total : 0)),
    lagP99: quantile(context.lags, 0.99),
    lagMax: context.lags.reduce((max, value) => Math.max(max, value), 0),
  };
}

function ttftOf(sample: Sample): number {
  return sample.ttftMs ?? sample.e2eMs;
}

/**
 * A markdown table of run summaries, one row per strategy, with p99 TTFT relative to the row
 * named `baseline` (and to the oracle) when present.
 *
 * @param rows Summaries of one trace.
 * @param options Names of the reference rows.
 * @returns The table, lines joined by newlines.
 */
export function markdownTable(
  rows: readonly RunSummary[],
  options: { baseline: string; oracle: string },
): string {
  const p99Of = (name: string) => rows.find((row) => row.strategy === name)?.ttftP99;
  const baseline = p99Of(options.baseline);
  const oracle = p99Of(options.oracle);
  const lines = [
    "| strategy | TTFT p50 ms | TTFT p99 ms | e2e p50 ms | e2e p99 ms | req/s | errors | cut | " +
    `p99 TTFT / ${options.baseline} | p99 TTFT / ${options.oracle} | share per server |`,
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.strategy} | ${ms(row.ttftP50)} | ${ms(row.ttftP99)} | ${ms(row.e2eP50)} | ` +
        `${ms(row.e2eP99)} | ${
          row.throughput.toFixed(1)
        } | ${row.errors}/${row.requests} | ${row.cut} | ` +
        `${ratio(row.ttftP99, baseline)} | ${ratio(row.ttftP99, oracle)} | ` +
        `${row.shares.map((share) => `${Math.round(share * 100)}`).join("/")} |`,
    );
  }
  return lines.join("\n");
}

function ms(value: number): string {
  return Number.isFinite(value) ? value.toFixed(0) : "-";
}

function ratio(value: number, reference: number | undefined): string {
  return reference !== undefined && reference > 0 ? (value / reference).toFixed(2) : "-";
}
