/**
 * A helper for cache-aware strategies: what each server has probably cached, as the chained block
 * hashes ({@link PromptBlocks}) of the prompts this gateway sent it.
 *
 * Each server has its own least-recently-used set of block hashes, bounded by its capacity in
 * blocks; recording a prompt touches its blocks from the last to the first, so a server's oldest
 * blocks are the tails of old prompts and a shared prefix is evicted last (as vLLM frees a
 * request's blocks tail first). Because block hashes are chained, a server holds a prompt's first
 * `k` blocks when it holds block `k - 1`, and a match walks from the first block until a miss.
 * A server over its capacity drops its oldest blocks down to seven eighths of it.
 *
 * Each block keeps when it was last recorded. A server that had to evict a block used within the
 * last `keepMs` (a minute by default) is *under pressure* for the next `keepMs`: its cache does not
 * keep what it gets for that long, so a copy of a prefix placed there would push out one in use.
 *
 * @module
 */

/**
 * One server's cached blocks, oldest first (a `Map` keeps insertion order), each with the second
 * (since the index's origin) it was last recorded.
 */
class ServerBlocks {
  readonly blocks = new Map<number, number>();
  /** When it last evicted a block used within `keepMs`, in the index's seconds. */
  pressuredAt = -Infinity;
}

/** The index of one model's servers. */
export class PrefixIndex {
  #servers = new Map<string, ServerBlocks>();
  #keepSeconds: number;
  #origin: number | undefined;

  /**
   * @param options `keepMs`: how long a server's cache should keep what it gets before it
   * counts as under pressure (60,000 ms).
   */
  constructor(options: { keepMs?: number } = {}) {
    this.#keepSeconds = (options.keepMs ?? 60_000) / 1000;
  }

  /** Whole seconds since the first time the index saw (small integers, stored unboxed). */
  #seconds(now: number): number {
    this.#origin ??= now;
    return Math.floor((now - this.#origin) / 1000);
  }

  /** Blocks held, over all servers. */
  get size(): number {
    let size = 0;
    for (const server of this.#servers.values()) size += server.blocks.size;
    return size;
  }

  /**
   * Counts the leading blocks of a prompt a server holds.
   *
   * @param url The server.
   * @param hashes The prompt's chained block hashes.
   * @returns How many of the first blocks it holds.
   */
  match(url: string, hashes: readonly number[]): number {
    const blocks = this.#servers.get(url)?.blocks;
    if (blocks === undefined) return 0;
    let matched = 0;
    while (matched < hashes.length && blocks.has(hashes[matched]!)) matched++;
    return matched;
  }

  /**
   * Records that a server received a prompt, evicting its least recently used blocks beyond its
   * capacity.
   *
   * @param url The server.
   * @param hashes The prompt's chained block hashes.
   * @param options `capacity`: the server's capacity in blocks now; `now`: the time in
   * milliseconds (`Date.now()` by default).
   */
  record(
    url: string,
    hashes: readonly number[],
    options: { capacity: number; now?: number },
  ): void {
    const { capacity } = options;
    const second = this.#seconds(options.now ?? Date.now());
    let server = this.#servers.get(url);
    if (server === undefined) this.#servers.set(url, server = new ServerBlocks());
    const blocks = server.blocks;
    let held = 0;
    while (held < hashes.length && blocks.has(hashes[held]!)) held++;
    // Blocks past the held prefix are new: a plain insert puts them at the young end. The held
    // prefix is moved there after them, so it is the youngest.
    for (let i = hashes.length - 1; i >= held; i--) blocks.set(hashes[i]!, second);
    for (let i = held - 1; i >= 0; i--) {
      const hash = hashes[i]!;
      blocks.delete(hash);
      blocks.set(hash, second);
    }
    if (blocks.size > capacity) {
      // Evict an eighth more than needed: walking a Map from its oldest entry costs a pass over
      // the holes earlier deletes left, so evicting in batches keeps a record cheap.
      // Only the blocks that had to go tell of pressure, not the batch's extra eighth.
      const needed = blocks.size - capacity;
      let evicted = 0;
      let youngest = -Infinity;
      for (const hash of blocks.keys()) {
        if (evicted === needed + (capacity >>> 3)) break;
        // Oldest first: the last block that had to go is the youngest of them.
        if (++evicted === needed) youngest = blocks.get(hash)!;
        blocks.delete(hash);
      }
      if (second - youngest < this.#keepSeconds) server.pressuredAt = second;
    }
  }

  /**
   * Tells whether a server recently had to evict a block used within `keepMs`: its cache does
   * not keep what it gets that long.
   *
   * @param url The server.
   * @param now The time in milliseconds.
   * @returns Whether it did so within the last `keepMs`.
   */
  underPressure(url: string, now: number): boolean {
    const server = this.#servers.get(url);
    return server !== undefined && this.#seconds(now) - server.pressuredAt < this.#keepSeconds;
  }

  /**
   * Forgets everything a server held (it restarted, or left the fleet).
   *
   * @param url The server.
   */
  forget(url: string): void {
    this.#servers.delete(url);
  }

  /**
   * Forgets every server not in a list.
   *
   * @param urls The servers that stay.
   */
  retain(urls: ReadonlySet<string>): void {
    for (const url of this.#servers.keys()) if (!urls.has(url)) this.#servers.delete(url);
  }

  /** The servers with entries. */
  servers(): string[] {
    return [...this.#servers.keys()];
  }
}
