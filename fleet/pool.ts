/**
 * Live per-server state shared by every model that uses a server: in-flight requests, requests
 * sent since the last metrics scrape, and the last scraped metrics per model.
 *
 * Servers are keyed by URL, so a config reload keeps the state of servers that stay.
 *
 * @module
 */
import { Http1Pool } from "../upstream/http1_pool.ts";
import type { ServerMetrics, ServerView } from "../strategies/types.ts";
import { Breaker, type BreakerSettings } from "./breaker.ts";
import type { SharedServer } from "./shared_fleet.ts";
import { SlotQueue, type WaitOptions } from "./slot_queue.ts";

/** Breaker settings until a spec provides its own. */
const DEFAULT_BREAKER: BreakerSettings = {
  enabled: true,
  consecutive_failures: 5,
  error_rate: 0.5,
  min_requests: 20,
  window: 30,
  cooldown: 10,
  max_cooldown: 300,
};

/** One upstream server's live state. */
export class ServerState {
  /** Base URL, without a trailing slash. */
  readonly url: string;
  #inFlight = 0;
  #sent = 0;
  #requests = 0;
  #healthy = true;
  /** Passive outlier ejection. */
  readonly breaker: Breaker;
  /** Requests waiting for a slot when the server is at its cap. */
  readonly slots: SlotQueue = new SlotQueue();
  /** Most requests in flight at once, or `undefined` for no cap. */
  maxConcurrent: number | undefined;
  /** The server's own API key (vLLM `--api-key`), sent as `Authorization: Bearer`. */
  apiKey: string | undefined;
  /** Keep-alive connections to the server. */
  readonly connections: Http1Pool;
  /** Failed metrics scrapes of the server. */
  scrapeErrors = 0;
  /** When the last metrics scrape finished, in milliseconds since the epoch (0: never). */
  metricsAt = 0;
  #metrics = new Map<string, ServerMetrics>();
  #staleAfterMs: number;
  readonly #shared: SharedServer | undefined;
  #pumping = false;

  /**
   * Creates a server's state.
   *
   * @param url Base URL.
   * @param staleAfterMs Age after which scraped metrics no longer count.
   * @param shared Cells shared with other workers (counts, health, breaker), when there are some.
   */
  constructor(url: string, staleAfterMs: number, shared?: SharedServer) {
    this.url = url;
    this.connections = new Http1Pool(url);
    this.#staleAfterMs = staleAfterMs;
    this.#shared = shared;
    this.breaker = new Breaker(
      DEFAULT_BREAKER,
      shared && { cells: shared.breaker, lock: shared.breakerLock },
    );
  }

  /** Requests in flight on the server (from every worker when they share state). */
  get inFlight(): number {
    return this.#shared ? this.#shared.inFlight : this.#inFlight;
  }

  /** Requests sent since the last successful metrics scrape. */
  get sentSinceScrape(): number {
    return this.#shared ? this.#shared.sentSinceScrape : this.#sent;
  }

  /** Requests sent in total. */
  get requests(): number {
    return this.#shared ? this.#shared.requests : this.#requests;
  }

  /** Requests waiting for a slot (in every worker when they share state). */
  get queued(): number {
    return this.#shared ? this.#shared.waiting : this.slots.length;
  }

  /** Whether active health checks pass (true until a check says otherwise). */
  get healthy(): boolean {
    return this.#shared ? this.#shared.healthy : this.#healthy;
  }

  set healthy(healthy: boolean) {
    if (this.#shared) this.#shared.healthy = healthy;
    else this.#healthy = healthy;
  }

  /** Sets how old scraped metrics may be before they no longer count. */
  set staleAfterMs(ms: number) {
    this.#staleAfterMs = ms;
  }

  /**
   * Records a successful scrape: metrics per served model name (`*` applies to any model).
   *
   * @param metrics Metrics by model name.
   */
  setMetrics(metrics: ReadonlyMap<string, ServerMetrics>): void {
    this.#metrics = new Map(metrics);
    if (this.#shared) this.#shared.resetSent();
    else this.#sent = 0;
    this.metricsAt = Date.now();
  }

  /**
   * Takes metrics another isolate scraped (a worker, from the control plane), leaving the
   * requests-sent count, which the control plane zeroed, as it is.
   *
   * @param metrics Metrics by model name.
   * @param fields When they were scraped and the failed scrapes so far.
   */
  receiveMetrics(
    metrics: ReadonlyMap<string, ServerMetrics>,
    fields: { metricsAt: number; scrapeErrors: number },
  ): void {
    this.#metrics = new Map(metrics);
    this.metricsAt = fields.metricsAt;
    this.scrapeErrors = fields.scrapeErrors;
  }

  /** The last scraped metrics by model name, fresh or not. */
  get lastMetrics(): ReadonlyMap<string, ServerMetrics> {
    return this.#metrics;
  }

  /**
   * Tells whether the server may get a new request: healthy and not ejected (an ejected server
   * past its cool-down admits one probe).
   *
   * @param now The current time in milliseconds.
   * @returns Whether it is available.
   */
  available(now: number): boolean {
    return this.healthy && this.breaker.admits(now);
  }

  /** Whether a new request may start now without waiting for a slot. */
  hasRoom(): boolean {
    return this.maxConcurrent === undefined || this.inFlight < this.maxConcurrent;
  }

  /**
   * Takes a slot when the server has room and counts the request; across workers the cap holds
   * exactly (compare-and-swap on the shared count).
   *
   * @returns Whether the slot was taken.
   */
  tryBegin(): boolean {
    if (this.#shared) return this.#shared.tryBegin(this.maxConcurrent);
    if (!this.hasRoom()) return false;
    this.begin();
    return true;
  }

  /**
   * Waits in the server's queue until a slot is handed over (see {@link SlotQueue.wait}); with
   * shared state, a slot freed by another worker is taken for the oldest waiter here.
   *
   * @param options Queue bound, wait limit, abort signal and the server URL.
   * @returns Resolves when the caller owns a slot.
   */
  waitForSlot(options: WaitOptions): Promise<void> {
    const waiting = this.slots.wait(options);
    if (this.#shared && !this.#pumping) void this.#pump(this.#shared);
    return waiting;
  }

  /** While requests wait here, takes slots other workers free and hands them over. */
  async #pump(shared: SharedServer): Promise<void> {
    this.#pumping = true;
    let published = 0;
    try {
      while (this.slots.length > 0) {
        shared.addWaiting(this.slots.length - published);
        published = this.slots.length;
        const seen = shared.inFlight;
        if (shared.tryBegin(this.maxConcurrent)) {
          if (!this.slots.handOver()) shared.release();
          continue;
        }
        // Woken when another worker frees a slot; the bound also notices local timeouts.
        await shared.changed(seen, 50);
      }
    } finally {
      shared.addWaiting(-published);
      this.#pumping = false;
    }
  }

  /**
   * Returns fresh metrics for a model, or `undefined` when none are fresh. Series of the model's
   * own name count first, then unlabelled ones (`*`, llama.cpp), then the only model the server
   * reports, if it reports one.
   *
   * @param model The model name the server serves.
   * @param now The current time in milliseconds (defaults to `Date.now()`).
   * @returns The metrics, or `undefined`.
   */
  metricsFor(model: string, now: number = Date.now()): ServerMetrics | undefined {
    const metrics = this.#metrics.get(model) ?? this.#metrics.get("*") ??
      (this.#metrics.size === 1 ? this.#metrics.values().next().value : undefined);
    if (!metrics || now - metrics.scrapedAt > this.#staleAfterMs) return undefined;
    return metrics;
  }

  /** Marks a request as started on this server. */
  begin(): void {
    if (this.#shared) {
      this.#shared.tryBegin(undefined);
      return;
    }
    this.#inFlight++;
    this.#sent++;
    this.#requests++;
  }

  /**
   * Marks a request as ended; its slot goes to the oldest waiter if there is one. Never goes
   * below zero.
   */
  end(): void {
    if (this.slots.handOver()) {
      // The slot passes to the waiter, who counts as a new request.
      if (this.#shared) this.#shared.counted();
      else {
        this.#sent++;
        this.#requests++;
      }
      return;
    }
    if (this.#shared) this.#shared.release();
    else if (this.#inFlight > 0) this.#inFlight--;
  }
}

/** A server as one model sees it: shared live state plus the model's weight and position. */
export class Endpoint implements ServerView {
  /** The shared server state. */
  readonly server: ServerState;
  /** Static weight from the spec. */
  readonly weight: number;
  /** Position in the model's server list. */
  readonly index: number;
  /** The model name the server serves (the spec's `upstream_model`, or the model's name). */
  readonly servedModel: string;

  /**
   * Creates a model's view of a server.
   *
   * @param server Shared state.
   * @param options Weight, position and served model name.
   */
  constructor(
    server: ServerState,
    options: { weight: number; index: number; servedModel: string },
  ) {
    this.server = server;
    this.weight = options.weight;
    this.index = options.index;
    this.servedModel = options.servedModel;
  }

  /** Base URL of the server. */
  get url(): string {
    return this.server.url;
  }

  /** Requests in flight on the server now. */
  get inFlight(): number {
    return this.server.inFlight;
  }

  /** Requests sent since the last scrape. */
  get sentSinceScrape(): number {
    return this.server.sentSinceScrape;
  }

  /** Fresh scraped metrics for the served model. */
  get metrics(): ServerMetrics | undefined {
    return this.server.metricsFor(this.servedModel);
  }
}
