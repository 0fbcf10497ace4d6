/**
 * A bounded, timed wait queue for a server's concurrency slots. When a server is at its cap, a
 * request waits here; a finishing request hands its slot straight to the oldest waiter, so no
 * newcomer can jump the queue.
 *
 * @module
 */
import { HttpError } from "../common/errors.ts";

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

/** Options for {@link SlotQueue.wait}. */
export interface WaitOptions {
  /** Most requests allowed to wait. */
  queueSize: number;
  /** Milliseconds a request may wait. */
  timeoutMs: number;
  /** Aborts the wait (the client left). */
  signal?: AbortSignal;
  /** The server's URL, for messages. */
  url: string;
}

/** Waiters for one server's slots. */
export class SlotQueue {
  #waiters: Waiter[] = [];

  /** How many requests wait now. */
  get length(): number {
    return this.#waiters.length;
  }

  /**
   * Waits until a slot is handed over.
   *
   * @param options Queue bound, wait limit, abort signal and the server URL.
   * @returns Resolves when the caller owns a slot.
   * @throws HttpError 503 with `Retry-After` when the queue is full or the wait times out.
   */
  wait(options: WaitOptions): Promise<void> {
    if (this.#waiters.length >= options.queueSize) {
      return Promise.reject(busy(`the queue of server "${options.url}" is full`, options));
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: () => {
          clearTimeout(waiter.timer);
          options.signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject,
        timer: setTimeout(() => {
          this.#remove(waiter);
          options.signal?.removeEventListener("abort", onAbort);
          reject(
            busy(`server "${options.url}" had no free slot within the queue timeout`, options),
          );
        }, options.timeoutMs),
      };
      const onAbort = () => {
        clearTimeout(waiter.timer);
        this.#remove(waiter);
        reject(new HttpError(499, "invalid_request_error", "The client closed the request"));
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /**
   * Hands a freed slot to the oldest waiter.
   *
   * @returns Whether a waiter took it (then the slot stays taken).
   */
  handOver(): boolean {
    const waiter = this.#waiters.shift();
    if (!waiter) return false;
    waiter.resolve();
    return true;
  }

  #remove(waiter: Waiter): void {
    const index = this.#waiters.indexOf(waiter);
    if (index >= 0) this.#waiters.splice(index, 1);
  }
}

function busy(reason: string, options: WaitOptions): HttpError {
  return new HttpError(
    503,
    "service_unavailable_error",
    `The gateway cannot take the request now: ${reason}`,
    {
      code: "server_busy",
      headers: { "retry-after": String(Math.max(1, Math.ceil(options.timeoutMs / 1000))) },
    },
  );
}
