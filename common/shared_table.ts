/**
 * A fixed-size hash table of number records keyed by strings, in a `SharedArrayBuffer`, for
 * counters several isolates must keep exactly (the rate limiter's). A key is stored as two
 * independent 32-bit hashes (a false match needs both to collide: about one in 10^19 per pair).
 * Records are found by linear probing without locks and changed under their own lock; new keys
 * are placed under the table's lock, so two isolates never give one key two records. A record
 * the owner says may go (e.g. quiet for two windows) is reused for a new key; slots are never
 * emptied, so probe chains stay whole.
 *
 * @module
 */
import { lockCell, unlockCell } from "./shared_lock.ts";

const INTS = 4;
const LOCK = 0;
const TAG_HI = 1;
const TAG_LO = 2;
const HEADER_INTS = 4;

/** A record being changed: `cells[base + i]` is its field `i`. */
export type RecordSection<T> = (cells: Float64Array, base: number, fresh: boolean) => T;

/** A shared hash table of fixed-width records. */
export class SharedTable {
  readonly #ints: Int32Array;
  readonly #cells: Float64Array;
  readonly #capacity: number;
  readonly #fields: number;

  /**
   * Bytes a table needs.
   *
   * @param capacity Records.
   * @param fields Numbers per record.
   * @returns The buffer size.
   */
  static bytes(capacity: number, fields: number): number {
    return (HEADER_INTS + capacity * INTS) * 4 + capacity * fields * 8;
  }

  /**
   * Views a table in a buffer made with {@link SharedTable.bytes} bytes (zero: empty).
   *
   * @param memory The buffer.
   * @param shape Records and numbers per record.
   */
  constructor(memory: SharedArrayBuffer, shape: { capacity: number; fields: number }) {
    this.#capacity = shape.capacity;
    this.#fields = shape.fields;
    const intBytes = (HEADER_INTS + shape.capacity * INTS) * 4;
    this.#ints = new Int32Array(memory, 0, HEADER_INTS + shape.capacity * INTS);
    this.#cells = new Float64Array(memory, intBytes, shape.capacity * shape.fields);
  }

  /**
   * Runs `section` on the key's record under its lock, making the record (zeroed, `fresh`) when
   * the key has none.
   *
   * @param key The key.
   * @param options `section` the change; `reusable` whether another key's record may be reused.
   * @returns What `section` returns, or `undefined` when the table is full.
   */
  update<T>(
    key: string,
    options: { section: RecordSection<T>; reusable(cells: Float64Array, base: number): boolean },
  ): T | undefined {
    const [hi, lo] = hashes(key);
    for (;;) {
      const slot = this.#find(hi, lo);
      if (slot === undefined) break;
      const done = this.#locked(slot, hi, lo, options.section, false);
      if (done.ok) return done.value;
    }
    lockCell(this.#ints, 0);
    try {
      const slot = this.#find(hi, lo);
      if (slot !== undefined) {
        const done = this.#locked(slot, hi, lo, options.section, false);
        if (done.ok) return done.value;
      }
      return this.#place(hi, lo, options);
    } finally {
      unlockCell(this.#ints, 0);
    }
  }

  /**
   * Runs `section` on the key's record under its lock when the key has one.
   *
   * @param key The key.
   * @param section The change.
   * @returns What `section` returns, or `undefined` when the key has no record.
   */
  existing<T>(key: string, section: RecordSection<T>): T | undefined {
    const [hi, lo] = hashes(key);
    for (;;) {
      const slot = this.#find(hi, lo);
      if (slot === undefined) return undefined;
      const done = this.#locked(slot, hi, lo, section, false);
      if (done.ok) return done.value;
    }
  }

  /** The slot holding the key, probing until an empty slot. */
  #find(hi: number, lo: number): number | undefined {
    const ints = this.#ints;
    for (let i = 0; i < this.#capacity; i++) {
      const slot = (hi >>> 0) % this.#capacity + i;
      const at = HEADER_INTS + (slot % this.#capacity) * INTS;
      const tag = Atomics.load(ints, at + TAG_HI);
      if (tag === 0) return undefined;
      if (tag === hi && Atomics.load(ints, at + TAG_LO) === lo) return slot % this.#capacity;
    }
    return undefined;
  }

  /** Runs the section under the slot's lock if the slot still holds the key. */
  #locked<T>(
    slot: number,
    hi: number,
    lo: number,
    section: RecordSection<T>,
    fresh: boolean,
  ): { ok: true; value: T } | { ok: false } {
    const at = HEADER_INTS + slot * INTS;
    lockCell(this.#ints, at + LOCK);
    try {
      if (this.#ints[at + TAG_HI] !== hi || this.#ints[at + TAG_LO] !== lo) return { ok: false };
      return { ok: true, value: section(this.#cells, slot * this.#fields, fresh) };
    } finally {
      unlockCell(this.#ints, at + LOCK);
    }
  }

  /** Places a new key (the table's lock held): the first empty or reusable slot on its chain. */
  #place<T>(
    hi: number,
    lo: number,
    options: { section: RecordSection<T>; reusable(cells: Float64Array, base: number): boolean },
  ): T | undefined {
    const ints = this.#ints;
    for (let i = 0; i < this.#capacity; i++) {
      const slot = ((hi >>> 0) % this.#capacity + i) % this.#capacity;
      const at = HEADER_INTS + slot * INTS;
      lockCell(ints, at + LOCK);
      try {
        const base = slot * this.#fields;
        if (ints[at + TAG_HI] !== 0 && !options.reusable(this.#cells, base)) continue;
        this.#cells.fill(0, base, base + this.#fields);
        Atomics.store(ints, at + TAG_LO, lo);
        Atomics.store(ints, at + TAG_HI, hi);
        return options.section(this.#cells, base, true);
      } finally {
        unlockCell(ints, at + LOCK);
      }
    }
    return undefined;
  }
}

/** Two 32-bit hashes of a key (FNV-1a and a multiplicative one); the first is never 0. */
function hashes(key: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9e3779b9;
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    a = Math.imul(a ^ code, 0x01000193);
    b = Math.imul(b ^ code, 0x85ebca6b) ^ (b >>> 13);
  }
  return [a | 1, b];
}
