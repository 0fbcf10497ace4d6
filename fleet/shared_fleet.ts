/**
 * The fleet state every worker shares, in one `SharedArrayBuffer`: per server its in-flight
 * count, waiters, request counters, health and breaker; per model route a lock and the strategy's
 * cells. The control plane (the leader) gives each server URL and each route a slot and tells the
 * workers (followers) which; a slot is never reused for another URL, so a worker still finishing
 * requests on a removed server never counts on someone else's slot.
 *
 * With one worker there is no shared fleet: servers keep plain fields (see `pool.ts`).
 *
 * @module
 */
import type { LockRef } from "../common/shared_lock.ts";
import { BREAKER_CELLS } from "./breaker.ts";

/** Most distinct server URLs (and routes) over a process's life. */
const MAX_SLOTS = 1024;
const SERVER_INTS = 8;
const IN_FLIGHT = 0;
const WAITING = 1;
const SENT = 2;
const REQUESTS = 3;
const UNHEALTHY = 4;
const BREAKER_LOCK = 5;
/** Float64 cells of one server's breaker. */
const BREAKER_FLOATS = BREAKER_CELLS;
const ROUTE_INTS = 16;
/** Int32 cells a strategy gets per route. */
const STRATEGY_CELLS = ROUTE_INTS - 1;

const SERVER_BYTES = MAX_SLOTS * SERVER_INTS * 4;
const BREAKER_BYTES = MAX_SLOTS * BREAKER_FLOATS * 8;
const ROUTE_BYTES = MAX_SLOTS * ROUTE_INTS * 4;

/** Slots by server URL and by route key, as the leader sends them to followers. */
export interface FleetSlots {
  /** `[url, slot]` pairs. */
  readonly servers: readonly (readonly [string, number])[];
  /** `[route key, slot]` pairs. */
  readonly routes: readonly (readonly [string, number])[];
}

/** One server's shared cells. */
export class SharedServer {
  readonly #ints: Int32Array;
  readonly #base: number;
  /** The breaker's cells. */
  readonly breaker: Float64Array;
  /** The lock of the breaker's cells. */
  readonly breakerLock: LockRef;

  /**
   * Views one server's slot.
   *
   * @param memory The shared buffer.
   * @param slot The server's slot.
   */
  constructor(memory: SharedArrayBuffer, slot: number) {
    this.#ints = new Int32Array(memory, 0, MAX_SLOTS * SERVER_INTS);
    this.#base = slot * SERVER_INTS;
    this.breaker = new Float64Array(
      memory,
      SERVER_BYTES + slot * BREAKER_FLOATS * 8,
      BREAKER_FLOATS,
    );
    this.breakerLock = { cells: this.#ints, index: this.#base + BREAKER_LOCK };
  }

  /** Requests in flight on the server from every worker. */
  get inFlight(): number {
    return Atomics.load(this.#ints, this.#base + IN_FLIGHT);
  }

  /** Requests waiting for a slot in every worker. */
  get waiting(): number {
    return Atomics.load(this.#ints, this.#base + WAITING);
  }

  /** Requests sent since the last scrape, by every worker. */
  get sentSinceScrape(): number {
    return Atomics.load(this.#ints, this.#base + SENT);
  }

  /** Requests sent in total (wraps at 2^32). */
  get requests(): number {
    return Atomics.load(this.#ints, this.#base + REQUESTS) >>> 0;
  }

  /** Whether active health checks pass. */
  get healthy(): boolean {
    return Atomics.load(this.#ints, this.#base + UNHEALTHY) === 0;
  }

  set healthy(healthy: boolean) {
    Atomics.store(this.#ints, this.#base + UNHEALTHY, healthy ? 0 : 1);
  }

  /** Zeroes the requests-since-scrape count (the control plane does, after a scrape). */
  resetSent(): void {
    Atomics.store(this.#ints, this.#base + SENT, 0);
  }

  /**
   * Takes a slot when fewer than `cap` requests are in flight (compare-and-swap, so the cap
   * holds across workers) and counts the request.
   *
   * @param cap Most requests in flight, or `undefined` for no cap.
   * @returns Whether the slot was taken.
   */
  tryBegin(cap: number | undefined): boolean {
    const ints = this.#ints;
    const at = this.#base + IN_FLIGHT;
    if (cap === undefined) Atomics.add(ints, at, 1);
    else {
      let current = Atomics.load(ints, at);
      for (;;) {
        if (current >= cap) return false;
        const seen = Atomics.compareExchange(ints, at, current, current + 1);
        if (seen === current) break;
        current = seen;
      }
    }
    this.counted();
    return true;
  }

  /** Counts a request that got a slot passed over to it. */
  counted(): void {
    Atomics.add(this.#ints, this.#base + SENT, 1);
    Atomics.add(this.#ints, this.#base + REQUESTS, 1);
  }

  /** Gives a slot back; wakes the workers waiting for one. Never goes below zero. */
  release(): void {
    const ints = this.#ints;
    const at = this.#base + IN_FLIGHT;
    let current = Atomics.load(ints, at);
    while (current > 0) {
      const seen = Atomics.compareExchange(ints, at, current, current - 1);
      if (seen === current) break;
      current = seen;
    }
    if (Atomics.load(ints, this.#base + WAITING) > 0) Atomics.notify(ints, at);
  }

  /**
   * Adds to the count of requests waiting (a worker publishes its queue's changes).
   *
   * @param delta The change.
   */
  addWaiting(delta: number): void {
    if (delta !== 0) Atomics.add(this.#ints, this.#base + WAITING, delta);
  }

  /**
   * Waits until the in-flight count changes from `seen`, or `ms` pass.
   *
   * @param seen The count last read.
   * @param ms Longest wait.
   */
  async changed(seen: number, ms: number): Promise<void> {
    const result = Atomics.waitAsync(this.#ints, this.#base + IN_FLIGHT, seen, ms);
    if (result.async) await result.value;
  }
}

/** One route's shared cells: a lock held while picking a server and the strategy's cells. */
export interface SharedRoute {
  /** Held around pick and slot-taking, so strategies see counts no other worker is changing. */
  readonly lock: LockRef;
  /** Cells for the strategy's cursors. */
  readonly cells: Int32Array;
}

/** The shared fleet buffer and its slot tables. */
export class SharedFleet {
  /** Bytes of the buffer. */
  static readonly BYTES: number = SERVER_BYTES + BREAKER_BYTES + ROUTE_BYTES;
  /** The buffer, to hand to workers. */
  readonly memory: SharedArrayBuffer;
  readonly #leader: boolean;
  readonly #servers = new Map<string, number>();
  readonly #routes = new Map<string, number>();
  readonly #routeInts: Int32Array;

  /**
   * Creates the leader's fleet (a new buffer), or a follower's view of the leader's.
   *
   * @param memory The leader's buffer, for a follower.
   */
  constructor(memory?: SharedArrayBuffer) {
    this.#leader = memory === undefined;
    this.memory = memory ?? new SharedArrayBuffer(SharedFleet.BYTES);
    this.#routeInts = new Int32Array(this.memory, SERVER_BYTES + BREAKER_BYTES);
  }

  /** The slot tables, for followers. */
  slots(): FleetSlots {
    return { servers: [...this.#servers], routes: [...this.#routes] };
  }

  /**
   * Takes the leader's slot tables (a follower, before applying the spec they belong to).
   *
   * @param slots The leader's tables.
   */
  follow(slots: FleetSlots): void {
    for (const [url, slot] of slots.servers) this.#servers.set(url, slot);
    for (const [key, slot] of slots.routes) this.#routes.set(key, slot);
  }

  /**
   * The shared cells of a server; the leader gives a new URL a slot.
   *
   * @param url The server's base URL.
   * @returns Its cells, or `undefined` when it has no slot (then it keeps local counts).
   */
  server(url: string): SharedServer | undefined {
    const slot = this.#slot(this.#servers, url);
    return slot === undefined ? undefined : new SharedServer(this.memory, slot);
  }

  /**
   * The shared cells of a route (a model with one strategy and its options).
   *
   * @param key The model name and strategy key.
   * @returns Its cells, or `undefined` when it has no slot.
   */
  route(key: string): SharedRoute | undefined {
    const slot = this.#slot(this.#routes, key);
    if (slot === undefined) return undefined;
    const base = slot * ROUTE_INTS;
    return {
      lock: { cells: this.#routeInts, index: base },
      cells: this.#routeInts.subarray(base + 1, base + 1 + STRATEGY_CELLS),
    };
  }

  #slot(table: Map<string, number>, key: string): number | undefined {
    const known = table.get(key);
    if (known !== undefined || !this.#leader || table.size >= MAX_SLOTS) return known;
    table.set(key, table.size);
    return table.size - 1;
  }
}
