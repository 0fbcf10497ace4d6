/**
 * One request in flight on the upstream client, and the error for a connection that could not be
 * opened. {@link UpstreamCall.abort} closes the call's connection until its answer has ended
 * (then the connection belongs to the pool again, and abort leaves it be).
 *
 * @module
 */
import type { Http1Connection } from "./http1_connection.ts";
import type { UpstreamResponse } from "./http1_pool.ts";

/** A failure to open a connection (refused, unresolvable, or timed out). */
export class ConnectError extends Error {
  /**
   * Creates the error.
   *
   * @param message What happened.
   * @param options The cause.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectError";
  }
}

/** A request in flight; {@link UpstreamCall.abort} closes its connection. */
export class UpstreamCall {
  /** The answer, once its head arrived. */
  readonly response: Promise<UpstreamResponse>;
  #connection: Http1Connection | undefined;
  #connecting: AbortController | undefined;
  #aborted = false;

  /**
   * Starts the call.
   *
   * @param run Sends the request, given the call to attach connections to.
   */
  constructor(run: (call: UpstreamCall) => Promise<UpstreamResponse>) {
    this.response = run(this);
  }

  /** Whether {@link UpstreamCall.abort} was called. */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** Bytes read from the server so far on the call's connection (for idle deadlines). */
  get bytesRead(): number {
    return this.#connection?.bytesRead ?? 0;
  }

  /** Aborts the call: a pending connect is dropped, an open connection closed. */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#connecting?.abort();
    this.#connection?.close();
  }

  /** @internal The answer ended: the connection is no longer the call's (abort leaves it be). */
  detach(): void {
    this.#connection = undefined;
  }

  /** @internal Attaches the connection in use. */
  attach(connection: Http1Connection | undefined, connecting?: AbortController): void {
    this.#connection = connection;
    this.#connecting = connecting;
    if (this.#aborted) connection?.close();
  }
}
