/**
 * Waiting for a state to match a predicate, re-checked whenever the owner says it changed.
 *
 * @module
 */

/**
 * Promises that resolve once a predicate holds on a state.
 *
 * @example
 * ```ts
 * let count = 0;
 * const watch = new StateWatch(() => count);
 * const reached = watch.until((n) => n >= 2);
 * count = 2;
 * watch.changed(); // `reached` resolves
 * ```
 */
export class StateWatch<T> {
  readonly #read: () => T;
  readonly #checks = new Set<(closing: boolean) => void>();

  /**
   * Creates a watch.
   *
   * @param read Reads the current state.
   */
  constructor(read: () => T) {
    this.#read = read;
  }

  /** Whether anything waits (so owners can skip `changed()` on hot paths). */
  get active(): boolean {
    return this.#checks.size > 0;
  }

  /**
   * Waits until `predicate` holds.
   *
   * @param predicate Checked now and after every `changed()`.
   * @param options How long to wait (default 5000 ms).
   * @returns A promise that rejects on timeout or `close()`, naming the last state.
   */
  until(predicate: (state: T) => boolean, options: { timeoutMs?: number } = {}): Promise<void> {
    if (predicate(this.#read())) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const timeoutMs = options.timeoutMs ?? 5000;
    const fail = (why: string): void => {
      done();
      reject(new Error(`State did not match ${why}: ${JSON.stringify(this.#read())}`));
    };
    const check = (closing: boolean): void => {
      if (predicate(this.#read())) {
        done();
        resolve();
      } else if (closing) fail("before the simulator closed");
    };
    const timer = setTimeout(() => fail(`within ${timeoutMs} ms`), timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      this.#checks.delete(check);
    };
    this.#checks.add(check);
    return promise;
  }

  /** Re-checks every waiting predicate. */
  changed(): void {
    if (this.#checks.size === 0) return;
    for (const check of [...this.#checks]) check(false);
  }

  /** Checks every waiting predicate one last time and rejects those that fail. */
  close(): void {
    for (const check of [...this.#checks]) check(true);
  }
}
