/**
 * Every known server's state, by URL: made on first use, kept across config changes while a
 * server stays (or still has requests in flight), and, with several workers, backed by the shared
 * fleet's cells.
 *
 * @module
 */
import { ServerState } from "./pool.ts";
import type { SharedFleet } from "./shared_fleet.ts";

/** All known servers by URL. */
export class ServerPool {
  #servers = new Map<string, ServerState>();
  #staleAfterMs: number;
  readonly #shared: SharedFleet | undefined;

  /**
   * Creates an empty pool.
   *
   * @param staleAfterMs Age after which scraped metrics no longer count.
   * @param shared The state shared with other workers, when there are several.
   */
  constructor(staleAfterMs: number, shared?: SharedFleet) {
    this.#staleAfterMs = staleAfterMs;
    this.#shared = shared;
  }

  /** The state shared with other workers, when there are several. */
  get shared(): SharedFleet | undefined {
    return this.#shared;
  }

  /**
   * Returns the state for a URL, creating it on first use.
   *
   * @param url Base URL.
   * @returns The shared state.
   */
  acquire(url: string): ServerState {
    let server = this.#servers.get(url);
    if (!server) {
      server = new ServerState(url, this.#staleAfterMs, this.#shared?.server(url));
      this.#servers.set(url, server);
    }
    return server;
  }

  /**
   * Drops servers no longer in use that have nothing in flight; servers still serving requests
   * stay until a later call finds them idle.
   *
   * @param inUse URLs the running config uses.
   */
  retain(inUse: ReadonlySet<string>): void {
    for (const [url, server] of this.#servers) {
      if (!inUse.has(url) && server.inFlight === 0) {
        this.#servers.delete(url);
        server.connections.close();
      }
    }
  }

  /** Closes every server's idle connections (on shutdown). */
  closeConnections(): void {
    for (const server of this.#servers.values()) server.connections.close();
  }

  /**
   * Changes how old metrics may be before they no longer count, for every server.
   *
   * @param ms Milliseconds.
   */
  setStaleAfter(ms: number): void {
    this.#staleAfterMs = ms;
    for (const server of this.#servers.values()) server.staleAfterMs = ms;
  }

  /** Every known server. */
  all(): IterableIterator<ServerState> {
    return this.#servers.values();
  }

  /**
   * Finds a server by URL.
   *
   * @param url Base URL.
   * @returns The state, or `undefined`.
   */
  get(url: string): ServerState | undefined {
    return this.#servers.get(url);
  }
}
