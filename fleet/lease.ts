/**
 * The lease on a server that one attempt holds from the moment a server is picked: its in-flight
 * count and `max_concurrent` slot, the strategy's `onStart`/`onEnd` pair and the breaker's record
 * (and probe). {@link ServerLease.release} gives all of them back, once; it is the only place that
 * does.
 *
 * Ownership is structural: the attempt holds the lease in a `using` declaration, so any exception
 * or early exit between the pick and the hand-over disposes it (released as a gateway-side error
 * that does not count against the server). A streamed answer takes the lease over with
 * {@link ServerLease.adopt}; its stream then releases it on every way the stream can end. The one
 * part attached with {@link ServerLease.attach} (the forwarded request's deadline and disconnect
 * watch) is told of the release, whoever triggered it.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { RequestFacts, RequestOutcome } from "../strategies/types.ts";
import type { Endpoint } from "./pool.ts";
import type { ModelRoute } from "./routes.ts";

/**
 * How a leased request ended: a strategy's outcome, or `client_slow` (the client stopped reading
 * and was cut; strategies see it as `aborted`, the breaker not at all).
 */
export type LeaseOutcome = RequestOutcome | "client_slow";

/** What {@link ServerLease.release} records. */
export interface ReleaseOptions {
  /** Whether the server is to blame (the breaker counts a failure). */
  blame: boolean;
}

/** Told once when the lease is released. */
export interface ReleaseListener {
  /**
   * The lease was released (the server's state is already given back).
   *
   * @param outcome How the request ended.
   */
  released(outcome: LeaseOutcome): void;
}

const logger = getLogger(["llmstream", "breaker"]);
const OPEN = 0;
const ADOPTED = 1;
const RELEASED = 2;

/** One attempt's hold on one server. */
export class ServerLease implements Disposable {
  /** The server, as the model sees it. */
  readonly endpoint: Endpoint;
  readonly #route: ModelRoute;
  readonly #facts: RequestFacts;
  readonly #probe: boolean;
  #state = OPEN;
  #listener: ReleaseListener | undefined;

  /**
   * Starts a lease on a server whose slot the caller has taken (`begin()` or a handed-over slot):
   * tells the breaker and the strategy that a request starts.
   *
   * @param endpoint The picked server.
   * @param options The model's route (its strategy) and the request's facts.
   */
  constructor(endpoint: Endpoint, options: { route: ModelRoute; facts: RequestFacts }) {
    this.endpoint = endpoint;
    this.#route = options.route;
    this.#facts = options.facts;
    this.#probe = endpoint.server.breaker.onSend(Date.now());
    options.route.strategy.onStart?.(endpoint, options.facts);
  }

  /**
   * Attaches the one part to tell of the release (the forwarded request's own cleanup).
   *
   * @param listener Told once, after the server's state was released.
   */
  attach(listener: ReleaseListener): void {
    this.#listener = listener;
  }

  /** Takes the lease over from the `using` scope: the caller (a stream) now releases it. */
  adopt(): void {
    if (this.#state === OPEN) this.#state = ADOPTED;
  }

  /**
   * Gives everything back: the in-flight count and slot, the strategy's `onEnd`, the breaker's
   * record. Later calls do nothing.
   *
   * @param outcome How the request ended.
   * @param options Whether the server is to blame.
   * @returns Whether this call released the lease.
   */
  release(outcome: LeaseOutcome, options: ReleaseOptions): boolean {
    if (this.#state === RELEASED) return false;
    this.#state = RELEASED;
    const endpoint = this.endpoint;
    const server = endpoint.server;
    server.end();
    try {
      this.#route.strategy.onEnd?.(
        endpoint,
        this.#facts,
        outcome === "client_slow" ? "aborted" : outcome,
      );
    } catch (error) {
      logger.error("Strategy {strategy} failed in onEnd: {error}", {
        strategy: this.#route.strategyRef,
        error,
      });
    }
    recordBreaker(server, { blame: options.blame, probe: this.#probe });
    this.#listener?.released(outcome);
    return true;
  }

  /** Releases a lease nobody adopted, as a gateway-side error that does not blame the server. */
  [Symbol.dispose](): void {
    if (this.#state === OPEN) this.release("error", { blame: false });
  }
}

/** Records an ended request in the server's breaker and logs an ejection or a restore. */
function recordBreaker(server: Endpoint["server"], options: { blame: boolean; probe: boolean }) {
  const change = server.breaker.record(options.blame, { probe: options.probe, now: Date.now() });
  if (change === "ejected") {
    logger.warn("Server {url} ejected after failures; it gets no traffic until {until}", {
      url: server.url,
      until: new Date(server.breaker.openUntil).toISOString(),
    });
  } else if (change === "restored") {
    logger.info("Server {url} passed its probe request and gets traffic again", {
      url: server.url,
    });
  }
}
