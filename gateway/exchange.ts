/**
 * One forwarded request's live state: its deadlines (checked by the shared watchdog), the watch
 * for a client disconnect, the usage tap and the result reported when it ends. It is attached to
 * the attempt's {@link ServerLease}, so whoever releases the lease (the answer's end, a failure,
 * a deadline, a disconnect, or the `using` scope on an exception) also ends this, exactly once.
 *
 * Fair blame: the server's silence counts (`idle`) only while the gateway waits for bytes from
 * it (a read is pending). While the gateway waits for the client to take what it has (no read
 * pending: the client reads slowly or not at all), `client_idle` runs instead, and a client cut
 * for it ends with the outcome `client_slow`, which the breaker never counts.
 *
 * @module
 */
import type { ForwardTimeouts } from "../fleet/routes.ts";
import type { LeaseOutcome, ReleaseListener, ServerLease } from "../fleet/lease.ts";
import type { TokenUsage } from "../plugins/types.ts";
import type { UpstreamCall } from "../upstream/http1_pool.ts";
import type { UsageTap } from "./usage_tap.ts";
import { watchdog, type Watched } from "./watchdog.ts";

/** How a forwarded request ended. */
export interface ForwardResult {
  /** `success`, `error`, `aborted` (the client left) or `client_slow` (the client was cut). */
  outcome: LeaseOutcome;
  /** The upstream status, when one arrived. */
  status?: number;
  /** Milliseconds until the upstream's response headers, when they arrived. */
  firstByteMs?: number;
  /** Milliseconds until the first body chunk, when one arrived. */
  firstChunkMs?: number;
  /** Token usage read from the body, when asked for and reported. */
  usage?: TokenUsage;
}

/** Why a deadline passed. */
export type Expiry = "first_byte" | "idle" | "total" | "client_idle";

/**
 * Milliseconds before a request starts listening for its client's disconnect. Reading
 * `request.signal` costs `Deno.serve` a cancel watch per request (about a tenth of a small
 * request's CPU), and most answers come sooner; a disconnect before that is seen on first access.
 * Streams also learn of a disconnect from their body's `cancel()`.
 */
const CLIENT_WATCH_AFTER_MS = 50;

/** Waiting for the response head. */
const HEAD = 0;
/** Waiting for body bytes from the server (a read is pending). */
const READING = 1;
/** Waiting for the client to take what was passed on (no read pending). */
const CLIENT = 2;
const DONE = 3;

/** What an {@link Exchange} needs. */
export interface ExchangeOptions {
  /** The client's request (its signal tells of a disconnect). */
  request: Request;
  /** Timeouts. */
  timeouts: ForwardTimeouts;
  /** Called exactly once when the request ends, on every path. */
  onEnd(result: ForwardResult): void;
}

/** One forwarded request's deadlines, disconnect watch and result. */
export class Exchange implements Watched, ReleaseListener {
  /** The lease on the server; releasing it ends this exchange. */
  readonly lease: ServerLease;
  /** What is reported at the end. */
  readonly result: ForwardResult = { outcome: "success" };
  /** When the request was sent (`performance.now()`). */
  readonly started: number = performance.now();
  /** The upstream call, once sent. */
  call: UpstreamCall | undefined;
  /** The deadline that passed, if one did. */
  expired: Expiry | undefined;
  /** Whether the client disconnected. */
  clientGone = false;
  /** Reads usage from the answer, when plugins want it. */
  tap: UsageTap | undefined;
  /** The answer stream's controller, errored when the client is cut while it is not reading. */
  controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  readonly #options: ExchangeOptions;
  #phase = HEAD;
  /** Counts phase changes, so the watchdog sees them without a clock read per chunk. */
  #changes = 0;
  #seenChanges = -1;
  #seenBytes = -1;
  #quietSince = 0;
  #listening = false;
  #onAbort: (() => void) | undefined;

  /**
   * Starts watching a request's deadlines.
   *
   * @param lease The lease on the server (released when this ends, and the other way round).
   * @param options The client's request, timeouts and the end callback.
   */
  constructor(lease: ServerLease, options: ExchangeOptions) {
    this.lease = lease;
    this.#options = options;
    lease.attach(this);
    watchdog.add(this);
  }

  /** The timeouts in force. */
  get timeouts(): ForwardTimeouts {
    return this.#options.timeouts;
  }

  /** Whether the request has ended. */
  get ended(): boolean {
    return this.#phase === DONE;
  }

  /** The gateway waits for body bytes from the server: its silence counts as `idle`. */
  reading(): void {
    if (this.#phase === DONE) return;
    this.#phase = READING;
    this.#changes++;
  }

  /** The gateway waits for the client to take what it has: `client_idle` counts. */
  waitingForClient(): void {
    if (this.#phase === DONE) return;
    this.#phase = CLIENT;
    this.#changes++;
  }

  /** Notes the first body bytes passed on, once. */
  firstChunk(): void {
    this.result.firstChunkMs ??= performance.now() - this.started;
  }

  /**
   * Ends the request: releases the lease (and so this exchange).
   *
   * @param outcome How it ended.
   * @param blame Whether the server is to blame.
   */
  end(outcome: LeaseOutcome, blame: boolean): void {
    this.lease.release(outcome, { blame });
  }

  /**
   * Checks deadlines (the watchdog calls it every tick).
   *
   * @param now `performance.now()`.
   */
  check(now: number): void {
    if (this.#phase === DONE) return;
    const timeouts = this.#options.timeouts;
    if (!this.#listening && now - this.started >= CLIENT_WATCH_AFTER_MS) this.#listen();
    if (this.#phase === HEAD) {
      if (now - this.started > timeouts.firstByteMs) return this.#expire("first_byte");
    } else {
      const bytes = this.call?.bytesRead ?? 0;
      if (this.#changes !== this.#seenChanges || bytes !== this.#seenBytes) {
        this.#seenChanges = this.#changes;
        this.#seenBytes = bytes;
        this.#quietSince = now;
      } else if (this.#phase === READING && now - this.#quietSince > timeouts.idleMs) {
        return this.#expire("idle");
      } else if (this.#phase === CLIENT && now - this.#quietSince > timeouts.clientIdleMs) {
        return this.#expire("client_idle");
      }
    }
    if (now - this.started > timeouts.totalMs) this.#expire("total");
  }

  #expire(expiry: Expiry): void {
    if (this.#phase === CLIENT) {
      // Nothing is pending on the server's side: the client is the one being waited on.
      this.expired = "client_idle";
      this.#cutClient("client_slow", "The client stopped reading the answer");
      return;
    }
    // A pending head or body read fails now, and its owner ends the request.
    this.expired = expiry;
    this.call?.abort();
  }

  #listen(): void {
    this.#listening = true;
    const signal = this.#options.request.signal;
    this.#onAbort = () => this.#clientLeft();
    if (signal.aborted) this.#clientLeft();
    else signal.addEventListener("abort", this.#onAbort, { once: true });
  }

  #clientLeft(): void {
    this.clientGone = true;
    if (this.#phase === CLIENT) this.#cutClient("aborted", "The client closed the request");
    else this.call?.abort();
  }

  /** Ends a request whose stream has no read pending: errors the stream, releases the lease. */
  #cutClient(outcome: LeaseOutcome, message: string): void {
    const controller = this.controller;
    this.end(outcome, false);
    try {
      controller?.error(new Error(message));
    } catch {
      // The stream was already closed.
    }
  }

  /**
   * The lease was released (by whoever): the one cleanup of this request.
   *
   * @param outcome How the request ended.
   */
  released(outcome: LeaseOutcome): void {
    this.#phase = DONE;
    watchdog.delete(this);
    if (this.#onAbort) this.#options.request.signal.removeEventListener("abort", this.#onAbort);
    // Closes the connection unless the answer was read whole (then the call let go of it).
    this.call?.abort();
    const usage = this.tap?.finish();
    if (usage) this.result.usage = usage;
    this.result.outcome = outcome;
    this.#options.onEnd(this.result);
  }
}
