/**
 * The simulated engine: vLLM-like continuous batching over a block KV cache, independent of HTTP.
 *
 * Each step runs in real time on one timer. A step first continues running requests (one decode
 * token each, or the next prefill chunk), preempting the newest running request when KV blocks run
 * out; then, if nothing was preempted, it admits waiting requests from the queue head while slots,
 * token budget and blocks allow. Step time is
 * `(itlMs * (1 + batchFactor * (decodes - 1)) + [ttftMs + prefillTokens * prefillMsPerToken]) / speed`,
 * so time to first token is queue wait plus prefill. With nothing to do the engine sets no timer.
 *
 * @module
 */

import { KvCache, type KvBlock, type KvHolder } from "./kv_cache.ts";
import type { ResolvedSimOptions } from "./options.ts";
import { EngineStats, type FinishReason } from "./stats.ts";

/** What to generate for one request. */
export interface EngineJob {
  /** Prompt length in tokens. */
  promptTokens: number;
  /** Chain hashes of the prompt's full blocks (empty to skip the prefix cache). */
  blockHashes: readonly string[];
  /** Output tokens to generate; 0 finishes after prefill (embeddings). */
  outputTokens: number;
  /** Reason reported once all output tokens are out. */
  finishReason: "stop" | "length";
}

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
}

type Phase = "waiting" | "running" | "done";

class Job implements KvHolder, EngineRequest {
  blocks: KvBlock[] = [];
  registered = 0;
  phase: Phase = "waiting";
  computed = 0;
  generated = 0;
  scheduled = 0;
  cachedTokens = 0;
  admitted = false;
  lastTokenAt = 0;
  readonly arrival = performance.now();
  readonly #engine: Engine;

  constructor(engine: Engine, readonly spec: EngineJob, readonly sink: EngineSink) {
    this.#engine = engine;
  }

  get numTokens(): number {
    return this.spec.promptTokens + this.generated;
  }

  abort(): void {
    this.#engine.abort(this);
  }
}

/**
 * The scheduler and its KV cache.
 *
 * @example
 * ```ts
 * const engine = new Engine(resolveSimOptions({ itlMs: 1 }));
 * engine.submit({ promptTokens: 8, blockHashes: [], outputTokens: 4, finishReason: "length" }, {
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
  #timer: number | undefined;
  #stepStart = 0;
  #closed = false;
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

  /** Plans one step and starts its timer, or goes idle. */
  #step(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const options = this.#options;
    const blockSize = this.#kv.blockSize;
    let budget = options.maxNumBatchedTokens;
    const batch: Job[] = [];
    let preempted = false;
    for (let i = 0; i < this.#running.length && budget > 0; i++) {
      const request = this.#running[i] as Job;
      const tokens = Math.min(request.numTokens - request.computed, budget);
      let ok = this.#kv.grow(request, request.computed + tokens);
      while (!ok) {
        const victim = this.#running.pop() as Job;
        this.#preempt(victim);
        preempted = true;
        if (victim === request) break;
        ok = this.#kv.grow(request, request.computed + tokens);
      }
      if (!ok) break;
      request.scheduled = tokens;
      budget -= tokens;
      batch.push(request);
    }
    while (
      !preempted && budget > 0 && this.#waiting.length > 0 &&
      this.#running.length < options.maxNumSeqs
    ) {
      const request = this.#waiting[0] as Job;
      const maxBlocks = Math.floor((request.numTokens - 1) / blockSize);
      const hits = this.#prefixCaching ? this.#kv.lookup(request.spec.blockHashes, maxBlocks) : [];
      const cached = hits.length * blockSize;
      const tokens = Math.min(request.numTokens - cached, budget);
      if (!this.#kv.admit(request, hits, cached + tokens)) break;
      this.#waiting.shift();
      request.phase = "running";
      request.computed = cached;
      request.scheduled = tokens;
      budget -= tokens;
      this.#running.push(request);
      batch.push(request);
      if (!request.admitted) this.#firstAdmission(request, cached);
    }
    if (batch.length === 0) {
      this.#changed();
      return;
    }
    let decodes = 0;
    let prefillTokens = 0;
    for (const request of batch) {
      if (request.generated > 0 && request.numTokens - request.computed === 1) decodes++;
      else prefillTokens += request.scheduled;
    }
    const decodeMs = decodes > 0 ? options.itlMs * (1 + options.batchFactor * (decodes - 1)) : 0;
    const prefillMs = prefillTokens > 0
      ? options.ttftMs + prefillTokens * options.prefillMsPerToken
      : 0;
    this.stats.scheduledRequests += batch.length;
    this.stats.decodeSeconds += decodeMs / options.speed / 1000;
    this.stats.prefillSeconds += prefillMs / options.speed / 1000;
    this.#batch = batch;
    this.#stepStart = performance.now();
    this.#timer = setTimeout(() => this.#commit(), (decodeMs + prefillMs) / options.speed);
    this.#changed();
  }

  #firstAdmission(request: Job, cached: number): void {
    request.admitted = true;
    request.cachedTokens = cached;
    const stats = this.stats;
    stats.promptTokens += request.spec.promptTokens;
    if (this.#prefixCaching) {
      stats.prefixQueries += request.spec.promptTokens;
      stats.prefixHits += cached;
    }
    stats.queueTime.observe((performance.now() - request.arrival) / 1000);
  }

  #preempt(request: Job): void {
    this.#kv.free(request);
    request.phase = "waiting";
    request.computed = 0;
    this.#waiting.unshift(request);
    this.stats.preemptions++;
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
        this.#kv.register(request, request.spec.blockHashes, request.computed);
      }
      if (request.computed < request.numTokens) continue;
      if (request.spec.outputTokens === 0) {
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
      if (request.phase === "running" && request.generated >= request.spec.outputTokens) {
        finished = true;
        this.#finish(request, request.spec.finishReason, now);
      }
    }
    if (finished) this.#running = this.#running.filter((request) => request.phase === "running");
    stats.generationTokens += tokens;
    const seconds = (now - this.#stepStart) / 1000;
    stats.lastThroughput = seconds > 0 ? tokens / seconds : 0;
    this.#step();
  }

  #finish(request: Job, reason: FinishReason, now: number): void {
    request.phase = "done";
    this.#kv.free(request);
    this.stats.finished[reason]++;
    this.stats.e2e.observe((now - request.arrival) / 1000);
    request.sink.finish(reason);
  }
}
