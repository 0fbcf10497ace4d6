/**
 * The simulated vLLM server: OpenAI-compatible HTTP over the simulated engine, vLLM's tokenizer
 * endpoints (`/tokenize`, `/detokenize`, `/v1/chat/completions/render`, `/v1/completions/render`,
 * see tokenizer_api.ts), failure injection and hooks that make tests deterministic.
 *
 * @example
 * ```ts
 * const sim = await startSimServer({ models: ["m"], itlMs: 2 });
 * const res = await fetch(`${sim.url}/v1/completions`, {
 *   method: "POST",
 *   body: JSON.stringify({ model: "m", prompt: "Hi", max_tokens: 4 }),
 * });
 * console.log(await res.json());
 * await sim.close();
 * ```
 *
 * @module
 */

import { seededRandom } from "../strategies/_seeded_random.ts";
import { type Answer, type AnswerHooks, jsonAnswer, streamAnswer } from "./answer.ts";
import { Engine } from "./engine/engine.ts";
import { renderMetrics } from "./exposition.ts";
import { planInference } from "./inference.ts";
import { type Endpoint, errorResponse, modelsBody, SimHttpError } from "./openai.ts";
import { type ResolvedSimOptions, resolveSimOptions, type SimOptions } from "./options.ts";
import { TOKENIZER_PATHS, tokenizerResponse } from "./tokenizer_api.ts";
import { StateWatch } from "./watch.ts";

export type { MetricsFlavor, SimOptions } from "./options.ts";

/** One request the simulator received (inference and other endpoints, not `/metrics` or `/health`). */
export interface ReceivedRequest {
  /** HTTP method. */
  method: string;
  /** URL path, e.g. `/v1/chat/completions`. */
  path: string;
  /** Request headers. */
  headers: Headers;
  /** The raw body (empty for GET). */
  bodyText: string;
}

/** A snapshot of the simulator's load and counters. */
export interface SimState {
  /** Requests in the running batch. */
  running: number;
  /** Requests queued in the engine. */
  waiting: number;
  /** Share of KV blocks held by running requests, 0..1. */
  kvUsage: number;
  /** Requests finished with `"stop"` or `"length"`. */
  completed: number;
  /** Requests aborted (client gone, dropped, server closed). */
  aborted: number;
  /** Inference requests received (`POST /v1/...`), including failed and hung ones. */
  received: number;
  /** Tokenizer requests answered (`/tokenize`, `/detokenize`, the render endpoints). */
  tokenized: number;
  /** Requests held open by `hang` or `metricsHang`. */
  hanging: number;
  /** Streams waiting at a closed gate before their last token (holding their slots). */
  gated: number;
  /** SSE events written, over all streams. */
  chunksWritten: number;
  /** `/metrics` requests answered. */
  scrapes: number;
}

/** A running simulated server. */
export interface SimServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** The port listened on. */
  readonly port: number;
  /** The last 100 requests received, oldest first (not `/metrics` or `/health`). */
  readonly received: ReceivedRequest[];
  /** Changes behaviour live; `hostname`, `port`, `blockSize`, `enablePrefixCaching` stay. */
  update(options: Partial<SimOptions>): void;
  /** The load and counters now. */
  state(): SimState;
  /**
   * The time to first token a prompt would have if it arrived now, ms, from the engine's own
   * state (`Engine.forecast`); for benchmark baselines that know everything.
   */
  forecast(prompt: { promptTokens: number; blockHashes: readonly string[] }): number;
  /** Resolves when nothing is running or waiting in the engine. */
  onIdle(options?: { timeoutMs?: number }): Promise<void>;
  /** Resolves once `predicate` holds, checked on every change; rejects after `timeoutMs` (5000). */
  until(predicate: (state: SimState) => boolean, options?: { timeoutMs?: number }): Promise<void>;
  /**
   * Holds every stream before its last token until `open()`: it has written all other chunks and
   * keeps its running slot and KV blocks (single-token answers are not held).
   */
  gate(): { open(): void };
  /** Stops listening and drops everything in flight, like a killed process. */
  close(): Promise<void>;
}

const RECEIVED_LIMIT = 100;
const ENDPOINTS: Readonly<Record<string, Endpoint>> = {
  "/v1/chat/completions": "chat",
  "/v1/completions": "completion",
  "/v1/embeddings": "embedding",
};

class Sim implements SimServer {
  readonly received: ReceivedRequest[] = [];
  #options: ResolvedSimOptions;
  readonly #engine: Engine;
  readonly #abort = new AbortController();
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  readonly #answers = new Set<Answer>();
  readonly #hung = new Set<() => void>();
  readonly #hungMetrics = new Set<() => void>();
  readonly #watch = new StateWatch(() => this.state());
  #random: () => number;
  #nextId = 0;
  #counts = { received: 0, tokenized: 0, chunksWritten: 0, scrapes: 0 };
  readonly #hooks: AnswerHooks = {
    wrote: () => {
      this.#counts.chunksWritten++;
      if (this.#watch.active) this.#notify();
    },
    ended: (answer) => {
      this.#answers.delete(answer);
    },
  };

  constructor(options: ResolvedSimOptions) {
    this.#options = options;
    this.#engine = new Engine(options);
    this.#random = seededRandom(options.seed);
    this.#engine.onChange(() => this.#notify());
  }

  listen(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#server = Deno.serve({
      hostname: this.#options.hostname,
      port: this.#options.port,
      signal: this.#abort.signal,
      onListen: () => resolve(),
      // Body streams error on purpose (drops, kills): stay quiet.
      onError: (error) => errorResponse(500, `Simulator failed: "${String(error)}"`),
    }, (request) => this.#handle(request));
    return promise;
  }

  get port(): number {
    return this.#server?.addr.port ?? 0;
  }

  get url(): string {
    return `http://${this.#options.hostname}:${this.port}`;
  }

  update(options: Partial<SimOptions>): void {
    const next = resolveSimOptions(options, this.#options);
    if (next.seed !== this.#options.seed) this.#random = seededRandom(next.seed);
    this.#options = next;
    this.#engine.update(next);
    this.#notify();
  }

  state(): SimState {
    const hanging = this.#hung.size + this.#hungMetrics.size;
    return { ...this.#engine.state(), hanging, ...this.#counts };
  }

  forecast(prompt: { promptTokens: number; blockHashes: readonly string[] }): number {
    return this.#engine.forecast(prompt);
  }

  onIdle(options: { timeoutMs?: number } = {}): Promise<void> {
    return this.until((state) => state.running === 0 && state.waiting === 0, options);
  }

  until(
    predicate: (state: SimState) => boolean,
    options: { timeoutMs?: number } = {},
  ): Promise<void> {
    return this.#watch.until(predicate, options);
  }

  gate(): { open(): void } {
    return this.#engine.gate();
  }

  async close(): Promise<void> {
    this.#abort.abort();
    this.#engine.close();
    for (const answer of [...this.#answers]) answer.kill();
    // Hung requests stay unanswered: the aborted listener drops their connections.
    this.#hung.clear();
    this.#hungMetrics.clear();
    await this.#server?.finished;
    this.#watch.close();
  }

  #notify(): void {
    this.#watch.changed();
  }

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname;
    if (request.method === "GET" && path === "/metrics") return this.#metrics(request);
    if (request.method === "GET" && path === "/health") {
      return new Response(null, { status: this.#options.healthStatus });
    }
    const bodyText = request.method === "GET" || request.method === "HEAD"
      ? ""
      : await request.text();
    this.received.push({
      method: request.method,
      path,
      headers: new Headers(request.headers),
      bodyText,
    });
    if (this.received.length > RECEIVED_LIMIT) this.received.shift();
    const endpoint = ENDPOINTS[path];
    if (endpoint !== undefined || TOKENIZER_PATHS.has(path)) {
      if (request.method !== "POST") {
        return errorResponse(405, `Method "${request.method}" is not allowed`);
      }
      const response = endpoint === undefined
        ? this.#tokenize(path, bodyText)
        : this.#infer(endpoint, bodyText, request.signal);
      return this.#countHttp(request.method, path, await response);
    }
    if (request.method === "GET" && path === "/v1/models") {
      const models = modelsBody(this.#options.models, this.#engine.maxModelLen);
      return this.#countHttp("GET", path, Response.json(models));
    }
    if (request.method === "GET" && path === "/load") {
      const state = this.#engine.state();
      return Response.json({ server_load: state.running + state.waiting });
    }
    return Response.json({ detail: "Not Found" }, { status: 404 });
  }

  #metrics(request: Request): Promise<Response> | Response {
    const options = this.#options;
    if (options.metricsHang) return this.#hang(request.signal, false);
    this.#counts.scrapes++;
    if (options.metricsStatus !== 200) {
      return new Response("Simulated metrics failure\n", { status: options.metricsStatus });
    }
    return new Response(renderMetrics(this.#engine, options), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  }

  #tokenize(path: string, bodyText: string): Response {
    const context = { options: this.#options, maxModelLen: this.#engine.maxModelLen };
    const response = tokenizerResponse(path, bodyText, { ...context, serial: ++this.#nextId });
    if (response.ok) this.#counts.tokenized++;
    this.#notify();
    return response;
  }

  /** Counts an answer in `http_requests_total` (by status class, as vLLM's instrumentator). */
  #countHttp(method: string, handler: string, response: Response): Response {
    const key = `${method} ${handler} ${Math.floor(response.status / 100)}xx`;
    const counts = this.#engine.stats.httpRequests;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    return response;
  }

  #infer(endpoint: Endpoint, bodyText: string, signal: AbortSignal): Promise<Response> | Response {
    this.#counts.received++;
    this.#notify();
    const options = this.#options;
    if (options.hang) return this.#hang(signal, true);
    if (options.errorRate > 0 && this.#random() < options.errorRate) {
      return errorResponse(
        options.errorStatus,
        `Simulated failure with status "${options.errorStatus}"`,
      );
    }
    try {
      const { spec, stream } = planInference(endpoint, bodyText, {
        options,
        maxModelLen: this.#engine.maxModelLen,
        prefixCaching: this.#engine.prefixCaching,
        serial: ++this.#nextId,
      });
      const run = stream ? streamAnswer : jsonAnswer;
      const { answer, response } = run(this.#engine, spec, { hooks: this.#hooks, signal });
      this.#answers.add(answer);
      return response;
    } catch (error) {
      if (error instanceof SimHttpError) {
        return errorResponse(error.status, error.message, { param: error.param });
      }
      throw error;
    }
  }

  #hang(signal: AbortSignal, inference: boolean): Promise<Response> {
    const { promise, resolve } = Promise.withResolvers<Response>();
    const hung = inference ? this.#hung : this.#hungMetrics;
    const release = (): void => {
      if (!hung.delete(release)) return;
      resolve(errorResponse(503, "Simulator stopped hanging"));
      this.#notify();
    };
    hung.add(release);
    signal.addEventListener("abort", release, { once: true });
    this.#notify();
    return promise;
  }
}

/**
 * Starts a simulated vLLM server and resolves once it listens.
 *
 * @param options Behaviour; every field has a default (see `SIM_DEFAULTS`).
 * @returns The running server.
 * @throws {RangeError} When an option is out of range.
 */
export async function startSimServer(options: SimOptions = {}): Promise<SimServer> {
  const sim = new Sim(resolveSimOptions(options));
  await sim.listen();
  return sim;
}
