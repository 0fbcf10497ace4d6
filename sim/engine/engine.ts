/**
 * The simulated engine: runs the scheduler's steps in real time on one timer, independent of HTTP.
 *
 * Step time is
 * `(itlMs * (1 + batchFactor * (decodes - 1)) + [ttftMs + prefillTokens * prefillMsPerToken]) / speed`
 * (the bracket only when the step prefills), so time to first token is queue wait plus prefill.
 * Prompt tokens found in the prefix cache are not prefilled. After each step the full blocks a
 * request has computed, prompt and generated tokens alike, enter the prefix cache; they stay there
 * after the request ends until KV pressure evicts them, least recently used first. Prefix-cache
 * queries and hits count prompt tokens at a request's first scheduling, as vLLM counts them.
 * With nothing to do the engine sets no timer.
 *
 * @module
 */

import { KvCache } from "./kv_cache.ts";
import type { ResolvedSimOptions } from "../options.ts";
import { type EngineJob, planStep, SimRequest } from "./scheduler.ts";
import { EngineStats, type FinishReason } from "./stats.ts";

export type { EngineJob } from "./scheduler.ts";

/** Receives a request's progress; called from the engine's step, so keep it short. */
export interface EngineSink {
  /** A token was sampled; `index` counts from 0. */
  token(index: number): void;
  /** The request ended (not called after {@link EngineRequest.abort}). */
  finish(reason: FinishReason): void;
}

/** A submitted request. */
export interface EngineRequest {
  /** Prompt tokens found in the prefix cache at first scheduling. */
  readonly cachedTokens: number;
  /** Removes the request from the engine, freeing its slot and blocks. */
  abort(): void;
}

/** The engine's load at one moment. */
export interface EngineState {
  /** Requests in the running batch. */
  running: number;
  /** Requests queued. */
  waiting: number;
  /** Share of KV blocks held by running requests, 0..1. */
  kvUsage: number;
  /** Requests finished with `"stop"` or `"length"`. */
  completed: number;
  /** Requests aborted. */
  aborted: number;
  /** Running requests waiting at a closed gate before their last token. */
  gated: number;
}

class Job extends SimRequest implements EngineRequest {
  readonly #engine: Engine;

  constructor(engine: Engine, job: EngineJob, readonly sink: EngineSink) {
    super(job);
    this.#engine = engine;
  }

  abort(): void {
    this.#engine.abort(this);
  }
}

/**
 * The decode part of a step at speed 1: `itlMs * (1 + batchFactor * (decodes - 1))`, 0 with none.
 *
 * @param options The step's timing options.
 * @param decodes Requests decoding one token in the step.
 * @returns Milliseconds.
 * @example
 * ```ts
 * decodeStepMs({ itlMs: 10, batchFactor: 0.02 }, 6); // 11
 * ```
 */
export function decodeStepMs(
  options: Pick<ResolvedSimOptions, "itlMs" | "batchFactor">,
  decodes: number,
): number {
  return decodes > 0 ? options.itlMs * (1 + options.batchFactor * (decodes - 1)) : 0;
}

/**
 * Continuous batching over a block KV cache with a prefix cache.
 *
 * @example
 * ```ts
 * const engine = new Engine(resolveSimOptions({ itlMs: 1 }));
 * const job = { promptTokens: 8, blockHashes: [], outputTokens: 4, gated: false };
 * engine.submit({ ...job, finishReason: "length" }, {
 *   token: (i) => console.log("token", i),
 *   finish: (reason) => console.log("done", reason),
 * });
 * ```
 */
export class Engine {
  /** Counters and histograms since start. */
  readonly stats = new EngineStats();
  #options: ResolvedSimOptions;
  readonly #kv: KvCache;
  readonly #prefixCaching: boolean;
  #running: Job[] = [];
  readonly #waiting: Job[] = [];
  #batch: Job[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stepStart = 0;
  #stepMs = 0;
  #plannedEnd = 0;
  #closed = false;
  #closedGates = 0;
  #held = 0;
  readonly #listeners = new Set<() => void>();

  /**
   * Creates an idle engine.
   *
   * @param options Resolved simulator options; `blockSize` and `enablePrefixCaching` are fixed here.
   */
  constructor(options: ResolvedSimOptions) {
    this.#options = options;
    this.#kv = new KvCache(options.numGpuBlocks, options.blockSize);
    this.#prefixCaching = options.enablePrefixCaching;
  }

  /** Whether prompt blocks are cached across requests. */
  get prefixCaching(): boolean {
    return this.#prefixCaching;
  }

  /** Tokens in KV blocks held by running requests. */
  get usedTokens(): number {
    return this.#kv.heldBlocks * this.#kv.blockSize;
  }

  /** Tokens the whole KV cache holds: the longest prompt plus output one request may have. */
  get maxModelLen(): number {
    return this.#kv.capacity * this.#kv.blockSize;
  }

  /**
   * Applies new options from the next step on.
   *
   * @param options Resolved simulator options.
   */
  update(options: ResolvedSimOptions): void {
    this.#options = options;
    this.#kv.capacity = options.numGpuBlocks;
    this.#kick();
  }

  /**
   * Queues a request.
   *
   * @param job What to generate.
   * @param sink Receives tokens and the end.
   * @returns A handle to abort the request.
   * @throws {Error} When the engine is closed.
   */
  submit(job: EngineJob, sink: EngineSink): EngineRequest {
    if (this.#closed) throw new Error("Engine is closed; it accepts no request");
    const request = new Job(this, job, sink);
    this.#waiting.push(request);
    this.#kick();
    this.#changed();
    return request;
  }

  /**
   * Removes a request wherever it is; a no-op once it ended.
   *
   * @param request A handle from {@link submit}.
   */
  abort(request: EngineRequest): void {
    if (!(request instanceof Job) || request.phase === "done") return;
    if (request.phase === "waiting") {
      const i = this.#waiting.indexOf(request);
      if (i >= 0) this.#waiting.splice(i, 1);
    } else {
      const i = this.#running.indexOf(request);
      if (i >= 0) this.#running.splice(i, 1);
      this.#kv.free(request);
    }
    request.phase = "done";
    this.stats.finished.abort++;
    this.#kick();
    this.#changed();
  }

  /**
   * The load now.
   *
   * @returns Running, waiting, KV usage and finished counts.
   */
  state(): EngineState {
    const finished = this.stats.finished;
    return {
      running: this.#running.length,
      waiting: this.#waiting.length,
      kvUsage: this.#kv.usage,
      completed: finished.stop + finished.length,
      aborted: finished.abort,
      gated: this.#held,
    };
  }

  /**
   * The time to first token a prompt would have if it arrived now, ms, as far as the engine's
   * own state tells: the rest of the step in progress, then one step that decodes the running
   * requests and prefills what is still to prefill, the queued prompts' and this one's uncached
   * part. It leaves out the step's token budget and the running slots. Benchmarks use it for a
   * router that knows everything (`bench/prefix/`); no real server exposes it.
   *
   * @param prompt The prompt's length and block hashes, as a request's job would carry them.
   * @returns The expected milliseconds to its first token.
   * @example
   * ```ts
   * const engine = new Engine(resolveSimOptions({ itlMs: 10, ttftMs: 5 }));
   * engine.forecast({ promptTokens: 100, blockHashes: [] }); // 5 + 100 * prefillMsPerToken
   * ```
   */
  forecast(prompt: { promptTokens: number; blockHashes: readonly string[] }): number {
    const options = this.#options;
    const uncached = (tokens: number, hashes: readonly string[]): number =>
      this.#prefixCaching
        ? tokens - this.#kv.lookup(hashes, tokens).length * this.#kv.blockSize
        : tokens;
    const inStep = new Set(this.#batch);
    let decodes = 0;
    let prefill = uncached(prompt.promptTokens, prompt.blockHashes);
    for (const request of this.#running) {
      const left = request.numTokens - request.computed -
        (inStep.has(request) ? request.scheduled : 0);
      if (left <= 0 || (request.generated > 0 && left === 1)) decodes++;
      else prefill += left;
    }
    for (const request of this.#waiting) {
      prefill += uncached(request.numTokens, request.job.blockHashes);
    }
    const rest = this.#batch.length > 0 ? Math.max(0, this.#plannedEnd - performance.now()) : 0;
    const stepMs = decodeStepMs(options, decodes) + options.ttftMs +
      prefill * options.prefillMsPerToken;
    return rest + stepMs / options.speed;
  }

  /**
   * Closes a test gate: gated requests (streams) stop before sampling their last token, keeping
   * their slot and blocks, until every closed gate is opened.
   *
   * @returns A handle whose `open()` (idempotent) lifts this gate.
   */
  gate(): { open(): void } {
    this.#closedGates++;
    let open = false;
    return {
      open: () => {
        if (open) return;
        open = true;
        this.#closedGates--;
        this.#kick();
      },
    };
  }

  /**
   * Calls `listener` after every change of state (step, submit, abort).
   *
   * @param listener Called synchronously; keep it short.
   * @returns A function that removes the listener.
   */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops the engine and aborts everything in it, telling each sink. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const all = [...this.#running, ...this.#waiting];
    this.#running = [];
    this.#waiting.length = 0;
    this.#held = 0;
    this.#batch = [];
    for (const request of all) {
      this.#kv.free(request);
      request.phase = "done";
      this.stats.finished.abort++;
      request.sink.finish("abort");
    }
    this.#changed();
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }

  #kick(): void {
    if (this.#timer !== undefined || this.#closed) return;
    if (this.#running.length === 0 && this.#waiting.length === 0) return;
    this.#timer = setTimeout(() => this.#step(), 0);
  }

  /**
   * Plans one step and starts its timer, or goes idle.
   *
   * @param since When this step starts on the simulated timeline. Commits pass the previous
   *   step's planned end (at most one step back), so the simulator's own CPU work and late timers
   *   do not stretch simulated step times.
   */
  #step(since = performance.now()): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const options = this.#options;
    const queues = { running: this.#running, waiting: this.#waiting };
    const plan = planStep(queues, this.#kv, {
      ...options,
      prefixCaching: this.#prefixCaching,
      gateClosed: this.#closedGates > 0,
    });
    this.#held = plan.held;
    const batch = plan.batch as Job[];
    this.stats.preemptions += plan.preempted;
    for (const request of plan.admitted) this.#firstAdmission(request);
    if (batch.length === 0) {
      this.#changed();
      return;
    }
    const { decodes, prefillTokens } = plan;
    const decodeMs = decodeStepMs(options, decodes);
    const prefillMs = prefillTokens > 0
      ? options.ttftMs + prefillTokens * options.prefillMsPerToken
      : 0;
    this.stats.scheduledRequests += batch.length;
    this.stats.decodeSeconds += decodeMs / options.speed / 1000;
    this.stats.prefillSeconds += prefillMs / options.speed / 1000;
    this.#batch = batch;
    this.#stepStart = performance.now();
    const stepMs = (decodeMs + prefillMs) / options.speed;
    this.#stepMs = stepMs;
    this.#plannedEnd = since + stepMs;
    this.#timer = setTimeout(
      () => this.#commit(),
      Math.max(0, this.#plannedEnd - performance.now()),
    );
    this.#changed();
  }

  #firstAdmission(request: SimRequest): void {
    const stats = this.stats;
    stats.promptTokens += request.job.promptTokens;
    if (this.#prefixCaching) {
      stats.prefixQueries += request.job.promptTokens;
      stats.prefixHits += request.cachedTokens;
    }
    stats.queueTime.observe((performance.now() - request.arrival) / 1000);
  }

  /** Ends the step in flight: advances every scheduled request and emits sampled tokens. */
  #commit(): void {
    // #timer keeps the fired id until #step, so aborts from sinks do not start a second step.
    const now = performance.now();
    const stats = this.stats;
    const batch = this.#batch;
    this.#batch = [];
    stats.steps++;
    let tokens = 0;
    let finished = false;
    for (const request of batch) {
      if (request.phase !== "running") continue;
      request.computed += request.scheduled;
      if (this.#prefixCaching) {
        this.#kv.register(request, request.job.blockHashes, request.computed);
      }
      if (request.computed < request.numTokens) continue;
      if (request.job.outputTokens === 0) {
        finished = true;
        this.#finish(request, "stop", now);
        continue;
      }
      const index = request.generated++;
      tokens++;
      if (index === 0) stats.ttft.observe((now - request.arrival) / 1000);
      else stats.itl.observe((now - request.lastTokenAt) / 1000);
      request.lastTokenAt = now;
      request.sink.token(index);
      if (request.phase === "running" && request.generated >= request.job.outputTokens) {
        finished = true;
        this.#finish(request, request.job.finishReason, now);
      }
    }
    if (finished) this.#running = this.#running.filter((request) => request.phase === "running");
    stats.generationTokens += tokens;
    const seconds = (now - this.#stepStart) / 1000;
    stats.lastThroughput = seconds > 0 ? tokens / seconds : 0;
    this.#step(Math.max(this.#plannedEnd, now - this.#stepMs));
  }

  #finish(request: Job, reason: FinishReason, now: number): void {
    request.phase = "done";
    this.#kv.free(request);
    this.stats.finished[reason]++;
    this.stats.e2e.observe((now - request.arrival) / 1000);
    request.sink.finish(reason);
  }
}
