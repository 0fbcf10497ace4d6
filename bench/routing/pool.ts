/**
 * Runs strategies on a trace in worker threads, a group at a time; the runs of a group start
 * together, so they share the machine evenly.
 *
 * @module
 */
import type { RunConfig } from "./run.ts";
import type { RunSummary } from "./stats.ts";
import type { Trace } from "./traces.ts";
import type { FromWorker, ToWorker } from "./worker.ts";

/** Options of {@link runStrategies}. */
export interface RunStrategiesOptions {
  /** `metrics_update_interval` in seconds. */
  interval: number;
  /** Seed of the strategies that draw random numbers. */
  seed: number;
  /** Runs at once (each in its own worker). */
  parallel: number;
  /** Extra `strategy_options` of `real_time_metrics`. */
  rtmOptions: Record<string, unknown>;
  /** Seconds after the last send at which open requests are cut. */
  drainSeconds: number;
}

/**
 * Runs every strategy on the trace, each with a fresh fleet and gateway in its own worker.
 *
 * @param trace The requests, the same for every strategy.
 * @param strategies Strategy names.
 * @param options Scrape interval, seed and parallelism.
 * @returns One summary per strategy, in the order given.
 */
export async function runStrategies(
  trace: Trace,
  strategies: readonly string[],
  options: RunStrategiesOptions,
): Promise<RunSummary[]> {
  const summaries: RunSummary[] = [];
  for (let i = 0; i < strategies.length; i += options.parallel) {
    const group = strategies.slice(i, i + options.parallel);
    const workers = group.map((strategy) =>
      new RunWorker({
        strategy,
        interval: options.interval,
        seed: options.seed,
        rtmOptions: options.rtmOptions,
        drainSeconds: options.drainSeconds,
      })
    );
    try {
      await Promise.all(workers.map((worker) => worker.ready));
      const startAt = Date.now() + 300;
      summaries.push(...await Promise.all(workers.map((worker) => worker.run(trace, startAt))));
    } finally {
      for (const worker of workers) worker.terminate();
    }
  }
  return summaries;
}

/** One worker running one strategy. */
class RunWorker {
  readonly ready: Promise<void>;
  #worker: Worker;
  #next: ((message: FromWorker) => void) | undefined;
  #failure: Promise<never>;

  constructor(config: RunConfig) {
    this.#worker = new Worker(new URL("./worker.ts", import.meta.url).href, {
      type: "module",
    });
    const { promise, reject } = Promise.withResolvers<never>();
    this.#failure = promise;
    this.#failure.catch(() => {});
    this.#worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.kind === "failed") {
        reject(new Error(`${config.strategy}: ${message.message}`));
        return;
      }
      this.#next?.(message);
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(`${config.strategy}: ${event.message}`));
    };
    this.ready = this.#ask({ kind: "prepare", config }).then(() => {});
  }

  async run(trace: Trace, startAt: number): Promise<RunSummary> {
    const reply = await this.#ask({ kind: "run", trace, startAt });
    if (reply.kind !== "done") throw new Error(`Unexpected reply "${reply.kind}"`);
    return reply.summary;
  }

  terminate(): void {
    this.#worker.terminate();
  }

  #ask(message: ToWorker): Promise<FromWorker> {
    const { promise, resolve } = Promise.withResolvers<FromWorker>();
    this.#next = resolve;
    this.#worker.postMessage(message);
    return Promise.race([promise, this.#failure]);
  }
}
