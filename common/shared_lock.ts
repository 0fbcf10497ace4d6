/**
 * A mutex in one cell of an `Int32Array` (usually over a `SharedArrayBuffer`), for critical
 * sections of a few operations shared by several isolates: 0 free, 1 held, 2 held with waiters
 * (Drepper's futex mutex). An uncontended lock and unlock is two atomic operations and no
 * `Atomics.notify`; a contended one spins briefly, then sleeps in `Atomics.wait` until notified.
 * The holder must never `await` inside the section.
 *
 * @module
 */

const SPINS = 64;

/**
 * Takes the lock in `cells[index]`, waiting for it when another isolate holds it.
 *
 * @param cells The lock's array.
 * @param index The lock's cell.
 */
export function lockCell(cells: Int32Array, index: number): void {
  let state = Atomics.compareExchange(cells, index, 0, 1);
  if (state === 0) return;
  for (let spin = 0; spin < SPINS && state !== 0; spin++) {
    state = Atomics.compareExchange(cells, index, 0, 1);
    if (state === 0) return;
  }
  if (state !== 2) state = Atomics.exchange(cells, index, 2);
  while (state !== 0) {
    // A 1 ms bound guards against a notify lost to an isolate that died holding the lock.
    Atomics.wait(cells, index, 2, 1);
    state = Atomics.exchange(cells, index, 2);
  }
}

/**
 * Releases the lock taken with {@link lockCell}; wakes one waiter when there is one.
 *
 * @param cells The lock's array.
 * @param index The lock's cell.
 */
export function unlockCell(cells: Int32Array, index: number): void {
  if (Atomics.sub(cells, index, 1) !== 1) {
    Atomics.store(cells, index, 0);
    Atomics.notify(cells, index, 1);
  }
}

/** A lock cell: `lockCell(cells, index)`. */
export interface LockRef {
  /** The array holding the lock. */
  readonly cells: Int32Array;
  /** The lock's cell. */
  readonly index: number;
}

/**
 * Runs `section` holding a lock when there is one.
 *
 * @param lock The lock, or `undefined` (one worker: no lock).
 * @param section Synchronous work.
 * @returns What `section` returns.
 */
export function underLock<T>(lock: LockRef | undefined, section: () => T): T {
  if (lock === undefined) return section();
  lockCell(lock.cells, lock.index);
  try {
    return section();
  } finally {
    unlockCell(lock.cells, lock.index);
  }
}
