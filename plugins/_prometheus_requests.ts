/**
 * Per-request series of the metrics plugin: counters and histograms fed by `onResponse`, rendered
 * on scrape.
 *
 * Labels come from configuration only. The model is the configured model that answered, or the
 * request's model when it is configured; anything else (unknown names, unreadable bodies) counts
 * under `model="unknown"`. The server is a configured URL or `none`; the path is one of the three
 * inference paths; the status is the numeric status. Label text is escaped once, when a model or
 * server is first seen; recording a request is a few Map lookups and additions.
 *
 * @module
 */
import type { PluginOutcome, PluginRequest } from "./types.ts";
import {
  Histogram,
  type HistogramState,
  labelList,
  writeFamily,
  writeSample,
} from "./_prometheus.ts";

/** The label value of a model or server that is not configured. */
export const UNKNOWN = "unknown";
/** The `server` label of requests no server answered. */
export const NO_SERVER = "none";

/** Request duration buckets, seconds: a 25 ms cache hit to a 10-minute generation. */
export const DURATION_BUCKETS: readonly number[] = [
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  20,
  40,
  80,
  160,
  320,
  640,
];
/** Time-to-first-token buckets, seconds. */
export const TTFT_BUCKETS: readonly number[] = [
  0.01,
  0.025,
  0.05,
  0.1,
  0.2,
  0.4,
  0.8,
  1.5,
  3,
  6,
  12,
  30,
  60,
];
/** Gateway overhead buckets, seconds: 50 µs to 250 ms. */
export const OVERHEAD_BUCKETS: readonly number[] = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
];

const PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "other"] as const;
const PATH_INDEX = new Map<string, number>(PATHS.map((path, i) => [path, i]));
const OUTCOMES = ["success", "error", "aborted", "client_slow"] as const;
const OUTCOME_INDEX = new Map<string, number>(OUTCOMES.map((outcome, i) => [outcome, i]));

/** Request counts of one model on one server, keyed by status, path and outcome packed in a number. */
interface Cells {
  readonly labels: string;
  readonly counts: Map<number, number>;
}

/** Retries of one model away from one server. */
interface RetryCell {
  readonly labels: string;
  count: number;
}

/** Everything kept per model label. */
class ModelSeries {
  readonly labels: string;
  readonly duration = new Histogram(DURATION_BUCKETS);
  readonly ttft = new Histogram(TTFT_BUCKETS);
  readonly overhead = new Histogram(OVERHEAD_BUCKETS);
  readonly requests = new Map<string | null, Cells>();
  readonly retries = new Map<string, RetryCell>();
  readonly model: string;
  promptTokens = 0;
  completionTokens = 0;
  /** Whether the model was configured at some scrape (its series then always render). */
  configured = false;

  constructor(model: string) {
    this.model = model;
    this.labels = labelList([["model", model]]);
  }

  cells(server: string | null): Cells {
    let cells = this.requests.get(server);
    if (!cells) {
      cells = {
        labels: labelList([["model", this.model], ["server", server ?? NO_SERVER]]),
        counts: new Map(),
      };
      this.requests.set(server, cells);
    }
    return cells;
  }

  retry(server: string): void {
    let cell = this.retries.get(server);
    if (!cell) {
      cell = { labels: labelList([["model", this.model], ["server", server]]), count: 0 };
      this.retries.set(server, cell);
    }
    cell.count++;
  }
}

/** One model's per-request series as passed between workers. */
export interface SeriesSnapshot {
  /** The model label. */
  readonly model: string;
  /** Prompt tokens. */
  readonly prompt: number;
  /** Completion tokens. */
  readonly completion: number;
  /** Duration, time to first token and overhead. */
  readonly histograms: readonly [HistogramState, HistogramState, HistogramState];
  /** Request counts by server (`null`: none), keyed as {@link RequestMetrics} keys them. */
  readonly requests: readonly (readonly [string | null, readonly (readonly [number, number])[]])[];
  /** Retries by server. */
  readonly retries: readonly (readonly [string, number])[];
}

/** Options of {@link RequestMetrics}. */
export interface RequestMetricsOptions {
  /** Whether a URL is a configured server (retry entries naming others count as `unknown`). */
  isServer(url: string): boolean;
  /** Whether to count tokens (default true). */
  tokens?: boolean;
}

/** The per-request series, in memory until scraped. */
export class RequestMetrics {
  #models = new Map<string, ModelSeries>();
  #isServer: (url: string) => boolean;
  #tokens: boolean;

  /**
   * Creates empty series.
   *
   * @param options How to tell configured servers.
   */
  constructor(options: RequestMetricsOptions) {
    this.#isServer = options.isServer;
    this.#tokens = options.tokens ?? true;
  }

  /**
   * Records one ended request.
   *
   * @param request The request as plugins see it.
   * @param outcome How it ended.
   */
  record(request: PluginRequest, outcome: PluginOutcome): void {
    const series = this.#series(outcome.model ?? (request.known ? request.model : UNKNOWN));
    const status = Number.isInteger(outcome.status) && outcome.status >= 100 &&
        outcome.status <= 599
      ? outcome.status
      : 0;
    const key = status * 16 + (PATH_INDEX.get(request.path) ?? 3) * 4 +
      (OUTCOME_INDEX.get(outcome.outcome) ?? 1);
    const counts = series.cells(outcome.server).counts;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    if (outcome.server !== null) {
      series.duration.observe(outcome.durationMs / 1000);
      series.overhead.observe(outcome.overheadMs / 1000);
      if (outcome.ttftMs !== undefined && request.body["stream"] === true && status < 300) {
        series.ttft.observe(outcome.ttftMs / 1000);
      }
    }
    if (outcome.usage && this.#tokens) {
      series.promptTokens += outcome.usage.prompt_tokens;
      series.completionTokens += outcome.usage.completion_tokens;
    }
    for (const entry of outcome.retried) {
      const end = entry.indexOf(": ");
      const url = end < 0 ? entry : entry.slice(0, end);
      series.retry(this.#isServer(url) ? url : UNKNOWN);
    }
  }

  /** Every series' counts, for another worker to add with {@link RequestMetrics.absorb}. */
  snapshot(): SeriesSnapshot[] {
    return [...this.#models.values()].map((series) => ({
      model: series.model,
      prompt: series.promptTokens,
      completion: series.completionTokens,
      histograms: [series.duration.state(), series.ttft.state(), series.overhead.state()],
      requests: [...series.requests].map(([server, cells]) => [server, [...cells.counts]]),
      retries: [...series.retries].map(([server, cell]) => [server, cell.count]),
    }));
  }

  /**
   * Adds another worker's counts to these.
   *
   * @param snapshots What {@link RequestMetrics.snapshot} returned there.
   */
  absorb(snapshots: readonly SeriesSnapshot[]): void {
    for (const snapshot of snapshots) {
      const series = this.#series(snapshot.model);
      series.promptTokens += snapshot.prompt;
      series.completionTokens += snapshot.completion;
      series.duration.add(snapshot.histograms[0]);
      series.ttft.add(snapshot.histograms[1]);
      series.overhead.add(snapshot.histograms[2]);
      for (const [server, counts] of snapshot.requests) {
        const cells = series.cells(server).counts;
        for (const [key, count] of counts) cells.set(key, (cells.get(key) ?? 0) + count);
      }
      for (const [server, count] of snapshot.retries) {
        for (let i = 0; i < count; i++) series.retry(server);
      }
    }
  }

  /**
   * Appends every per-request family. Configured models get their series (at zero) before their
   * first request; histograms and token counters are left out for the `unknown` bucket.
   *
   * @param out The lines being written.
   * @param configured The models in force.
   */
  write(out: string[], configured: Iterable<string>): void {
    for (const name of configured) this.#series(name).configured = true;
    const all = [...this.#models.values()];
    const models = all.filter((series) => series.configured || series.duration.count > 0);
    writeFamily(out, {
      name: "llmstream_requests_total",
      type: "counter",
      help: "Inference requests that ended, by model, server, path, status and outcome.",
    });
    for (const series of all) {
      for (const cells of series.requests.values()) {
        for (const [key, count] of cells.counts) {
          const path = PATHS[(key >> 2) & 3]!;
          const outcome = OUTCOMES[key & 3] ?? "error";
          const status = Math.floor(key / 16);
          const labels = `${cells.labels},path="${path}",status="${status || "other"}",` +
            `outcome="${outcome}"`;
          writeSample(out, { name: "llmstream_requests_total", labels, value: count });
        }
      }
    }
    const histograms = [
      [
        "llmstream_request_duration_seconds",
        "duration",
        "Time from arrival to the end of the answer",
      ],
      ["llmstream_time_to_first_token_seconds", "ttft", "Time from arrival to the first chunk"],
      ["llmstream_gateway_overhead_seconds", "overhead", "Time spent in the gateway itself"],
    ] as const;
    for (const [name, field, help] of histograms) {
      const scope = field === "ttft" ? "of streamed 2xx answers" : "of requests a server took";
      writeFamily(out, { name, type: "histogram", help: `${help} (seconds), ${scope}.` });
      for (const series of models) series[field].write(out, { name, labels: series.labels });
    }
    const tokens = [
      ["llmstream_prompt_tokens_total", "promptTokens", "Prompt tokens"],
      ["llmstream_completion_tokens_total", "completionTokens", "Completion tokens"],
    ] as const;
    for (const [name, field, help] of this.#tokens ? tokens : []) {
      writeFamily(out, { name, type: "counter", help: `${help} the servers reported, by model.` });
      for (const series of models) {
        writeSample(out, { name, labels: series.labels, value: series[field] });
      }
    }
    writeFamily(out, {
      name: "llmstream_retries_total",
      type: "counter",
      help: "Tries that failed in a retryable way (before the first byte reached the client), " +
        "by model and the server that failed.",
    });
    for (const series of all) {
      for (const cell of series.retries.values()) {
        writeSample(out, {
          name: "llmstream_retries_total",
          labels: cell.labels,
          value: cell.count,
        });
      }
    }
  }

  #series(model: string): ModelSeries {
    let series = this.#models.get(model);
    if (!series) {
      series = new ModelSeries(model);
      this.#models.set(model, series);
    }
    return series;
  }
}
